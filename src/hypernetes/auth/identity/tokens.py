"""Fernet tokens: what they carry and how they are sealed and opened.

As in Keystone, a token is a Fernet token (AES-128-CBC + HMAC-SHA256, keys
from the `keys` repository) over a small msgpack payload and nothing is
stored per token. Ours carries: a format version, the user id, the
authentication methods (bit mask), the project id (or nil when unscoped), the
expiry and issue times (float seconds; the issue time is finer than Fernet's
own whole-second timestamp so that revocation by time is exact) and the
audit ids (this token's, then the one of the token it was rescoped from).
Ids are uuid4 hex, packed as their 16 bytes. The base64 padding is stripped
(Keystone does the same) so the token is URL- and header-safe.
"""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass

import msgpack
from cryptography.fernet import InvalidToken

from hypernetes.auth.identity.keys import FernetKeyRepository

_VERSION = 1
METHODS = ("password", "token")
MAX_TOKEN_LENGTH = 1024
"""Longer strings are rejected before any cryptography is done."""


@dataclass(frozen=True)
class TokenPayload:
    user_id: str
    methods: tuple[str, ...]
    project_id: str | None
    expires_at: float
    issued_at: float
    audit_ids: tuple[str, ...]


def new_audit_id() -> str:
    """16 random bytes, URL-safe base64 without padding (Keystone's format)."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


class TokenCodec:
    def __init__(self, keys: FernetKeyRepository) -> None:
        self.keys = keys

    def seal(self, payload: TokenPayload) -> str:
        mask = 0
        for method in payload.methods:
            mask |= 1 << METHODS.index(method)
        packed = msgpack.packb(
            [
                _VERSION,
                uuid.UUID(hex=payload.user_id).bytes,
                mask,
                uuid.UUID(hex=payload.project_id).bytes if payload.project_id else None,
                payload.expires_at,
                payload.issued_at,
                [_audit_bytes(a) for a in payload.audit_ids],
            ]
        )
        sealed = self.keys.fernet().encrypt_at_time(packed, int(payload.issued_at))
        return sealed.rstrip(b"=").decode("ascii")

    def open(self, token: str) -> TokenPayload | None:
        """The payload of a token sealed with one of our keys, or None (never raises on input)."""
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        data = token.encode("ascii")
        data += b"=" * (-len(data) % 4)
        try:
            packed = self.keys.fernet().decrypt(data)
        except InvalidToken:
            return None
        try:
            version, user, mask, project, expires_at, issued_at, audits = msgpack.unpackb(packed)
            if version != _VERSION or not isinstance(mask, int):
                return None
            return TokenPayload(
                user_id=uuid.UUID(bytes=user).hex,
                methods=tuple(m for i, m in enumerate(METHODS) if mask & (1 << i)),
                project_id=uuid.UUID(bytes=project).hex if project is not None else None,
                expires_at=float(expires_at),
                issued_at=float(issued_at),
                audit_ids=tuple(_audit_text(a) for a in audits),
            )
        except (ValueError, TypeError, msgpack.UnpackException):
            # Only our keys can seal, so this means a bug or a format change: refuse.
            return None


def _audit_bytes(audit_id: str) -> bytes:
    return base64.urlsafe_b64decode(audit_id + "=" * (-len(audit_id) % 4))


def _audit_text(raw: bytes) -> str:
    if not isinstance(raw, bytes) or len(raw) != 16:
        raise ValueError("bad audit id")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
