"""A cache of RBAC verdicts, exact: cleared whenever a role or binding changes.

An RBAC verdict depends only on the user's name and groups, the request's
attributes, and the four followed RBAC kinds. Each follower calls its
listeners synchronously when its copy changes, and the cache is cleared right
there — so a cached verdict is never older than what uncached RBAC would read.
Evaluating RBAC walks every binding (cost grows with their number); a cache
hit is one dict lookup. Size is bounded by clearing when full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from hypernetes.auth.principal import Attributes, User

MAX_ENTRIES = 50_000

Key = tuple[str, tuple[str, ...], Attributes]


class _Followed(Protocol):
    listeners: list[Callable[[], None]]


class DecisionCache:
    """Memoizes `evaluate(user, attrs)` until any of `followers` changes."""

    def __init__(
        self,
        followers: Iterable[_Followed],
        evaluate: Callable[[User, Attributes], bool],
        *,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.evaluate = evaluate
        self.max_entries = max_entries
        self._verdicts: dict[Key, bool] = {}
        for follower in followers:
            follower.listeners.append(self._verdicts.clear)

    def allowed(self, user: User, attrs: Attributes) -> bool:
        key = (user.name, user.groups, attrs)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self.evaluate(user, attrs)
            if len(self._verdicts) >= self.max_entries:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict
