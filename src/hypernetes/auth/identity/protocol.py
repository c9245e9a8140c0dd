"""The seam between the API server and an identity backend.

The API server needs one thing from identity: turn a bearer token into a
`Principal` (or None). Both the built-in `IdentityService` and
`KeystoneProxyIdentity` (an external Keystone) satisfy `Identity`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hypernetes.auth.identity.model import Principal


@runtime_checkable
class Identity(Protocol):
    async def validate_token(self, token: str) -> Principal | None:
        """The principal of a valid token; None if it is malformed, expired or revoked."""
        ...
