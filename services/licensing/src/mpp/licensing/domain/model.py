"""The permit application aggregate. Its states and actions come from the service type's workflow."""

from __future__ import annotations

import math
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mpp.contracts.calendar import CalendarNotCovered, ClockPaused, DurationUnit, Pause, Sla, WorkingClock
from mpp.contracts.workflow import RoleRefused, TransitionRefused, Workflow, WorkflowAction
from mpp.licensing.domain.verification import RetryPolicy, Step, after_refusal, after_silence

ROMAN_MONTHS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
TRACKING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
AT_RISK_SHARE = 0.2
"""An application is at risk once less than this share of its total working time remains."""


class LicensingError(Exception):
    """Base of every licensing domain error."""


class PermitNumberMissing(LicensingError):
    """An action that issues a permit was taken without a permit number."""


class SlaStatus(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"


@dataclass(frozen=True)
class Submitted:
    application_id: str


@dataclass(frozen=True)
class Verified:
    officer: str
    at: datetime


@dataclass(frozen=True)
class Returned:
    missing: tuple[str, ...]
    note: str
    at: datetime


@dataclass(frozen=True)
class Resubmitted:
    at: datetime


@dataclass(frozen=True)
class Approved:
    officer: str
    at: datetime
    working_days_elapsed: int | None = None


@dataclass(frozen=True)
class Rejected:
    officer: str
    reason_code: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class PermitGranted:
    permit_number: str
    at: datetime
    within_sla: bool | None


@dataclass(frozen=True)
class PermitRevoked:
    permit_number: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class SlaBreached:
    due_at: datetime
    at: datetime


DomainEvent = (
    Submitted
    | Verified
    | Returned
    | Resubmitted
    | Approved
    | Rejected
    | PermitGranted
    | PermitRevoked
    | SlaBreached
)

PERMIT_ISSUED = "PermitIssued"
RETRY_NIK_VERIFICATION = "retry_nik_verification"
"""The officer's action on a stalled application: verify the NIK again."""
RETRY_ROLES = ("officer", "supervisor")
"""Who may retry a stalled NIK verification."""

VERIFYING_NIK = "verifying_nik"
"""Before the workflow: the applicant's NIK is being verified by the identity service."""
NIK_REJECTED = "nik_rejected"
"""Before the workflow, and final: the identity service could not verify the NIK."""
NIK_STALLED = "nik_verification_stalled"
"""Before the workflow: every attempt to verify the NIK went unanswered or was refused for a passing
reason; an officer may start verifying again."""
PRE_WORKFLOW_LABELS = {
    VERIFYING_NIK: "Menunggu verifikasi NIK",
    NIK_REJECTED: "NIK tidak dapat diverifikasi",
    NIK_STALLED: "Verifikasi NIK tertunda: layanan kependudukan belum menjawab, petugas dapat mengulang",
}
NO_ANSWER_REASON = "Layanan kependudukan tidak menjawab permintaan verifikasi NIK"
REQUEST_LOST_REASON = "Permintaan verifikasi NIK tidak dapat diulang; ajukan permohonan baru"


class VerificationStep(StrEnum):
    """What one answer or one sweep pass did to an application waiting for its NIK verification."""

    IGNORED = "ignored"
    STARTED = "started"
    REJECTED = "rejected"
    ASK_AGAIN = "ask_again"
    """A request is due: publish ``verification_request_id`` (again)."""
    RETRY_SCHEDULED = "retry_scheduled"
    STALLED = "stalled"


@dataclass
class Application:
    id: str
    tracking_code: str
    service_type: str
    agency: str
    site: str
    applicant_ref: str
    channel: str
    submitted_at: datetime
    documents: int
    workflow: Workflow = field(compare=False)
    clock: WorkingClock = field(compare=False)
    state: str = ""
    pauses: list[Pause] = field(default_factory=list)
    due_at: datetime | None = None
    at_risk_from: datetime | None = None
    approved_at: datetime | None = None
    approved_by: str | None = None
    issued_at: datetime | None = None
    permit_number: str | None = None
    within_sla: bool | None = None
    sla_breached_at: datetime | None = None
    verification_request_id: str | None = None
    nik_failure_reason: str | None = None
    verification_attempts: int = 0
    """Verification requests published in the current round (the first one included)."""
    verification_next_at: datetime | None = None
    """When to publish a verification request again if no answer settled it by then."""
    version: int = 0
    events: list[DomainEvent] = field(default_factory=list, compare=False)

    @classmethod
    def submit(
        cls,
        *,
        application_id: str,
        tracking_code: str,
        service_type: str,
        agency: str,
        site: str,
        channel: str,
        submitted_at: datetime,
        documents: int,
        workflow: Workflow,
        clock: WorkingClock,
        verification_request_id: str,
        policy: RetryPolicy | None = None,
    ) -> Application:
        """A new application waiting for its NIK to be verified; the workflow starts once it is. Its
        first verification request is published with it."""
        policy = policy or RetryPolicy()
        return cls(
            id=application_id,
            tracking_code=tracking_code,
            service_type=service_type,
            agency=agency,
            site=site,
            applicant_ref="",
            channel=channel,
            submitted_at=submitted_at,
            documents=documents,
            workflow=workflow,
            clock=clock,
            state=VERIFYING_NIK,
            verification_request_id=verification_request_id,
            verification_attempts=1,
            verification_next_at=submitted_at + policy.silence_wait(1),
        )

    # NIK verification (before the workflow)

    @property
    def verifying_nik(self) -> bool:
        return self.state == VERIFYING_NIK

    @property
    def awaiting_nik(self) -> bool:
        """Still before the workflow with the NIK not settled: verifying or stalled."""
        return self.state in (VERIFYING_NIK, NIK_STALLED)

    def answers_outstanding_request(self, request_id: str) -> bool:
        return self.awaiting_nik and request_id == self.verification_request_id

    def nik_verified(self, citizen_ref: str, request_id: str | None = None) -> bool:
        """The identity service verified the NIK: the workflow starts, its SLA clock counting from the
        submission. Whether this call changed anything (a repeated or stale answer does not). A late
        answer to the outstanding request still counts after the application stalled."""
        if not self.answers_outstanding_request(request_id or self.verification_request_id or ""):
            return False
        self.applicant_ref = citizen_ref
        self.state = self.workflow.initial_state.code
        self.verification_next_at = None
        self.nik_failure_reason = None
        self._recompute_due()
        self.events.append(Submitted(self.id))
        return True

    def nik_rejected(self, reason: str) -> bool:
        """The identity service could not verify the NIK: the application ends here."""
        if not self.awaiting_nik:
            return False
        self.state = NIK_REJECTED
        self.nik_failure_reason = reason
        self.verification_next_at = None
        return True

    def nik_refused(
        self,
        *,
        request_id: str,
        reason: str,
        retryable: bool,
        now: datetime,
        policy: RetryPolicy,
        next_request_id: str,
    ) -> VerificationStep:
        """Identity refused the outstanding request. A final refusal rejects the application; a passing
        one (the registry was unavailable) schedules a new request with ``next_request_id``, or hands the
        application to an officer once the attempts are used up."""
        if not self.answers_outstanding_request(request_id):
            return VerificationStep.IGNORED
        if not self.verifying_nik:
            # Stalled: only a final refusal still changes something; a passing one leaves it to the officer.
            return (
                VerificationStep.REJECTED
                if not retryable and self.nik_rejected(reason)
                else VerificationStep.IGNORED
            )
        nxt = after_refusal(policy, attempts=self.verification_attempts, retryable=retryable, now=now)
        if nxt.step is Step.REJECT:
            self.nik_rejected(reason)
            return VerificationStep.REJECTED
        if nxt.step is Step.HAND_TO_OFFICER:
            self._stall(reason)
            return VerificationStep.STALLED
        self.verification_request_id = next_request_id
        self.verification_next_at = nxt.at
        self.nik_failure_reason = reason
        return VerificationStep.RETRY_SCHEDULED

    def verification_due(self, now: datetime, policy: RetryPolicy) -> VerificationStep:
        """The sweep found the application still verifying: publish the outstanding request again if its
        wait ran out (same request id), or hand it to an officer once the attempts are used up."""
        if not self.verifying_nik or self.verification_next_at is None or self.verification_next_at > now:
            return VerificationStep.IGNORED
        nxt = after_silence(policy, attempts=self.verification_attempts, now=now)
        if nxt.step is Step.HAND_TO_OFFICER:
            self._stall(self.nik_failure_reason or NO_ANSWER_REASON)
            return VerificationStep.STALLED
        self.verification_attempts += 1
        self.verification_next_at = nxt.at
        return VerificationStep.ASK_AGAIN

    def restart_verification(
        self, *, request_id: str, now: datetime, policy: RetryPolicy, roles: Collection[str] = RETRY_ROLES
    ) -> None:
        """An officer starts a new round of attempts for a stalled application (a new request id)."""
        if self.state != NIK_STALLED:
            raise TransitionRefused(self.state, RETRY_NIK_VERIFICATION, self.allowed_actions(roles))
        if not set(roles) & set(RETRY_ROLES):
            raise RoleRefused(self.state, RETRY_NIK_VERIFICATION, roles, RETRY_ROLES)
        self.state = VERIFYING_NIK
        self.verification_request_id = request_id
        self.verification_attempts = 1
        self.verification_next_at = now + policy.silence_wait(1)
        self.nik_failure_reason = None

    def verification_unrepeatable(self, reason: str) -> None:
        """The pending request cannot be published again (it cannot be read back): stop waiting."""
        if self.verifying_nik:
            self._stall(reason)

    def _stall(self, reason: str) -> None:
        self.state = NIK_STALLED
        self.nik_failure_reason = reason
        self.verification_next_at = None

    # Workflow

    def check(self, action_code: str, roles: Collection[str], reason: str | None = None) -> WorkflowAction:
        """The action if someone with ``roles`` may take it now; raises the workflow's refusals."""
        if self.state in PRE_WORKFLOW_LABELS:
            raise TransitionRefused(self.state, action_code, [])
        return self.workflow.apply(self.state, action_code, roles, reason=reason)

    def act(
        self,
        action_code: str,
        roles: Collection[str],
        at: datetime,
        reason: str | None = None,
        missing: Sequence[str] = (),
        *,
        actor: str = "",
        permit_number: str | None = None,
    ) -> WorkflowAction:
        """Take an action of the workflow, moving the SLA clock and recording what happened."""
        action = self.check(action_code, roles, reason)
        if action.emits == PERMIT_ISSUED and not permit_number:
            raise PermitNumberMissing(action_code)
        before = self.state
        self.state = action.to_state
        self._move_clock(before, at)
        note = (reason or "").strip()
        match action.emits:
            case "ApplicationVerified":
                self.events.append(Verified(actor, at))
            case "ApplicationReturned":
                self.events.append(Returned(tuple(missing), note, at))
            case "ApplicationResubmitted":
                self.events.append(Resubmitted(at))
            case "ApplicationApproved":
                self.approved_at, self.approved_by = at, actor
                self.events.append(Approved(actor, at, self._working_days_used(at)))
            case "ApplicationRejected":
                self.events.append(Rejected(actor, action.code, note, at))
            case "PermitIssued":
                assert permit_number is not None
                self.permit_number, self.issued_at = permit_number, at
                self.within_sla = None if self.due_at is None else at <= self.due_at
                self.events.append(PermitGranted(permit_number, at, self.within_sla))
            case "PermitRevoked" if self.permit_number is not None:
                self.events.append(PermitRevoked(self.permit_number, note, at))
        return action

    def allowed_actions(self, roles: Collection[str]) -> list[str]:
        if self.state == NIK_STALLED:
            return [RETRY_NIK_VERIFICATION] if set(roles) & set(RETRY_ROLES) else []
        if self.state in PRE_WORKFLOW_LABELS:
            return []
        return [a.code for a in self.workflow.allowed_actions(self.state, roles)]

    @property
    def finished(self) -> bool:
        if self.state in PRE_WORKFLOW_LABELS:
            return self.state == NIK_REJECTED
        return self.workflow.is_finished(self.state)

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    @property
    def state_label(self) -> str:
        if self.state in PRE_WORKFLOW_LABELS:
            return PRE_WORKFLOW_LABELS[self.state]
        return self.workflow.state(self.state).label

    # SLA clock

    def breach(self, at: datetime) -> bool:
        """Mark the SLA as breached (once); whether this call marked it."""
        if self.sla_breached_at is not None or self.finished or self.due_at is None or at <= self.due_at:
            return False
        self.sla_breached_at = at
        self.events.append(SlaBreached(self.due_at, at))
        return True

    def sla_status(self, now: datetime) -> SlaStatus:
        if self.sla_breached_at is not None:
            return SlaStatus.BREACHED
        if self.finished:
            return SlaStatus.BREACHED if self.within_sla is False else SlaStatus.ON_TRACK
        due, risk, at = self.due_at, self.at_risk_from, now
        if self.paused:
            # Time stands still while paused: judge the application as it stood when the clock stopped.
            at = self.pauses[-1][0]
            due, risk = self._deadlines(self.pauses[:-1])
        if due is not None and at > due:
            return SlaStatus.BREACHED
        if risk is not None and at > risk:
            return SlaStatus.AT_RISK
        return SlaStatus.ON_TRACK

    def _move_clock(self, before: str, at: datetime) -> None:
        runs_before = self.workflow.clock_runs_in(before) and not self.workflow.is_finished(before)
        runs_now = self.workflow.clock_runs_in(self.state)
        if runs_before and not runs_now and not self.finished:
            self.pauses.append((at, None))
        elif self.paused and (runs_now or self.finished):
            self.pauses[-1] = (self.pauses[-1][0], at)
        if not self.workflow.is_finished(before):
            self._recompute_due()

    def _working_days_used(self, at: datetime) -> int | None:
        if self.workflow.total_sla.unit != DurationUnit.WORKING_DAYS:
            return None
        try:
            return self.clock.elapsed(self.submitted_at, at, DurationUnit.WORKING_DAYS, self.pauses)
        except CalendarNotCovered:
            return None

    def _recompute_due(self) -> None:
        self.due_at, self.at_risk_from = self._deadlines(self.pauses)

    def _deadlines(self, pauses: Sequence[Pause]) -> tuple[datetime | None, datetime | None]:
        sla = self.workflow.total_sla
        try:
            return (
                self.clock.due(self.submitted_at, sla, pauses),
                self.clock.due(self.submitted_at, _risk_threshold(sla), pauses),
            )
        except (ClockPaused, CalendarNotCovered):
            # Paused: the due instant is unknown until the clock runs again. A year the calendar does
            # not list yet cannot be computed either; the application then shows no due date.
            return None, None


def _risk_threshold(sla: Sla) -> Sla:
    """The part of the limit after which less than AT_RISK_SHARE remains."""
    if sla.unit == DurationUnit.WORKING_DAYS:
        return Sla(value=max(1, math.floor(sla.value * (1 - AT_RISK_SHARE))), unit=sla.unit)
    minutes = sla.value * (60 if sla.unit == DurationUnit.HOURS else 1)
    return Sla(value=max(1, math.floor(minutes * (1 - AT_RISK_SHARE))), unit=DurationUnit.MINUTES)


def new_tracking_code() -> str:
    """A short code a citizen can type: 10 characters without look-alikes (0/O, 1/I)."""
    return "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(10))


def format_permit_number(*, sequence: int, agency: str, service_short: str, issued_at: datetime) -> str:
    """Permit number in the regional decree style, e.g. ``0042/DPMPTSP/PBG/XI/2026``."""
    return (
        f"{sequence:04d}/{agency.upper()}/{service_short.upper()}/"
        f"{ROMAN_MONTHS[issued_at.month - 1]}/{issued_at.year}"
    )


def mask_name(name: str) -> str:
    """A holder's name as shown publicly: the first letter of each word, e.g. ``B*** S******``."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split() if word)
