"""Errors raised by the API client: Status failures from the server and transport failures."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of every error this client raises."""


class TransportError(ClientError):
    """The server could not be reached, or the connection broke mid-request."""


class ConfigError(ClientError):
    """A kubeconfig (or an exec credential plugin) is unusable."""


class ApiError(ClientError):
    """The server answered with a failure `Status` (or a bare HTTP error)."""

    def __init__(self, code: int, reason: str, message: str, status: dict[str, Any]) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status
        """The whole Status object as the server sent it (or as built from a bare error)."""

    @property
    def details(self) -> dict[str, Any]:
        details = self.status.get("details")
        return details if isinstance(details, dict) else {}


class NotFound(ApiError):
    """404: the object (or collection, or path) does not exist."""


class Conflict(ApiError):
    """409: a stale resourceVersion, a failed precondition, or AlreadyExists."""


class Expired(ApiError):
    """410: the requested resourceVersion has been compacted away; list again."""


_BY_CODE: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 410: Expired}


def api_error(code: int, status: Any, text: str = "") -> ApiError:
    """The `ApiError` (of the most specific class) for an HTTP code and response body."""
    if isinstance(status, dict) and status.get("kind") == "Status":
        code = int(status.get("code") or code)
        reason = str(status.get("reason") or "")
        message = str(status.get("message") or "")
    else:
        reason, message = "", text.strip()[:1000]
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
        if message:
            status["message"] = message
    if not reason:
        reason = _DEFAULT_REASONS.get(code, "Unknown")
        status = {**status, "reason": reason}
    return _BY_CODE.get(code, ApiError)(code, reason, message, status)


_DEFAULT_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
