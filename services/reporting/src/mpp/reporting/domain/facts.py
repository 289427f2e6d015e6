"""Turning events into additive facts: counts and sums per local day, site, agency and service type.

Three kinds of fact, each keyed so that any period and any roll-up is a plain sum:

* :class:`FactKey` - a measure (a count or a sum) per day x site x agency x service type;
* :class:`HourKey` - a measure per local hour of the day as well (visits, tickets issued);
* :class:`HistogramKey` - one bucket of a duration histogram (waiting, service time) per hour.

Every fact lands on the local day (and hour) the event itself says it happened, in the site's time
zone: late and out-of-order events fold into their own day whatever their arrival. Facts hold codes,
counts and sums only, never a person. Events without an agency or service type (visits, complaints to
the MPP management) use the empty code ``""``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import PriorityGroup
from mpp.contracts.events.identity import (
    DocumentApplicationRejectedV1,
    DocumentApplicationSubmittedV1,
    DocumentIssuedV1,
)
from mpp.contracts.events.licensing import (
    ApplicationRejectedV1,
    ApplicationSubmittedV1,
    PermitIssuedV1,
)
from mpp.contracts.events.queue import (
    AppointmentBookedV1,
    AppointmentCheckedInV1,
    ComplaintReceivedV1,
    ComplaintResolvedV1,
    ComplaintRespondedV1,
    CounterClosedV1,
    CounterOpenedV1,
    ServiceCompletedV1,
    SurveySubmittedV1,
    TicketCalledV1,
    TicketCancelledV1,
    TicketIssuedV1,
    TicketNoShowV1,
    VisitStartedV1,
)
from mpp.reporting.domain.percentiles import bucket_of

NONE = ""
"""The code of a missing dimension (a visit has no agency, a complaint may have no service type)."""

WAITING = "waiting"
SERVICE = "service"

FACT_TYPES = frozenset(
    {
        "VisitStarted",
        "TicketIssued",
        "TicketCalled",
        "ServiceCompleted",
        "TicketNoShow",
        "TicketCancelled",
        "AppointmentBooked",
        "AppointmentCheckedIn",
        "ApplicationSubmitted",
        "ApplicationRejected",
        "PermitIssued",
        "DocumentApplicationSubmitted",
        "DocumentApplicationRejected",
        "DocumentIssued",
        "SurveySubmitted",
        "ComplaintReceived",
        "ComplaintResponded",
        "ComplaintResolved",
        "CounterOpened",
        "CounterClosed",
    }
)


COMPLAINT_JOINT_PREFIX = "cj_"
"""Complaint figures per (channel, category, class), kept for the daily summary of the national roll-up
under the agency and service type of the other complaint figures."""


def complaint_measure(code: str, channel: str, category: str, complaint_class: str) -> str:
    """The measure of one complaint figure per (channel, category, class), e.g.
    ``cj_rcv:sp4n_lapor:queue:complaint`` (at most 62 characters)."""
    return f"{COMPLAINT_JOINT_PREFIX}{code}:{channel}:{category}:{complaint_class}"


def utc(at: datetime) -> datetime:
    """An instant from an event. Payload times are UTC; early licensing releases on SQLite sent some
    without an offset, and those are read as the UTC they were meant to be."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class FactKey(NamedTuple):
    day: date
    site: str
    agency: str
    service_type: str
    measure: str


class HourKey(NamedTuple):
    day: date
    site: str
    agency: str
    service_type: str
    hour: int
    measure: str


class HistogramKey(NamedTuple):
    day: date
    site: str
    agency: str
    service_type: str
    hour: int
    kind: str
    bucket: int


class LateApplication(NamedTuple):
    """An application finished after its published standard: codes and dates only, no personal data.
    ``due`` and ``days_late`` are unknown (none) when the catalogue does not cover the service or day."""

    site: str
    application_ref: str
    agency: str
    service_type: str
    finished_day: date
    due: date | None
    days_late: int | None


@dataclass(slots=True)
class Facts:
    """The increments of one batch, summed per key before touching the database."""

    counts: Counter[FactKey] = field(default_factory=Counter)
    hourly: Counter[HourKey] = field(default_factory=Counter)
    histogram: Counter[HistogramKey] = field(default_factory=Counter)
    late: dict[tuple[str, str], LateApplication] = field(default_factory=dict)
    """Applications finished late, by (site, application reference)."""

    def __bool__(self) -> bool:
        return bool(self.counts or self.hourly or self.histogram or self.late)


SlaCheck = Callable[[str, str, datetime, datetime], bool | None]
"""``(site, service_type, submitted_at, finished_at)`` -> finished within the published standard, or
none when the standard or the site's calendar is unknown."""


def no_sla(_site: str, _service_type: str, _submitted: datetime, _finished: datetime) -> bool | None:
    return None


SlaDue = Callable[[str, str, datetime, datetime], tuple[date, int] | None]
"""``(site, service_type, submitted_at, finished_at)`` -> the local due day of the published standard and
the days late at finishing (working days for standards in days, calendar days otherwise), or none when
the standard or the site's calendar is unknown."""


