"""Errors of the identity service, each carrying its Keystone HTTP status and title."""

from __future__ import annotations


class IdentityError(Exception):
    """Base of the identity errors; `status` and `title` are what Keystone would answer."""

    status = 500
    title = "Internal Server Error"


class BadRequest(IdentityError):
    status = 400
    title = "Bad Request"


class Unauthorized(IdentityError):
    """Missing or wrong credentials. The message never says which part was wrong."""

    status = 401
    title = "Unauthorized"

    def __init__(self, message: str = "The request you have made requires authentication.") -> None:
        super().__init__(message)


class Forbidden(IdentityError):
    status = 403
    title = "Forbidden"

    def __init__(
        self, message: str = "You are not authorized to perform the requested action."
    ) -> None:
        super().__init__(message)


class NotFound(IdentityError):
    status = 404
    title = "Not Found"


class Conflict(IdentityError):
    """A name is taken (names are unique per domain)."""

    status = 409
    title = "Conflict"


class NotBootstrapped(IdentityError):
    """The service has no roles yet: `IdentityService.bootstrap` was never run on this store."""

    status = 503
    title = "Service Unavailable"

    def __init__(self) -> None:
        super().__init__("the identity service is not bootstrapped")
