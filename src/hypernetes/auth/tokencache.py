"""A cache of validated identity tokens for the API server, invalidated by a store watch.

Validating an identity token costs a Fernet decryption and several store
reads (user, project, roles, revocations) — most of the per-request cost of
the token path. kube-apiserver caches token authentication for seconds to
minutes; this cache is stricter:

- an entry is used only while nothing under the identity service's part of
  the store (`/identity/`) has changed since it was made: a store watch bumps
  a generation on every change there (revocations, password changes, role or
  user removal, disabled projects...), which voids every entry at once;
- the watch must be running (else every request validates afresh);
- an entry never outlives its token, nor `max_age` seconds (so key rotation,
  which lives outside the store, is noticed within that time);
- only successes are cached, under the token's SHA-256 (random tokens fill
  nothing), and at most `max_entries` of them.

A revocation thus takes effect as soon as its watch event is delivered: in
the same process that is before the revoking request has even been answered;
with several API servers on etcd, within the watch latency (milliseconds).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from hypernetes.auth.identity.kube import to_user
from hypernetes.auth.identity.service import IdentityService
from hypernetes.auth.principal import User
from hypernetes.store import Store

log = logging.getLogger(__name__)

IDENTITY_PREFIX = "/identity/"
MAX_ENTRIES = 10_000
MAX_AGE = 30.0


@dataclass(frozen=True)
class _Entry:
    user: User
    generation: int
    valid_until: float


class CachedIdentityAuthenticator:
    """Bearer token -> User through the identity service, with the cache described above."""

    def __init__(
        self,
        identity: IdentityService,
        store: Store,
        *,
        max_entries: int = MAX_ENTRIES,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.store = store
        self.max_entries = max_entries
        self.max_age = max_age
        self.clock = clock
        self.generation = 0
        self.live = False
        """Whether the watch runs (only then is the cache used)."""
        self._entries: dict[bytes, _Entry] = {}

    async def __call__(self, token: str) -> User | None:
        key = hashlib.sha256(token.encode()).digest()
        now = self.clock()
        entry = self._entries.get(key) if self.live else None
        if entry is not None and entry.generation == self.generation and now < entry.valid_until:
            return entry.user
        generation = self.generation
        principal = await self.identity.validate_token(token)
        user = to_user(principal) if principal is not None else None
        if user is None or principal is None:
            self._entries.pop(key, None)
            return None
        if self.live and generation == self.generation:  # nothing changed while validating
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            until = min(principal.expires_at.timestamp(), now + self.max_age)
            self._entries[key] = _Entry(user, generation, until)
        return user

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    async def follow(self) -> None:
        """Watch the identity keys for ever; the cache is used only while this runs."""
        while True:
            try:
                revision = await self.store.current_revision()
                watch = self.store.watch(IDENTITY_PREFIX, revision + 1)
                try:
                    self.invalidate()
                    self.live = True
                    async for _event in watch:
                        self.invalidate()
                finally:
                    self.live = False
                    self.invalidate()
                    watch.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store's trouble: validate afresh until back
                log.warning("identity token cache: watch failed (%s); retrying", exc)
            await asyncio.sleep(0.5)
