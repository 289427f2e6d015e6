"""Retry, circuit breaker and rate limit rules. Time comes from an injected clock (seconds, monotonic)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

Clock = Callable[[], float]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits a random time in [base*2^(n-1)/2, base*2^(n-1)],
    capped at ``maximum``. A ``Retry-After`` from the provider is a floor."""

    base_s: float = 1.0
    maximum_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        ceiling = float(min(self.maximum_s, self.base_s * 2 ** max(0, attempt - 1)))
        chosen = ceiling / 2 + rng.random() * ceiling / 2
        if retry_after_s is not None:
            chosen = max(chosen, min(retry_after_s, self.maximum_s))
        return chosen


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive transient failures; after ``reset_s`` one trial call is let
    through (half-open): success closes it, failure opens it again for another ``reset_s``."""

    def __init__(self, clock: Clock, *, threshold: int = 5, reset_s: float = 30.0) -> None:
        self._clock = clock
        self.threshold = threshold
        self.reset_s = reset_s
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go out now? In the half-open state only one trial call is allowed at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until a call may be tried (0 when closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - self._clock())

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_out = False

    def failure(self) -> None:
        self._failures += 1
        if self._trial_out or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._trial_out = False


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; :meth:`take` answers how long to wait for a token."""

    def __init__(self, clock: Clock, *, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self) -> float:
        """Reserve one token: 0 when one is available now, else the seconds to wait before using it."""
        self._refill()
        self._tokens -= 1
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate
