"""Per-container restart and image-pull back-off, as kubelet applies it.

The first failure is retried at once; each further one waits twice as long
as the one before (10 s, 20 s, ... capped at 5 min), counted from when the
failure happened. A container that ran for 10 min clears its entry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

INITIAL = 10.0
MAXIMUM = 300.0
RESET_AFTER = 600.0


@dataclass
class _Entry:
    delay: float
    since: float


class BackOff:
    def __init__(
        self, initial: float = INITIAL, maximum: float = MAXIMUM, reset_after: float = RESET_AFTER
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        self._entries: dict[str, _Entry] = {}

    def in_backoff(self, key: str, since: float, now: float | None = None) -> float:
        """Seconds left to wait before retrying after a failure at `since` (0 = go)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        left = since + entry.delay - (time.time() if now is None else now)
        return max(0.0, left)

    def remaining(self, key: str, now: float | None = None) -> float:
        """Seconds left of the back-off started by the last `next(key, ...)`."""
        entry = self._entries.get(key)
        return 0.0 if entry is None else self.in_backoff(key, entry.since, now)

    def next(self, key: str, since: float) -> None:
        """Record a retry of `key` whose failure happened at `since`."""
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(self.initial, since)
        else:
            entry.delay = min(self.maximum, entry.delay * 2)
            entry.since = since

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget(self, prefix: str) -> None:
        """Drop every entry whose key starts with `prefix` (a deleted pod)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
