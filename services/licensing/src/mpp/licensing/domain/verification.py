"""When to ask the identity service again about an applicant's NIK, and when to stop asking.

Pure rules, no I/O: the aggregate applies them, the sweep and the results consumer call the aggregate.

Two things can keep an application in ``verifying_nik``:

- silence: no answer arrived. The same request (same request id) is published again after the answer
  timeout, then after doubling waits up to ``max_delay``; identity answers a request id once, so asking
  again never produces a second, different answer;
- a retryable refusal (``registry_unavailable``): the question was answered "not now". A new request
  (new request id) is published after ``base_delay``, doubling up to ``max_delay``.

Every publication counts as one attempt. After ``max_attempts`` the application stops waiting in
``nik_verification_stalled``, where an officer sees it and can start a new round of attempts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    """Requests published (the first included) before the application is handed to an officer."""
    answer_timeout: timedelta = timedelta(minutes=5)
    """Wait for an answer this long after the first request before asking again."""
    base_delay: timedelta = timedelta(seconds=30)
    """Wait after the first retryable refusal before asking again."""
    max_delay: timedelta = timedelta(minutes=30)
    """No wait is longer than this."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.answer_timeout, self.base_delay, self.max_delay) <= timedelta(0):
            raise ValueError("timeouts and delays must be positive")

    def silence_wait(self, attempts: int) -> timedelta:
        """How long to wait for an answer after the ``attempts``-th publication."""
        return _doubling(self.answer_timeout, attempts, self.max_delay)

    def refusal_wait(self, attempts: int) -> timedelta:
        """How long to wait before asking again after the ``attempts``-th request was refused retryably."""
        return _doubling(self.base_delay, attempts, self.max_delay)


def _doubling(first: timedelta, attempts: int, cap: timedelta) -> timedelta:
    if attempts < 1:
        raise ValueError("attempts start at 1")
    # 2**exponent would overflow timedelta long before the cap matters; stop doubling past the cap.
    wait = first
    for _ in range(attempts - 1):
        if wait >= cap:
            break
        wait *= 2
    return min(wait, cap)


class Step(StrEnum):
    ASK_AGAIN = "ask_again"
    """Publish the request again at ``at``."""
    HAND_TO_OFFICER = "hand_to_officer"
    """Attempts are exhausted: stop waiting, an officer decides."""
    REJECT = "reject"
    """The refusal is final."""


@dataclass(frozen=True)
class Next:
    step: Step
    at: datetime | None = None


def after_refusal(policy: RetryPolicy, *, attempts: int, retryable: bool, now: datetime) -> Next:
    """What follows identity's refusal of the ``attempts``-th request."""
    if not retryable:
        return Next(Step.REJECT)
    if attempts >= policy.max_attempts:
        return Next(Step.HAND_TO_OFFICER)
    return Next(Step.ASK_AGAIN, now + policy.refusal_wait(attempts))


def after_silence(policy: RetryPolicy, *, attempts: int, now: datetime) -> Next:
    """What follows when the ``attempts``-th request went unanswered until its wait ran out: ask again
    (the attempt that is published now is ``attempts + 1``), or stop."""
    if attempts >= policy.max_attempts:
        return Next(Step.HAND_TO_OFFICER)
    return Next(Step.ASK_AGAIN, now + policy.silence_wait(attempts + 1))
