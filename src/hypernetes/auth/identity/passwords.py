"""Password hashing with argon2id, in worker threads, with constant cost on failure.

argon2id is memory-hard (64 MiB per verification by default), which makes
guessing expensive on GPUs; it also makes each verification a real cost to
us, so verifications run in threads (the event loop keeps serving) and at
most a few at once (bounded memory under a login flood). A login for an
unknown user, or a user without a password, verifies against a dummy hash
made with the same parameters so that it costs the same time as a wrong
password for a real user.
"""

from __future__ import annotations

import asyncio
import os
import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_PASSWORD_LENGTH = 4096
"""Longer inputs are refused before hashing, so a request cannot buy unbounded work."""


def default_hasher() -> argon2.PasswordHasher:
    """argon2id with the library's recommended parameters (RFC 9106 low-memory profile)."""
    return argon2.PasswordHasher(type=argon2.Type.ID)


class Passwords:
    """Hashes and verifies passwords; never keeps or logs them."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None, concurrency: int = 0) -> None:
        self.hasher = hasher or default_hasher()
        if self.hasher.type is not argon2.Type.ID:
            raise ValueError("password hashes must be argon2id")
        self._slots = asyncio.Semaphore(concurrency or max(2, os.cpu_count() or 2))
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches; costs one argon2id verification either way."""
        # Made before any verification, so the first unknown user is not slower either.
        dummy = await self._dummy_hash()
        if password_hash is None:
            password_hash = dummy  # cannot match: the dummy's secret is random and unknown
        async with self._slots:
            return await asyncio.to_thread(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters than ours (upgrade on login)."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(32))
        return self._dummy
