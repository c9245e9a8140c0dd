"""The controllers' work queue: per-key dedup, delayed adds and rate-limited retries.

Semantics follow client-go's workqueue: a key is queued at most once; a key
being processed is never handed to a second worker at the same time, and if
it is added again meanwhile it is queued once more when the first worker
calls `done`. Failed keys come back after an exponential per-key backoff.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Hashable

from hypernetes.client.backoff import Backoff


class ShutDown(Exception):
    """`get` on a queue that has been shut down."""


class ItemBackoff:
    """Per-key exponential backoff: the n-th consecutive failure of a key waits base·2ⁿ⁻¹."""

    def __init__(self, base: float = 0.05, maximum: float = 60.0) -> None:
        self._backoff = Backoff(base, maximum, jitter=0.0)
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        """Count a failure of `key`; the delay before it is retried."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return self._backoff.delay_for(failures)

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        """`key` succeeded: its next failure starts from the base delay again."""
        self._failures.pop(key, None)


class WorkQueue:
    """An asyncio work queue of hashable keys; see the module docstring."""

    def __init__(self, rate_limiter: ItemBackoff | None = None) -> None:
        self.rate_limiter = rate_limiter or ItemBackoff()
        self._queue: collections.deque[Hashable] = collections.deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._waiting: dict[Hashable, asyncio.TimerHandle] = {}
        self._ready = asyncio.Event()
        """Set whenever the queue may have keys for a waiting `get`."""
        self._shutting_down = False

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those being processed or delayed)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: Hashable) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # `done` queues it again, so two workers never hold the same key
        self._queue.append(key)
        self._notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Add `key` after `delay` seconds; an earlier pending add of the same key wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending.when() <= when:
                return
            pending.cancel()
        self._waiting[key] = loop.call_at(when, self._fire, key)

    def add_rate_limited(self, key: Hashable) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: Hashable) -> None:
        self.rate_limiter.forget(key)

    def _fire(self, key: Hashable) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def _notify(self) -> None:
        self._ready.set()

    async def get(self) -> Hashable:
        """The next key to process (mark it `done` after); raises `ShutDown` when shut down."""
        while not self._queue and not self._shutting_down:
            # Only cleared while the queue is empty, so no add can be missed.
            self._ready.clear()
            await self._ready.wait()
        if self._shutting_down:
            raise ShutDown
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._notify()

    def shutdown(self) -> None:
        """Wake every waiting `get` with `ShutDown` and drop delayed adds."""
        self._shutting_down = True
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._ready.set()
