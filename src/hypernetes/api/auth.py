"""Who is calling: authentication of API requests, and the authorizer seam.

Authentication here covers client certificates signed by the cluster CA
(common name = user, organisations = groups) and pluggable bearer-token
authenticators (the identity service and service accounts register theirs).
Authorization is a pluggable callable; until RBAC lands, only members of
`system:masters` are allowed anything.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from hypernetes.api import errors, pki
from hypernetes.auth.principal import Attributes, User

__all__ = ["USER", "Attributes", "Authenticator", "Authorizer", "TokenAuthenticator", "User"]


USER = web.RequestKey("user", User)
"""Where the authenticated user of a request is kept."""

TokenAuthenticator = Callable[[str], Awaitable[User | None]]


Authorizer = Callable[[User, Attributes], Awaitable[bool]]


async def masters_only(user: User, attrs: Attributes) -> bool:
    return user.is_admin


class Authenticator:
    """Finds the user of a request from its TLS client certificate or bearer token."""

    def __init__(self) -> None:
        self.token_authenticators: list[TokenAuthenticator] = []

    async def authenticate(self, request: web.Request) -> User:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            token = header[len("Bearer ") :].strip()
            for authenticate in self.token_authenticators:
                user = await authenticate(token)
                if user is not None:
                    return user
            raise errors.unauthorized()
        user = _certificate_user(request)
        if user is None:
            raise errors.unauthorized()
        return user


def _certificate_user(request: web.Request) -> User | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None  # the TLS layer has already verified any certificate given against our CA
    name, orgs = pki.subject_of(der)
    if not name:
        return None
    return User(name, (*orgs, "system:authenticated"))