def no_due(
    _site: str, _service_type: str, _submitted: datetime, _finished: datetime
) -> tuple[date, int] | None:
    return None


class _Folder:
    def __init__(self, site_tz: Callable[[str], ZoneInfo], sla: SlaCheck, due: SlaDue = no_due) -> None:
        self.site_tz = site_tz
        self.sla = sla
        self.due = due
        self.facts = Facts()
        self._last: tuple[str, datetime, datetime] | None = None

    def local(self, site: str, at: datetime) -> datetime:
        # An event adds several measures at one instant: convert it once.
        if self._last is not None and self._last[0] == site and self._last[1] == at:
            return self._last[2]
        local = utc(at).astimezone(self.site_tz(site))
        self._last = (site, at, local)
        return local

    def add(self, at: datetime, site: str, agency: str, st: str, measure: str, n: int = 1) -> None:
        if n:
            self.facts.counts[FactKey(self.local(site, at).date(), site, agency, st, measure)] += n

    def add_hourly(self, at: datetime, site: str, agency: str, st: str, measure: str) -> None:
        local = self.local(site, at)
        self.facts.hourly[HourKey(local.date(), site, agency, st, local.hour, measure)] += 1

    def duration(self, at: datetime, site: str, agency: str, st: str, kind: str, seconds: int) -> None:
        local = self.local(site, at)
        self.add(at, site, agency, st, f"{kind}_count")
        self.add(at, site, agency, st, f"{kind}_seconds_sum", seconds)
        key = HistogramKey(local.date(), site, agency, st, local.hour, kind, bucket_of(seconds))
        self.facts.histogram[key] += 1

    def finished(
        self,
        at: datetime,
        site: str,
        agency: str,
        st: str,
        *,
        within: bool | None,
        working_days: int | None = None,
    ) -> None:
        self.add(at, site, agency, st, "applications_finished")
        if within is not None:
            self.add(at, site, agency, st, "applications_sla_known")
            self.add(at, site, agency, st, "applications_within_sla", int(within))
        if working_days is not None:
            self.add(at, site, agency, st, "applications_working_days_count")
            self.add(at, site, agency, st, "applications_working_days_sum", working_days)

    def late(
        self, site: str, agency: str, st: str, application: str, submitted: datetime, finished: datetime
    ) -> None:
        due = self.due(site, st, utc(submitted), utc(finished))
        application = application[:64]
        self.facts.late[(site, application)] = LateApplication(
            site,
            application,
            agency,
            st,
            self.local(site, finished).date(),
            None if due is None else due[0],
            None if due is None else max(due[1], 0),
        )

    def complaint(
        self,
        p: ComplaintReceivedV1 | ComplaintRespondedV1 | ComplaintResolvedV1,
        at: datetime,
        site: str,
        agency: str,
        figures: tuple[tuple[str, int], ...],
        st: str = NONE,
    ) -> None:
        """Complaint figures per (channel, category, class) as well, for the daily summary."""
        for code, n in figures:
            measure = complaint_measure(code, p.channel.value, p.category.value, p.complaint_class.value)
            self.add(at, site, agency, st, measure, n)

    def fold(self, env: Envelope) -> None:  # noqa: PLR0912, PLR0915 - one branch per event type
        p = env.payload
        s = env.site
        if isinstance(p, VisitStartedV1):
            self.add(p.started_at, s, NONE, NONE, "visits")
            self.add(p.started_at, s, NONE, NONE, f"visits_{p.channel.value}")
            self.add_hourly(p.started_at, s, NONE, NONE, "visits")
        elif isinstance(p, TicketIssuedV1):
            a, st = p.agency, p.service_type
            self.add(p.issued_at, s, a, st, "tickets_issued")
            self.add(p.issued_at, s, a, st, f"tickets_{p.channel.value}")
            if p.transferred_from is not None:
                self.add(p.issued_at, s, a, st, "tickets_transferred_in")
            if p.priority_group is not PriorityGroup.NONE:
                self.add(p.issued_at, s, a, st, f"priority_issued_{p.priority_group.value}")
            self.add_hourly(p.issued_at, s, a, st, "tickets_issued")
        elif isinstance(p, TicketCalledV1):
            if p.call_count == 1:
                issued_at = p.called_at - timedelta(seconds=p.waiting_seconds)
                self.duration(issued_at, s, p.agency, p.service_type, WAITING, p.waiting_seconds)
        elif isinstance(p, ServiceCompletedV1):
            a, st = p.agency, p.service_type
            self.add(p.issued_at, s, a, st, "tickets_served")
            if p.priority_group is not PriorityGroup.NONE:
                self.add(p.issued_at, s, a, st, f"priority_served_{p.priority_group.value}")
            self.duration(p.issued_at, s, a, st, SERVICE, p.service_seconds)
        elif isinstance(p, TicketNoShowV1):
            self.add(p.marked_at, s, p.agency, p.service_type, "tickets_no_show")
        elif isinstance(p, TicketCancelledV1):
            self.add(p.cancelled_at, s, p.agency, p.service_type, "tickets_cancelled")
        elif isinstance(p, AppointmentBookedV1):
            self.add(p.booked_at, s, p.agency, p.service_type, "appointments_booked")
        elif isinstance(p, AppointmentCheckedInV1):
            self.add(p.checked_in_at, s, p.agency, p.service_type, "appointments_checked_in")
        elif isinstance(p, ApplicationSubmittedV1 | DocumentApplicationSubmittedV1):
            self.add(p.submitted_at, s, env.agency, p.service_type, "applications_submitted")
            self.add(p.submitted_at, s, env.agency, p.service_type, f"applications_{p.channel.value}")
        elif isinstance(p, PermitIssuedV1):
            within = p.within_sla
            if within is None:
                within = self.sla(s, p.service_type, utc(p.submitted_at), utc(p.issued_at))
            self.add(p.issued_at, s, env.agency, p.service_type, "permits_issued")
            self.finished(p.issued_at, s, env.agency, p.service_type, within=within)
            if within is False:
                self.late(s, env.agency, p.service_type, p.application_id, p.submitted_at, p.issued_at)
        elif isinstance(p, DocumentIssuedV1):
            within = p.within_sla
            if within is None:
                within = self.sla(s, p.service_type, utc(p.submitted_at), utc(p.issued_at))
            self.add(p.issued_at, s, env.agency, p.service_type, "documents_issued")
            self.finished(
                p.issued_at,
                s,
                env.agency,
                p.service_type,
                within=within,
                working_days=p.working_days_elapsed,
            )
            if within is False:
                self.late(s, env.agency, p.service_type, str(p.application_id), p.submitted_at, p.issued_at)
        elif isinstance(p, ApplicationRejectedV1 | DocumentApplicationRejectedV1):
            self.add(p.rejected_at, s, env.agency, p.service_type, "applications_rejected")
            self.finished(p.rejected_at, s, env.agency, p.service_type, within=None)
        elif isinstance(p, SurveySubmittedV1):
            a, st = p.agency, p.service_type
            self.add(p.submitted_at, s, a, st, "skm_respondents")
            for element, score in p.scores.answered().items():
                code = element.value.lower()
                self.add(p.submitted_at, s, a, st, f"skm_{code}_answers")
                self.add(p.submitted_at, s, a, st, f"skm_{code}_sum", score)
        elif isinstance(p, ComplaintReceivedV1):
            a, st = p.agency or NONE, p.service_type or NONE
            self.add(p.received_at, s, a, st, "complaints_received")
            self.add(p.received_at, s, a, st, f"complaints_channel_{p.channel.value}")
            self.add(p.received_at, s, a, st, f"complaints_category_{p.category.value}")
            self.add(p.received_at, s, a, st, "complaints_anonymous", int(p.anonymous))
            self.complaint(p, p.received_at, s, a, (("rcv", 1), ("anon", int(p.anonymous))), st)
        elif isinstance(p, ComplaintRespondedV1):
            a = p.agency or NONE
            self.add(p.responded_at, s, a, NONE, "complaints_responded")
            self.add(p.responded_at, s, a, NONE, "complaints_responded_within_limit", int(p.within_limit))
            self.add(p.responded_at, s, a, NONE, "complaints_response_days_sum", p.working_days_elapsed)
            done = (("rsp", 1), ("rspok", int(p.within_limit)), ("rspd", p.working_days_elapsed))
            self.complaint(p, p.responded_at, s, a, done)
        elif isinstance(p, ComplaintResolvedV1):
            a, st = p.agency or NONE, p.service_type or NONE
            self.add(p.resolved_at, s, a, st, "complaints_resolved")
            self.add(p.resolved_at, s, a, st, "complaints_resolved_within_limit", int(p.within_limit))
            self.add(p.resolved_at, s, a, st, "complaints_resolution_days_sum", p.working_days_elapsed)
            done = (("res", 1), ("resok", int(p.within_limit)), ("resd", p.working_days_elapsed))
            self.complaint(p, p.resolved_at, s, a, done, st)
        elif isinstance(p, CounterOpenedV1):
            self.add(p.opened_at, s, p.agency, NONE, "counters_opened")
            kind = "counters_opened_planned" if p.planned else "counters_opened_extra"
            self.add(p.opened_at, s, p.agency, NONE, kind)
        elif isinstance(p, CounterClosedV1):
            open_seconds = max(int((p.closed_at - p.opened_at).total_seconds()), 0)
            self.add(p.opened_at, s, p.agency, NONE, "counter_open_seconds", open_seconds)


def fold_facts(
    envelopes: Iterable[Envelope],
    site_tz: Callable[[str], ZoneInfo],
    sla: SlaCheck = no_sla,
    due: SlaDue = no_due,
) -> Facts:
    """Sum a batch of events into fact increments."""
    folder = _Folder(site_tz, sla, due)
    for env in envelopes:
        folder.fold(env)
    return folder.facts
