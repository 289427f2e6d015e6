"""Complaints (pengaduan) under SP4N-LAPOR! time limits, counted in working days.

States::

    received --respond--> responded --resolve--> resolved
        +------------------resolve (the resolution is the first response)--+

Limits: the first response within ``first_response_limit_days`` working days (SP4N-LAPOR: 3; local SOPs
often 2), the resolution within the class's limit (information request and complaint 5, dispute 14,
dispute with field inspection 60). Working days are counted like every SLA of the platform: a complaint
received on working day D at or before closing time is due at the closing time of the N-th working day
after D; one received after closing time or on a day off counts as received on the next working day.
The elapsed working days of an instant are the working days after the receipt day up to and including
the instant's own (receipt) day, so an answer on the day of receipt has used 0.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from mpp.contracts.events.common import (
    COMPLAINT_FIRST_RESPONSE_LIMIT_DAYS,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintClass,
)
from mpp.contracts.events.queue import ComplaintOutcome
from mpp.queue.domain.model import QueueError, WrongState

_ONE_DAY = timedelta(days=1)
TRACKING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Tracking code letters: no 0/O or 1/I, so a code read out over the phone is not misheard."""


class WorkingDays(Protocol):
    """The site's working-day calendar, as the complaint limits need it."""

    def is_working_day(self, d: date) -> bool: ...

    def closing_time(self, d: date) -> datetime:
        """When working day ``d`` ends (aware, local time)."""
        ...

    def local_day(self, instant: datetime) -> date: ...


def receipt_day(days: WorkingDays, instant: datetime) -> date:
    """The working day an instant counts on: its own day if a working day not yet closed, else the next."""
    d = days.local_day(instant)
    if days.is_working_day(d) and instant <= days.closing_time(d):
        return d
    return next_working_day(days, d)


def next_working_day(days: WorkingDays, d: date) -> date:
    d += _ONE_DAY
    while not days.is_working_day(d):
        d += _ONE_DAY
    return d


def due_at(days: WorkingDays, received_at: datetime, limit_days: int) -> datetime:
    """Closing time of the ``limit_days``-th working day after the receipt day."""
    d = receipt_day(days, received_at)
    for _ in range(limit_days):
        d = next_working_day(days, d)
    return days.closing_time(d)


def working_days_elapsed(days: WorkingDays, received_at: datetime, at: datetime) -> int:
    """Working days after the receipt day up to and including the receipt day of ``at``."""
    start, end = receipt_day(days, received_at), receipt_day(days, max(at, received_at))
    n, d = 0, start
    while d < end:
        d = next_working_day(days, d)
        n += 1
    return n


class ComplaintState(StrEnum):
    RECEIVED = "received"
    RESPONDED = "responded"
    RESOLVED = "resolved"


STATE_LABELS = {
    ComplaintState.RECEIVED: "Diterima, menunggu tanggapan",
    ComplaintState.RESPONDED: "Sudah ditanggapi, sedang ditindaklanjuti",
    ComplaintState.RESOLVED: "Selesai",
}


def new_tracking_code() -> str:
    """``ADU-`` and 8 letters or digits (40 bits): what the complainant keeps to follow the complaint."""
    return "ADU-" + "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(8))


class ComplaintError(QueueError):
    pass


@dataclass
class Complaint:
    id: str
    tracking_code: str
    site: str
    channel: ComplaintChannel
    category: ComplaintCategory
    complaint_class: ComplaintClass
    anonymous: bool
    description: str
    received_at: datetime
    received_by: str
    first_response_limit_days: int
    resolution_limit_days: int
    first_response_due: datetime
    resolution_due: datetime
    complainant_ref: str | None = None
    contact: str | None = None
    """How to reach the complainant, only if they gave it; stays here, never in an event."""
    agency: str | None = None
    service_type: str | None = None
    lapor_tracking_id: str | None = None
    state: ComplaintState = ComplaintState.RECEIVED
    responded_at: datetime | None = None
    responded_by: str | None = None
    response: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    outcome: ComplaintOutcome | None = None
    resolution: str | None = None

    @classmethod
    def receive(
        cls,
        *,
        id: str,
        tracking_code: str,
        site: str,
        channel: ComplaintChannel,
        category: ComplaintCategory,
        complaint_class: ComplaintClass,
        anonymous: bool,
        description: str,
        at: datetime,
        received_by: str,
        days: WorkingDays,
        first_response_limit_days: int = COMPLAINT_FIRST_RESPONSE_LIMIT_DAYS,
        complainant_ref: str | None = None,
        contact: str | None = None,
        agency: str | None = None,
        service_type: str | None = None,
        lapor_tracking_id: str | None = None,
    ) -> Complaint:
        resolution_limit = complaint_class.resolution_limit_days
        return cls(
            id=id,
            tracking_code=tracking_code,
            site=site,
            channel=channel,
            category=category,
            complaint_class=complaint_class,
            anonymous=anonymous,
            description=description,
            received_at=at,
            received_by=received_by,
            first_response_limit_days=first_response_limit_days,
            resolution_limit_days=resolution_limit,
            first_response_due=due_at(days, at, first_response_limit_days),
            resolution_due=due_at(days, at, resolution_limit),
            # An anonymous complaint keeps neither a reference nor a way to reach its author.
            complainant_ref=None if anonymous else complainant_ref,
            contact=None if anonymous else contact,
            agency=agency,
            service_type=service_type,
            lapor_tracking_id=lapor_tracking_id,
        )

    def respond(self, *, officer: str, text: str, at: datetime, agency: str | None = None) -> None:
        if self.state is not ComplaintState.RECEIVED:
            raise WrongState("complaint", self.state.value, "respond")
        self.state, self.responded_at, self.responded_by, self.response = (
            ComplaintState.RESPONDED,
            at,
            officer,
            text,
        )
        if agency is not None:
            self.agency = agency

    def resolve(self, *, officer: str, outcome: ComplaintOutcome, text: str, at: datetime) -> bool:
        """Resolve; True when this was also the first response (it had none yet)."""
        if self.state is ComplaintState.RESOLVED:
            raise WrongState("complaint", self.state.value, "resolve")
        first = self.state is ComplaintState.RECEIVED
        if first:
            self.respond(officer=officer, text=text, at=at)
        self.state, self.resolved_at, self.resolved_by = ComplaintState.RESOLVED, at, officer
        self.outcome, self.resolution = outcome, text
        return first

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    def response_within_limit(self) -> bool | None:
        return None if self.responded_at is None else self.responded_at <= self.first_response_due

    def resolution_within_limit(self) -> bool | None:
        return None if self.resolved_at is None else self.resolved_at <= self.resolution_due

    def overdue(self, now: datetime) -> list[str]:
        """The limits passed without the step they ask for: ``first_response`` and/or ``resolution``."""
        late = []
        if self.responded_at is None and now > self.first_response_due:
            late.append("first_response")
        if self.resolved_at is None and now > self.resolution_due:
            late.append("resolution")
        return late
