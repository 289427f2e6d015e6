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
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import PriorityGroup, SkmElement
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


Count = tuple[date, str, str, str, str]
"""A :class:`FactKey` as a plain tuple (equal to it, and cheaper to build by the hundred thousand)."""
Hour = tuple[date, str, str, str, int, str]
"""An :class:`HourKey` as a plain tuple."""
Bucket = tuple[date, str, str, str, int, str, int]
"""A :class:`HistogramKey` as a plain tuple."""


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

    counts: Counter[Count] = field(default_factory=Counter)
    hourly: Counter[Hour] = field(default_factory=Counter)
    histogram: Counter[Bucket] = field(default_factory=Counter)
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


_SKM_MEASURES = tuple(
    (e.value.lower(), f"skm_{e.value.lower()}_answers", f"skm_{e.value.lower()}_sum") for e in SkmElement
)
_WAITING_COUNT, _WAITING_SUM = f"{WAITING}_count", f"{WAITING}_seconds_sum"
_SERVICE_COUNT, _SERVICE_SUM = f"{SERVICE}_count", f"{SERVICE}_seconds_sum"


PAIRED: dict[str, str] = {
    _WAITING_COUNT: _WAITING_SUM,
    _SERVICE_COUNT: _SERVICE_SUM,
    **{answers: total for _element, answers, total in _SKM_MEASURES},
    "applications_sla_known": "applications_within_sla",
    "applications_working_days_count": "applications_working_days_sum",
    "complaints_received": "complaints_anonymous",
    "complaints_responded": "complaints_response_days_sum",
    "complaints_resolved": "complaints_resolution_days_sum",
}
"""Measures always folded together for the same key: a count (of events) -> the measure added by the
same events (their sum of seconds, of scores, of days; how many were anonymous or within the standard).
The first is at least one wherever the second is added, so the read models keep both in one row (the
second in its ``paired`` column) and a second measure of zero is a measure never added."""
SECOND_OF_PAIR = frozenset(PAIRED.values())


def paired_rows(counts: Counter[Count]) -> tuple[dict[Count, int], dict[Count, int]]:
    """A batch's fact increments as read-model rows: every measure but the second of a pair with its
    increment, and per row of a pair's first measure the increment of its second (:data:`PAIRED`)."""
    values: dict[Count, int] = {}
    seconds: list[tuple[Count, int]] = []
    first_of = _FIRST_OF
    for key, n in counts.items():
        if key[4] in first_of:
            seconds.append((key, n))
        else:
            values[key] = n
    paired: dict[Count, int] = {}
    for (day, site, agency, st, measure), n in seconds:
        row = (day, site, agency, st, first_of[measure])
        paired[row] = n
        if row not in values:
            # Never from a fold (the first measure comes with its second); kept all the same.
            values[row] = 0
    return values, paired


_FIRST_OF = {second: first for first, second in PAIRED.items()}


