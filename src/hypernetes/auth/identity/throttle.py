"""Throttling of repeated failed password logins, per user, over a sliding window.

After `limit` failures for one user within `window` seconds, further password
logins for that user are refused with 429 (`TooManyRequests`) — before the
password is checked, so a correct and a wrong password get the same answer
and the answer says nothing about the password — until the oldest failure
leaves the window. A success clears the user's failures. Unknown user names
are counted like known ones (by name), so the answer does not reveal whether a
user exists. Memory is bounded: at most `max_keys` users are tracked, the least
recently failing forgotten first.

This is per server process; with several API servers each throttles on its
own (the limit is then per server, which still bounds guessing).

`observer(user, outcome)` (outcome: success, failure, throttled) is called for
every password login, e.g. to write the audit log; it never sees a password.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from hypernetes.auth.identity.errors import IdentityError

DEFAULT_LIMIT = 5
DEFAULT_WINDOW = 300.0
DEFAULT_MAX_KEYS = 10_000


class TooManyRequests(IdentityError):
    status = 429
    title = "Too Many Requests"

    def __init__(self) -> None:
        super().__init__("Too many failed login attempts for this user; try again later.")


class LoginThrottle:
    """Counts failed logins per user in a sliding window."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window: float = DEFAULT_WINDOW,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self.observer: Callable[[str, str], None] | None = None
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, key: str, who: str) -> None:
        """Raise TooManyRequests if `key` has used up its failures in the window."""
        failures = self._recent(key)
        if failures is not None and len(failures) >= self.limit:
            self._observe(who, "throttled")
            raise TooManyRequests()

    def failed(self, key: str, who: str) -> None:
        failures = self._recent(key)
        if failures is None:
            failures = self._failures[key] = deque()
        failures.append(self.clock())
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
        self._observe(who, "failure")

    def succeeded(self, key: str, who: str) -> None:
        self._failures.pop(key, None)
        self._observe(who, "success")

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def _observe(self, who: str, outcome: str) -> None:
        if self.observer is not None:
            self.observer(who, outcome)
