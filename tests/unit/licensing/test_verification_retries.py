"""When licensing asks identity again about an applicant's NIK, and when it stops asking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.contracts.workflow import RoleRefused, TransitionRefused
from mpp.licensing.domain.model import (
    NIK_REJECTED,
    NIK_STALLED,
    NO_ANSWER_REASON,
    RETRY_NIK_VERIFICATION,
    VERIFYING_NIK,
    Application,
    Submitted,
    VerificationStep,
)
from mpp.licensing.domain.verification import Next, RetryPolicy, Step, after_refusal, after_silence

CATALOGUE = load_demo_catalogue()
CLOCK = WorkingClock.for_site(CATALOGUE, "mpp-kota-sukamaju")
T0 = datetime(2026, 11, 3, 1, 15, tzinfo=UTC)
POLICY = RetryPolicy(
    max_attempts=4,
    answer_timeout=timedelta(minutes=5),
    base_delay=timedelta(seconds=30),
    max_delay=timedelta(minutes=12),
)
UNAVAILABLE = "Database kependudukan sedang tidak dapat diakses"


def _waiting(policy: RetryPolicy = POLICY) -> Application:
    return Application.submit(
        application_id="app-1",
        tracking_code="ABCDEFGHJK",
        service_type="dpmptsp.pbg",
        agency="dpmptsp",
        site="mpp-kota-sukamaju",
        channel="walk_in",
        submitted_at=T0,
        documents=1,
        workflow=CATALOGUE.workflow("pbg"),
        clock=CLOCK,
        verification_request_id="req-1",
        policy=policy,
    )


def _refuse(
    app: Application, request_id: str, *, retryable: bool, at: datetime, new: str
) -> VerificationStep:
    return app.nik_refused(
        request_id=request_id,
        reason=UNAVAILABLE,
        retryable=retryable,
        now=at,
        policy=POLICY,
        next_request_id=new,
    )


class TestWaits:
    def test_silence_waits_double_from_the_answer_timeout_up_to_the_cap(self) -> None:
        waits = [POLICY.silence_wait(n) for n in range(1, 5)]

        assert waits == [
            timedelta(minutes=5),
            timedelta(minutes=10),
            timedelta(minutes=12),
            timedelta(minutes=12),
        ]

    def test_refusal_waits_double_from_the_base_delay(self) -> None:
        waits = [POLICY.refusal_wait(n) for n in range(1, 4)]

        assert waits == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2)]

    def test_a_huge_attempt_number_stays_at_the_cap(self) -> None:
        assert POLICY.refusal_wait(10_000) == timedelta(minutes=12)

    @pytest.mark.parametrize(
        "kwargs",
        [{"max_attempts": 0}, {"answer_timeout": timedelta(0)}, {"base_delay": timedelta(seconds=-1)}],
    )
    def test_nonsense_policies_are_refused(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


class TestDecisions:
    def test_a_final_refusal_rejects_whatever_the_attempts(self) -> None:
        assert after_refusal(POLICY, attempts=1, retryable=False, now=T0) == Next(Step.REJECT)

    def test_a_retryable_refusal_asks_again_after_the_backoff(self) -> None:
        assert after_refusal(POLICY, attempts=2, retryable=True, now=T0) == Next(
            Step.ASK_AGAIN, T0 + timedelta(minutes=1)
        )

    def test_a_retryable_refusal_of_the_last_attempt_hands_the_application_to_an_officer(self) -> None:
        assert after_refusal(POLICY, attempts=4, retryable=True, now=T0) == Next(Step.HAND_TO_OFFICER)

    def test_silence_asks_again_and_waits_for_the_next_attempt(self) -> None:
        assert after_silence(POLICY, attempts=1, now=T0) == Next(Step.ASK_AGAIN, T0 + timedelta(minutes=10))

    def test_silence_after_the_last_attempt_hands_the_application_to_an_officer(self) -> None:
        assert after_silence(POLICY, attempts=4, now=T0) == Next(Step.HAND_TO_OFFICER)


class TestApplicationWaitingForItsNik:
    def test_a_new_application_expects_an_answer_within_the_timeout(self) -> None:
        app = _waiting()

        assert (app.state, app.verification_attempts) == (VERIFYING_NIK, 1)
        assert app.verification_next_at == T0 + timedelta(minutes=5)

    def test_nothing_is_due_before_the_wait_runs_out(self) -> None:
        app = _waiting()

        assert app.verification_due(T0 + timedelta(minutes=4), POLICY) is VerificationStep.IGNORED
        assert app.verification_attempts == 1

    def test_silence_publishes_the_same_request_again_until_the_attempts_are_used_up(self) -> None:
        app = _waiting()
        at = T0
        steps = []
        for _ in range(4):
            assert app.verification_next_at is not None
            at = app.verification_next_at
            steps.append(app.verification_due(at, POLICY))

        assert steps == [VerificationStep.ASK_AGAIN] * 3 + [VerificationStep.STALLED]
        assert app.verification_request_id == "req-1"
        assert (app.state, app.nik_failure_reason, app.verification_next_at) == (
            NIK_STALLED,
            NO_ANSWER_REASON,
            None,
        )
        assert app.state_label.startswith("Verifikasi NIK tertunda")

    def test_a_retryable_refusal_keeps_it_waiting_with_a_new_request_id(self) -> None:
        app = _waiting()

        step = _refuse(app, "req-1", retryable=True, at=T0 + timedelta(seconds=2), new="req-2")

        assert step is VerificationStep.RETRY_SCHEDULED
        assert (app.state, app.verification_request_id) == (VERIFYING_NIK, "req-2")
        assert app.verification_next_at == T0 + timedelta(seconds=32)
        assert app.verification_due(T0 + timedelta(seconds=32), POLICY) is VerificationStep.ASK_AGAIN
        assert app.verification_attempts == 2

    def test_an_answer_to_the_replaced_request_is_ignored(self) -> None:
        app = _waiting()
        _refuse(app, "req-1", retryable=True, at=T0, new="req-2")

        assert not app.nik_verified("c_0123", "req-1")
        assert _refuse(app, "req-1", retryable=False, at=T0, new="req-3") is VerificationStep.IGNORED
        assert app.nik_verified("c_0123", "req-2")
        assert app.state == "submitted"

    def test_a_final_refusal_rejects_at_once(self) -> None:
        app = _waiting()

        assert _refuse(app, "req-1", retryable=False, at=T0, new="unused") is VerificationStep.REJECTED
        assert (app.state, app.verification_request_id, app.verification_next_at) == (
            NIK_REJECTED,
            "req-1",
            None,
        )
        assert app.finished

    def test_retryable_refusals_of_every_attempt_stall_the_application(self) -> None:
        app = _waiting()
        request, at = "req-1", T0
        for n in range(2, 5):
            assert (
                _refuse(app, request, retryable=True, at=at, new=f"req-{n}")
                is VerificationStep.RETRY_SCHEDULED
            )
            assert app.verification_next_at is not None
            at, request = app.verification_next_at, f"req-{n}"
            assert app.verification_due(at, POLICY) is VerificationStep.ASK_AGAIN

        assert _refuse(app, request, retryable=True, at=at, new="req-5") is VerificationStep.STALLED
        assert (app.state, app.nik_failure_reason) == (NIK_STALLED, UNAVAILABLE)
        assert not app.finished

    def test_the_workflow_starts_once_however_often_identity_says_yes(self) -> None:
        app = _waiting()

        assert app.nik_verified("c_0123", "req-1")
        assert not app.nik_verified("c_0123", "req-1")
        assert app.events == [Submitted("app-1")]
        assert app.verification_next_at is None
        assert app.verification_due(T0 + timedelta(days=1), POLICY) is VerificationStep.IGNORED


class TestStalledApplication:
    def _stalled(self) -> Application:
        app = _waiting()
        while app.state == VERIFYING_NIK:
            assert app.verification_next_at is not None
            app.verification_due(app.verification_next_at, POLICY)
        return app

    def test_officers_may_only_retry_the_verification(self) -> None:
        app = self._stalled()

        assert app.allowed_actions({"officer"}) == [RETRY_NIK_VERIFICATION]
        with pytest.raises(TransitionRefused):
            app.check("verify", {"officer"})

    def test_other_roles_see_no_action_and_may_not_retry(self) -> None:
        app = self._stalled()

        assert app.allowed_actions({"ministry"}) == []
        with pytest.raises(RoleRefused):
            app.restart_verification(request_id="req-9", now=T0, policy=POLICY, roles={"operator"})
        assert app.state == NIK_STALLED

    def test_a_retry_starts_a_new_round_with_a_new_request(self) -> None:
        app = self._stalled()
        later = T0 + timedelta(hours=3)

        app.restart_verification(request_id="req-9", now=later, policy=POLICY)

        assert (app.state, app.verification_request_id, app.verification_attempts) == (
            VERIFYING_NIK,
            "req-9",
            1,
        )
        assert app.verification_next_at == later + timedelta(minutes=5)
        assert app.nik_failure_reason is None

    def test_a_late_answer_to_the_outstanding_request_still_starts_the_workflow(self) -> None:
        app = self._stalled()

        assert app.nik_verified("c_0123", "req-1")
        assert app.state == "submitted"

    def test_a_late_retryable_refusal_leaves_it_to_the_officer(self) -> None:
        app = self._stalled()

        assert _refuse(app, "req-1", retryable=True, at=T0, new="req-2") is VerificationStep.IGNORED
        assert (app.state, app.verification_request_id) == (NIK_STALLED, "req-1")

    def test_only_a_stalled_application_can_be_retried(self) -> None:
        app = _waiting()

        with pytest.raises(TransitionRefused):
            app.restart_verification(request_id="req-2", now=T0, policy=POLICY)
