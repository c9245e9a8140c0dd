"""Exponential backoff with jitter, for reconnecting watches and retrying work."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial` up to `maximum`, each spread by ±`jitter`."""

    def __init__(
        self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0, jitter: float = 0.1
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < initial <= maximum, factor >= 1, 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.failures = 0

    def delay_for(self, failures: int) -> float:
        """The delay after `failures` consecutive failures (1 = the first), without jitter."""
        if failures <= 0:
            return 0.0
        # Cap the exponent so huge failure counts cannot overflow a float.
        exponent = min(failures - 1, 64)
        return min(self.initial * self.factor**exponent, self.maximum)

    def next(self) -> float:
        """Count one more failure and return how long to wait before trying again."""
        self.failures += 1
        base = self.delay_for(self.failures)
        return base * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self.failures = 0
