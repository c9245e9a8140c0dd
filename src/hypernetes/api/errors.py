"""Kubernetes `Status` errors.

Every failure the API returns is an `APIError`, rendered as a `meta/v1 Status`
with the HTTP code and the machine-readable `reason` kubectl and client-go
switch on (NotFound, AlreadyExists, Conflict, Invalid, ...).
"""

from __future__ import annotations

from typing import Any

from hypernetes.resources.registry import ResourceType


class APIError(Exception):
    """An error answered to the client as a Status."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(rt: ResourceType | None, name: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = rt.plural
    return d


def not_found(rt: ResourceType, name: str) -> APIError:
    return APIError(
        404, "NotFound", f'{rt.group_resource} "{name}" not found', details=_details(rt, name)
    )


def already_exists(rt: ResourceType, name: str) -> APIError:
    return APIError(
        409,
        "AlreadyExists",
        f'{rt.group_resource} "{name}" already exists',
        details=_details(rt, name),
    )


def conflict(rt: ResourceType, name: str, why: str) -> APIError:
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
        details=_details(rt, name),
    )


def stale(rt: ResourceType, name: str) -> APIError:
    return conflict(
        rt,
        name,
        "the object has been modified; please apply your changes to the latest "
        "version and try again",
    )


def invalid(rt: ResourceType, name: str, causes: list[dict[str, Any]], message: str) -> APIError:
    details = _details(rt, name) | {"causes": causes}
    details["kind"] = rt.kind
    return APIError(422, "Invalid", message, details=details)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def not_found_path(path: str) -> APIError:
    return APIError(404, "NotFound", f"the server could not find the requested resource ({path})")


def expired(message: str) -> APIError:
    return APIError(410, "Expired", message)


def gone(message: str) -> APIError:
    return APIError(410, "Gone", message)


def forbidden(message: str, rt: ResourceType | None = None, name: str | None = None) -> APIError:
    return APIError(403, "Forbidden", message, details=_details(rt, name) or None)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def too_large(limit: int) -> APIError:
    return APIError(
        413, "RequestEntityTooLarge", f"the request is too large: limit is {limit} bytes"
    )


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types "
        f"include: application/json, application/yaml, "
        f"application/json-patch+json, application/merge-patch+json, "
        f"application/strategic-merge-patch+json, application/apply-patch+yaml "
        f"(got {content_type!r})",
    )


def not_acceptable(accept: str) -> APIError:
    return APIError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: application/json, "
        f"application/yaml (got {accept!r})",
    )


def timeout(message: str) -> APIError:
    return APIError(504, "Timeout", message)


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")