class _Folder:
    """Folds events one at a time into :class:`Facts`. Each event's local time is computed once, keys
    are plain tuples and increments use the counters' own ``dict`` methods: a batch folds tens of
    thousands of events, so the per-event cost matters."""

    __slots__ = ("_counts", "_histogram", "_hourly", "_zones", "due", "facts", "site_tz", "sla")

    def __init__(
        self,
        site_tz: Callable[[str], ZoneInfo],
        sla: SlaCheck,
        due: SlaDue = no_due,
        into: Facts | None = None,
    ) -> None:
        self.site_tz = site_tz
        self.sla = sla
        self.due = due
        self.facts = Facts() if into is None else into
        self._counts = self.facts.counts
        self._hourly = self.facts.hourly
        self._histogram = self.facts.histogram
        self._zones: dict[str, ZoneInfo] = {}

    def local(self, site: str, at: datetime) -> datetime:
        tz = self._zones.get(site)
        if tz is None:
            tz = self._zones[site] = self.site_tz(site)
        return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(tz)

    def add(self, key: Count, n: int = 1) -> None:
        if n:
            counts = self._counts
            counts[key] = counts.get(key, 0) + n

    def add_hourly(self, key: Hour) -> None:
        hourly = self._hourly
        hourly[key] = hourly.get(key, 0) + 1

    def duration(self, local: datetime, s: str, a: str, st: str, kind: str, seconds: int) -> None:
        day = local.date()
        if kind == WAITING:
            count, total = _WAITING_COUNT, _WAITING_SUM
        else:
            count, total = _SERVICE_COUNT, _SERVICE_SUM
        self.add((day, s, a, st, count))
        self.add((day, s, a, st, total), seconds)
        key = (day, s, a, st, local.hour, kind, bucket_of(seconds))
        histogram = self._histogram
        histogram[key] = histogram.get(key, 0) + 1

    def finished(
        self,
        day: date,
        site: str,
        agency: str,
        st: str,
        *,
        within: bool | None,
        working_days: int | None = None,
    ) -> None:
        self.add((day, site, agency, st, "applications_finished"))
        if within is not None:
            self.add((day, site, agency, st, "applications_sla_known"))
            self.add((day, site, agency, st, "applications_within_sla"), int(within))
        if working_days is not None:
            self.add((day, site, agency, st, "applications_working_days_count"))
            self.add((day, site, agency, st, "applications_working_days_sum"), working_days)

    def late(
        self,
        site: str,
        agency: str,
        st: str,
        application: str,
        submitted: datetime,
        finished: datetime,
        finished_day: date,
    ) -> None:
        due = self.due(site, st, utc(submitted), utc(finished))
        application = application[:64]
        self.facts.late[(site, application)] = LateApplication(
            site,
            application,
            agency,
            st,
            finished_day,
            None if due is None else due[0],
            None if due is None else max(due[1], 0),
        )

    def complaint(
        self,
        p: ComplaintReceivedV1 | ComplaintRespondedV1 | ComplaintResolvedV1,
        day: date,
        site: str,
        agency: str,
        figures: tuple[tuple[str, int], ...],
        st: str = NONE,
    ) -> None:
        """Complaint figures per (channel, category, class) as well, for the daily summary."""
        for code, n in figures:
            measure = complaint_measure(code, p.channel.value, p.category.value, p.complaint_class.value)
            self.add((day, site, agency, st, measure), n)

    # One method per event type; ``fold`` picks it by the payload's class. Measure names are built by
    # concatenating a prefix with a ``StrEnum`` member (its value), not through ``.value``.

    def visit_started(self, env: Envelope, p: VisitStartedV1) -> None:
        s = env.site
        local = self.local(s, p.started_at)
        day = local.date()
        self.add((day, s, NONE, NONE, "visits"))
        self.add((day, s, NONE, NONE, "visits_" + p.channel))
        self.add_hourly((day, s, NONE, NONE, local.hour, "visits"))

    def ticket_issued(self, env: Envelope, p: TicketIssuedV1) -> None:
        s, a, st = env.site, p.agency, p.service_type
        local = self.local(s, p.issued_at)
        day = local.date()
        self.add((day, s, a, st, "tickets_issued"))
        self.add((day, s, a, st, "tickets_" + p.channel))
        if p.transferred_from is not None:
            self.add((day, s, a, st, "tickets_transferred_in"))
        if p.priority_group is not PriorityGroup.NONE:
            self.add((day, s, a, st, "priority_issued_" + p.priority_group))
        self.add_hourly((day, s, a, st, local.hour, "tickets_issued"))

    def ticket_called(self, env: Envelope, p: TicketCalledV1) -> None:
        if p.call_count == 1:
            issued_at = p.called_at - timedelta(seconds=p.waiting_seconds)
            local = self.local(env.site, issued_at)
            self.duration(local, env.site, p.agency, p.service_type, WAITING, p.waiting_seconds)

    def service_completed(self, env: Envelope, p: ServiceCompletedV1) -> None:
        s, a, st = env.site, p.agency, p.service_type
        local = self.local(s, p.issued_at)
        day = local.date()
        self.add((day, s, a, st, "tickets_served"))
        if p.priority_group is not PriorityGroup.NONE:
            self.add((day, s, a, st, "priority_served_" + p.priority_group))
        self.duration(local, s, a, st, SERVICE, p.service_seconds)

    def ticket_no_show(self, env: Envelope, p: TicketNoShowV1) -> None:
        day = self.local(env.site, p.marked_at).date()
        self.add((day, env.site, p.agency, p.service_type, "tickets_no_show"))

    def ticket_cancelled(self, env: Envelope, p: TicketCancelledV1) -> None:
        day = self.local(env.site, p.cancelled_at).date()
        self.add((day, env.site, p.agency, p.service_type, "tickets_cancelled"))

    def appointment_booked(self, env: Envelope, p: AppointmentBookedV1) -> None:
        day = self.local(env.site, p.booked_at).date()
        self.add((day, env.site, p.agency, p.service_type, "appointments_booked"))

    def appointment_checked_in(self, env: Envelope, p: AppointmentCheckedInV1) -> None:
        day = self.local(env.site, p.checked_in_at).date()
        self.add((day, env.site, p.agency, p.service_type, "appointments_checked_in"))

    def application_submitted(
        self, env: Envelope, p: ApplicationSubmittedV1 | DocumentApplicationSubmittedV1
    ) -> None:
        s, a, st = env.site, env.agency, p.service_type
        day = self.local(s, p.submitted_at).date()
        self.add((day, s, a, st, "applications_submitted"))
        self.add((day, s, a, st, "applications_" + p.channel))

    def permit_issued(self, env: Envelope, p: PermitIssuedV1) -> None:
        s, a, st = env.site, env.agency, p.service_type
        within = p.within_sla
        if within is None:
            within = self.sla(s, st, utc(p.submitted_at), utc(p.issued_at))
        day = self.local(s, p.issued_at).date()
        self.add((day, s, a, st, "permits_issued"))
        self.finished(day, s, a, st, within=within)
        if within is False:
            self.late(s, a, st, p.application_id, p.submitted_at, p.issued_at, day)

    def document_issued(self, env: Envelope, p: DocumentIssuedV1) -> None:
        s, a, st = env.site, env.agency, p.service_type
        within = p.within_sla
        if within is None:
            within = self.sla(s, st, utc(p.submitted_at), utc(p.issued_at))
        day = self.local(s, p.issued_at).date()
        self.add((day, s, a, st, "documents_issued"))
        self.finished(day, s, a, st, within=within, working_days=p.working_days_elapsed)
        if within is False:
            self.late(s, a, st, str(p.application_id), p.submitted_at, p.issued_at, day)

    def application_rejected(
        self, env: Envelope, p: ApplicationRejectedV1 | DocumentApplicationRejectedV1
    ) -> None:
        s, a, st = env.site, env.agency, p.service_type
        day = self.local(s, p.rejected_at).date()
        self.add((day, s, a, st, "applications_rejected"))
        self.finished(day, s, a, st, within=None)

    def survey_submitted(self, env: Envelope, p: SurveySubmittedV1) -> None:
        s, a, st = env.site, p.agency, p.service_type
        day = self.local(s, p.submitted_at).date()
        self.add((day, s, a, st, "skm_respondents"))
        scores = p.scores
        for element, answers, total in _SKM_MEASURES:
            score: int | None = getattr(scores, element)
            if score is not None:
                self.add((day, s, a, st, answers))
                self.add((day, s, a, st, total), score)

    def complaint_received(self, env: Envelope, p: ComplaintReceivedV1) -> None:
        s, a, st = env.site, p.agency or NONE, p.service_type or NONE
        day = self.local(s, p.received_at).date()
        self.add((day, s, a, st, "complaints_received"))
        self.add((day, s, a, st, f"complaints_channel_{p.channel.value}"))
        self.add((day, s, a, st, f"complaints_category_{p.category.value}"))
        self.add((day, s, a, st, "complaints_anonymous"), int(p.anonymous))
        self.complaint(p, day, s, a, (("rcv", 1), ("anon", int(p.anonymous))), st)

    def complaint_responded(self, env: Envelope, p: ComplaintRespondedV1) -> None:
        s, a = env.site, p.agency or NONE
        day = self.local(s, p.responded_at).date()
        self.add((day, s, a, NONE, "complaints_responded"))
        self.add((day, s, a, NONE, "complaints_responded_within_limit"), int(p.within_limit))
        self.add((day, s, a, NONE, "complaints_response_days_sum"), p.working_days_elapsed)
        done = (("rsp", 1), ("rspok", int(p.within_limit)), ("rspd", p.working_days_elapsed))
        self.complaint(p, day, s, a, done)

    def complaint_resolved(self, env: Envelope, p: ComplaintResolvedV1) -> None:
        s, a, st = env.site, p.agency or NONE, p.service_type or NONE
        day = self.local(s, p.resolved_at).date()
        self.add((day, s, a, st, "complaints_resolved"))
        self.add((day, s, a, st, "complaints_resolved_within_limit"), int(p.within_limit))
        self.add((day, s, a, st, "complaints_resolution_days_sum"), p.working_days_elapsed)
        done = (("res", 1), ("resok", int(p.within_limit)), ("resd", p.working_days_elapsed))
        self.complaint(p, day, s, a, done, st)

    def counter_opened(self, env: Envelope, p: CounterOpenedV1) -> None:
        s = env.site
        day = self.local(s, p.opened_at).date()
        self.add((day, s, p.agency, NONE, "counters_opened"))
        kind = "counters_opened_planned" if p.planned else "counters_opened_extra"
        self.add((day, s, p.agency, NONE, kind))

    def counter_closed(self, env: Envelope, p: CounterClosedV1) -> None:
        open_seconds = max(int((p.closed_at - p.opened_at).total_seconds()), 0)
        day = self.local(env.site, p.opened_at).date()
        self.add((day, env.site, p.agency, NONE, "counter_open_seconds"), open_seconds)

    def ignore(self, env: Envelope, p: EventPayload) -> None:
        """An event that adds no fact."""

    def fold(self, env: Envelope) -> None:
        p = env.payload
        method = _METHODS.get(type(p)) or _method_of(type(p))
        method(self, env, p)


