"""Use cases of SKM surveys and complaints: (command, unit of work, ports) -> result."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from mpp.contracts.calendar import CalendarNotCovered, WorkingClock
from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import ComplaintCategory, ComplaintChannel, ComplaintClass
from mpp.contracts.events.queue import (
    ComplaintOutcome,
    ComplaintReceivedV1,
    ComplaintResolvedV1,
    ComplaintRespondedV1,
    RespondentProfile,
    SurveySubmittedV1,
)
from mpp.queue.domain.complaints import Complaint, new_tracking_code, working_days_elapsed
from mpp.queue.domain.model import QueueError, TicketState
from mpp.queue.domain.surveys import (
    ServiceNotCompleted,
    SurveyAlreadyAnswered,
    SurveyAnswers,
    SurveyInvitation,
)
from mpp.queue.handlers import NotFound, Ports, UnknownServiceType, _wrap
from mpp.queue.persistence.uow import QueueUnitOfWork

FALLBACK_CLOSING = time(16, 0)
TRACKING_CODE_ATTEMPTS = 8


class SiteWorkingDays:
    """The site's working days from its catalogue calendar.

    For a year the calendar does not list yet (a 60-day limit running into next year), Monday to Friday
    count, closing at 16:00: a limit is never refused for want of next year's holiday list.
    """

    def __init__(self, ports: Ports, site: str) -> None:
        self._tz: tzinfo = ports.catalogue.site_zone(site)
        self._clock = WorkingClock(ports.catalogue.site_calendar(site), self._tz)

    def local_day(self, instant: datetime) -> date:
        return instant.astimezone(self._tz).date()

    def is_working_day(self, d: date) -> bool:
        try:
            return self._clock.is_working_day(d)
        except CalendarNotCovered:
            return d.isoweekday() <= 5

    def closing_time(self, d: date) -> datetime:
        try:
            if self._clock.is_working_day(d):
                return self._clock.closing_time(d)
        except CalendarNotCovered:
            pass
        return datetime.combine(d, FALLBACK_CLOSING, tzinfo=self._tz)


class UnknownAgency(QueueError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"unknown agency {code!r}")


# --- surveys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitSurvey:
    key: str
    """The survey token, or the id of the completed ticket."""
    answers: SurveyAnswers
    correlation_id: str


async def survey_invitation(uow: QueueUnitOfWork, key: str) -> SurveyInvitation:
    """The invitation of a token or ticket id; a ticket not completed yet has none (ServiceNotCompleted)."""
    invitation = await uow.surveys.find(key)
    if invitation is not None:
        return invitation
    ticket = await uow.tickets.get(key)
    if ticket is not None and ticket.state is not TicketState.COMPLETED:
        raise ServiceNotCompleted(ticket.state.value)
    raise NotFound(key)


async def submit_survey(cmd: SubmitSurvey, uow: QueueUnitOfWork, ports: Ports) -> str:
    """Record one anonymous questionnaire for a completed service, at most once; returns its id."""
    invitation = await survey_invitation(uow, cmd.key)
    now = ports.clock.now()
    invitation.ensure_open(now)
    if not await uow.surveys.claim(invitation.token, now):
        # Another submit took it between the read and the claim.
        raise SurveyAlreadyAnswered(invitation.token)
    survey_id = str(uuid.uuid4())
    answers = cmd.answers
    await uow.surveys.record(
        id=survey_id,
        site=invitation.site,
        agency=invitation.agency,
        service_type=invitation.service_type,
        answers=answers,
        at=now,
    )
    uow.publish(
        _wrap(
            SurveySubmittedV1(
                survey_id=survey_id,
                service_type=invitation.service_type,
                agency=invitation.agency,
                scores=answers.scores,
                respondent=RespondentProfile(
                    sex=answers.sex,
                    age_band=answers.age_band,
                    education=answers.education,
                    occupation=answers.occupation,
                ),
                channel=answers.channel,
                submitted_at=now,
            ),
            agency=invitation.agency,
            site=invitation.site,
            subject=survey_id,
            corr=cmd.correlation_id,
        )
    )
    return survey_id


# --- complaints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiveComplaint:
    site: str
    channel: ComplaintChannel
    category: ComplaintCategory
    complaint_class: ComplaintClass
    description: str
    anonymous: bool
    received_by: str
    correlation_id: str
    complainant_ref: str | None = None
    contact: str | None = None
    agency: str | None = None
    service_type: str | None = None
    lapor_tracking_id: str | None = None


@dataclass(frozen=True)
class RespondToComplaint:
    complaint_id: str
    officer: str
    text: str
    correlation_id: str


@dataclass(frozen=True)
class ResolveComplaint:
    complaint_id: str
    officer: str
    outcome: ComplaintOutcome
    text: str
    correlation_id: str


def _complaint_envelope(ports: Ports, c: Complaint, payload: EventPayload, corr: str) -> Envelope:
    return _wrap(
        payload,
        agency=c.agency or ports.catalogue.site_manager(c.site),
        site=c.site,
        subject=c.id,
        corr=corr,
    )


async def receive_complaint(cmd: ReceiveComplaint, uow: QueueUnitOfWork, ports: Ports) -> Complaint:
    agency = cmd.agency
    if cmd.service_type is not None:
        service = ports.catalogue.service(cmd.service_type)
        if service is None:
            raise UnknownServiceType(cmd.service_type)
        agency = agency or service.agency
    for _ in range(TRACKING_CODE_ATTEMPTS):
        code = new_tracking_code()
        if not await uow.complaints.code_taken(code):
            break
    else:  # pragma: no cover - 32^8 codes
        raise QueueError("no free tracking code")
    complaint = Complaint.receive(
        id=str(uuid.uuid4()),
        tracking_code=code,
        site=cmd.site,
        channel=cmd.channel,
        category=cmd.category,
        complaint_class=cmd.complaint_class,
        anonymous=cmd.anonymous,
        description=cmd.description,
        at=ports.clock.now(),
        received_by=cmd.received_by,
        days=SiteWorkingDays(ports, cmd.site),
        first_response_limit_days=ports.feedback.complaint_first_response_days,
        complainant_ref=cmd.complainant_ref,
        contact=cmd.contact,
        agency=agency,
        service_type=cmd.service_type,
        lapor_tracking_id=cmd.lapor_tracking_id,
    )
    await uow.complaints.add(complaint)
    uow.publish(
        _complaint_envelope(
            ports,
            complaint,
            ComplaintReceivedV1(
                complaint_id=complaint.id,
                channel=complaint.channel,
                category=complaint.category,
                complaint_class=complaint.complaint_class,
                first_response_limit_days=complaint.first_response_limit_days,
                resolution_limit_days=complaint.resolution_limit_days,
                anonymous=complaint.anonymous,
                complainant_ref=complaint.complainant_ref,
                agency=complaint.agency,
                service_type=complaint.service_type,
                lapor_tracking_id=complaint.lapor_tracking_id,
                received_at=complaint.received_at,
            ),
            cmd.correlation_id,
        )
    )
    return complaint


def _responded(ports: Ports, c: Complaint, corr: str) -> Envelope:
    assert c.responded_at is not None and c.responded_by is not None
    within = c.response_within_limit()
    return _complaint_envelope(
        ports,
        c,
        ComplaintRespondedV1(
            complaint_id=c.id,
            channel=c.channel,
            category=c.category,
            complaint_class=c.complaint_class,
            agency=c.agency,
            officer_ref=c.responded_by,
            received_at=c.received_at,
            responded_at=c.responded_at,
            working_days_elapsed=working_days_elapsed(
                SiteWorkingDays(ports, c.site), c.received_at, c.responded_at
            ),
            within_limit=bool(within),
        ),
        corr,
    )


async def _locked(uow: QueueUnitOfWork, complaint_id: str) -> Complaint:
    complaint = await uow.complaints.get(complaint_id, lock=True)
    if complaint is None:
        raise NotFound(complaint_id)
    return complaint


async def respond_to_complaint(cmd: RespondToComplaint, uow: QueueUnitOfWork, ports: Ports) -> Complaint:
    complaint = await _locked(uow, cmd.complaint_id)
    complaint.respond(officer=cmd.officer, text=cmd.text, at=ports.clock.now())
    await uow.complaints.save(complaint)
    uow.publish(_responded(ports, complaint, cmd.correlation_id))
    return complaint


async def resolve_complaint(cmd: ResolveComplaint, uow: QueueUnitOfWork, ports: Ports) -> Complaint:
    complaint = await _locked(uow, cmd.complaint_id)
    now = ports.clock.now()
    first = complaint.resolve(officer=cmd.officer, outcome=cmd.outcome, text=cmd.text, at=now)
    await uow.complaints.save(complaint)
    if first:
        uow.publish(_responded(ports, complaint, cmd.correlation_id))
    assert complaint.resolved_at is not None
    uow.publish(
        _complaint_envelope(
            ports,
            complaint,
            ComplaintResolvedV1(
                complaint_id=complaint.id,
                channel=complaint.channel,
                category=complaint.category,
                complaint_class=complaint.complaint_class,
                anonymous=complaint.anonymous,
                agency=complaint.agency,
                service_type=complaint.service_type,
                outcome=cmd.outcome,
                received_at=complaint.received_at,
                resolved_at=complaint.resolved_at,
                working_days_elapsed=working_days_elapsed(
                    SiteWorkingDays(ports, complaint.site), complaint.received_at, complaint.resolved_at
                ),
                within_limit=bool(complaint.resolution_within_limit()),
            ),
            cmd.correlation_id,
        )
    )
    return complaint
