"""An `Identity` backed by an external Keystone: validates tokens with GET /v3/auth/tokens.

The token validates itself (it is sent as both `X-Auth-Token` and
`X-Subject-Token`, which Keystone's default policy allows to the token's
subject), so no service credentials are needed; a service token may be
given instead. Only users and projects of one domain (`default` unless
told) are accepted, so names cannot collide across domains. A short,
bounded cache (off by default) trades revocation delay for fewer round trips,
as keystonemiddleware's token cache does. Tokens are kept in memory only as
SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from hypernetes.auth.identity.errors import IdentityError
from hypernetes.auth.identity.model import (
    ADMIN_PROJECT,
    ADMIN_ROLE,
    DEFAULT_DOMAIN_ID,
    Principal,
)

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 8192
CACHE_SIZE = 10_000


class IdentityUnavailable(IdentityError):
    """The external identity service could not answer (network error, 5xx, nonsense)."""

    status = 503
    title = "Service Unavailable"


class KeystoneProxyIdentity:
    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        domain_id: str = DEFAULT_DOMAIN_ID,
        admin_project: str = ADMIN_PROJECT,
        service_token: str | None = None,
        cache_seconds: float = 0.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`url` is Keystone's endpoint, with or without the trailing `/v3`."""
        base = url.rstrip("/")
        if not urlsplit(base).path.endswith("/v3"):
            base += "/v3"
        self.tokens_url = base + "/auth/tokens"
        self.ssl_context = ssl_context
        self.domain_id = domain_id
        self.admin_project = admin_project
        self.service_token = service_token
        self.cache_seconds = cache_seconds
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def __aenter__(self) -> KeystoneProxyIdentity:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def validate_token(self, token: str) -> Principal | None:
        """The principal from Keystone; None if Keystone says the token is not valid.

        Raises `IdentityUnavailable` when Keystone cannot be asked.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        if any(c in token for c in "\r\n\0"):
            return None
        now = self.clock()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            if cached[0] > now:
                return cached[1]
            del self._cache[digest]
        principal = await self._ask(token)
        if principal is None or principal.expires_at.timestamp() <= now:
            return None
        if self.cache_seconds > 0:
            if len(self._cache) >= CACHE_SIZE:
                del self._cache[next(iter(self._cache))]  # the oldest entry
            until = min(now + self.cache_seconds, principal.expires_at.timestamp())
            self._cache[digest] = (until, principal)
        return principal

    async def _ask(self, token: str) -> Principal | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"X-Auth-Token": self.service_token or token, "X-Subject-Token": token}
        try:
            async with self._session.get(
                self.tokens_url,
                params={"nocatalog": ""},
                headers=headers,
                ssl=self.ssl_context if self.ssl_context is not None else True,
            ) as response:
                if response.status in (401, 403, 404):
                    return None
                if response.status != 200:
                    raise IdentityUnavailable(f"Keystone answered {response.status}")
                body = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise IdentityUnavailable(f"Keystone is unreachable: {type(exc).__name__}") from None
        try:
            return self._principal(body["token"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IdentityUnavailable(f"Keystone answered an unexpected token: {exc!r}") from None

    def _principal(self, token: dict[str, Any]) -> Principal | None:
        user = token["user"]
        if user["domain"]["id"] != self.domain_id:
            log.info("identity: refusing a token of a user of domain %s", user["domain"]["id"])
            return None
        project = token.get("project")
        if project is not None and project["domain"]["id"] != self.domain_id:
            log.info("identity: refusing a token scoped to domain %s", project["domain"]["id"])
            return None
        if project is None and any(k in token for k in ("domain", "system")):
            return None  # domain- or system-scoped: no tenant to map to
        roles = tuple(str(r["name"]) for r in token.get("roles") or ())
        return Principal(
            user_id=str(user["id"]),
            user_name=str(user["name"]),
            project_id=str(project["id"]) if project else None,
            project_name=str(project["name"]) if project else None,
            roles=roles,
            expires_at=_time(token["expires_at"]),
            issued_at=_time(token["issued_at"]),
            audit_ids=tuple(str(a) for a in token.get("audit_ids") or ()),
            methods=tuple(str(m) for m in token.get("methods") or ()),
            platform_admin=bool(
                project and project["name"] == self.admin_project and ADMIN_ROLE in roles
            ),
            domain_id=self.domain_id,
        )


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without a time zone: {text!r}")
    return moment