_Method = Callable[[_Folder, Envelope, Any], None]

_METHODS: dict[type[EventPayload], _Method] = {
    VisitStartedV1: _Folder.visit_started,
    TicketIssuedV1: _Folder.ticket_issued,
    TicketCalledV1: _Folder.ticket_called,
    ServiceCompletedV1: _Folder.service_completed,
    TicketNoShowV1: _Folder.ticket_no_show,
    TicketCancelledV1: _Folder.ticket_cancelled,
    AppointmentBookedV1: _Folder.appointment_booked,
    AppointmentCheckedInV1: _Folder.appointment_checked_in,
    ApplicationSubmittedV1: _Folder.application_submitted,
    DocumentApplicationSubmittedV1: _Folder.application_submitted,
    PermitIssuedV1: _Folder.permit_issued,
    DocumentIssuedV1: _Folder.document_issued,
    ApplicationRejectedV1: _Folder.application_rejected,
    DocumentApplicationRejectedV1: _Folder.application_rejected,
    SurveySubmittedV1: _Folder.survey_submitted,
    ComplaintReceivedV1: _Folder.complaint_received,
    ComplaintRespondedV1: _Folder.complaint_responded,
    ComplaintResolvedV1: _Folder.complaint_resolved,
    CounterOpenedV1: _Folder.counter_opened,
    CounterClosedV1: _Folder.counter_closed,
}
_FOLDED = tuple(_METHODS.items())


def _method_of(cls: type[EventPayload]) -> _Method:
    """The method of a class not listed itself: that of the listed class it derives from, or none."""
    method = next((m for base, m in _FOLDED if issubclass(cls, base)), _Folder.ignore)
    _METHODS[cls] = method
    return method


def fold_facts(
    envelopes: Iterable[Envelope],
    site_tz: Callable[[str], ZoneInfo],
    sla: SlaCheck = no_sla,
    due: SlaDue = no_due,
    into: Facts | None = None,
) -> Facts:
    """Sum a batch of events into fact increments (added to ``into`` when given: a batch folded a chunk
    at a time)."""
    folder = _Folder(site_tz, sla, due, into)
    methods = _METHODS
    for env in envelopes:
        p = env.payload
        method = methods.get(type(p)) or _method_of(type(p))
        method(folder, env, p)
    return folder.facts
