"""Backoff, circuit breaker and token bucket on a fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp.notification.domain.resilience import Backoff, BreakerState, CircuitBreaker, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_backoff_grows_exponentially_with_jitter_and_is_capped(attempt: int, seed: int) -> None:
    backoff = Backoff(base_s=1.0, maximum_s=60.0)
    delay = backoff.delay(attempt, random.Random(seed))
    ceiling = min(60.0, 2.0 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling


def test_backoff_jitter_spreads_the_retries() -> None:
    rng = random.Random(7)
    delays = {round(Backoff(base_s=1.0).delay(5, rng), 6) for _ in range(20)}
    assert len(delays) > 10


def test_retry_after_is_a_floor_but_never_beyond_the_cap() -> None:
    backoff = Backoff(base_s=1.0, maximum_s=30.0)
    assert backoff.delay(1, random.Random(1), retry_after_s=12) == 12
    assert backoff.delay(1, random.Random(1), retry_after_s=3600) == 30


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_the_reset() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, threshold=3, reset_s=10)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.failure()
    assert breaker.state.value == "open" and not breaker.allow()
    assert breaker.retry_in() == pytest.approx(10)
    clock.t += 10
    assert breaker.state.value == "half_open"
    assert breaker.allow()
    assert not breaker.allow(), "only one trial call while half-open"
    breaker.failure()
    assert breaker.state.value == "open"
    clock.t += 10
    assert breaker.allow()
    breaker.success()
    assert breaker.state.value == "closed" and breaker.allow() and breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(FakeClock(), threshold=2, reset_s=5)
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state is BreakerState.CLOSED


def test_token_bucket_allows_the_burst_then_paces_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock, rate=10, burst=5)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    waits = [bucket.take() for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])
    clock.t += 0.3
    assert bucket.take() == pytest.approx(0.1)
    clock.t += 100
    assert [bucket.take() for _ in range(5)] == [0.0] * 5


@given(st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200))
def test_token_bucket_never_exceeds_rate_times_time_plus_burst(gaps: list[float]) -> None:
    clock = FakeClock()
    start = clock.t
    bucket = TokenBucket(clock, rate=5, burst=3)
    send_times = []
    for gap in gaps:
        clock.t += gap
        send_times.append(clock.t + bucket.take())
    end = max(send_times)
    assert len(send_times) <= 5 * (end - start) + 3 + 1e-6


def test_token_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(FakeClock(), rate=0, burst=1)
