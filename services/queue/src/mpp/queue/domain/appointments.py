"""Appointments: time slots from a site's opening hours, quotas, the check-in window and the merge rule.

Slots
    A service type's slots on a day are consecutive periods of ``slot_minutes`` that fit whole inside
    the site's opening hours of that day, the midday break left out: 08:00-16:00 with a 12:00-13:00
    break and 30-minute slots gives 08:00, 08:30, ..., 11:30, 13:00, ..., 15:30. Opening hours come
    from the site's calendar (special hours such as Ramadan replace the weekly ones); holidays and
    cuti bersama have none, so they have no slots, and neither have days the site does not open
    (Sundays). A Saturday opening has slots unless the rules restrict booking to working days. Days
    in a year whose holidays the calendar does not list have no slots yet.

Quotas
    Each slot takes at most ``quota_per_slot`` bookings and each day at most ``quota_per_day`` (when
    set); a cancelled appointment gives its seat back, a missed one does not (its time has passed).

Check-in window
    From ``checkin_early_minutes`` before the slot start to ``checkin_late_minutes`` after it, both
    ends included. After the window the appointment is *missed* (a periodic sweep marks it).

Merging into the queue (the fairness rule)
    A checked-in appointment gets a ticket that ranks as if it had been issued at the slot start
    (its ``queued_at`` is the slot start, whatever the check-in time within the window), with the
    declared priority group's head start on top as for any ticket. So a citizen who booked is served
    before walk-ins who arrived after their slot began and after those who arrived before it; a
    citizen checking in early waits until the slot start, when the ticket becomes callable, and one
    checking in late (within the window) keeps the place of the slot start.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum

from mpp.contracts.calendar import CalendarNotCovered
from mpp.contracts.masterdata import Calendar
from mpp.queue.domain.model import QueueError, WrongState

BOOKING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Letters and digits without the look-alikes (I, O, 0, 1), read out and typed at the kiosk."""
BOOKING_CODE_LENGTH = 8


@dataclass(frozen=True)
class AppointmentRules:
    """How a service type is booked at a site."""

    slot_minutes: int = 30
    quota_per_slot: int = 4
    quota_per_day: int | None = None
    checkin_early_minutes: int = 30
    checkin_late_minutes: int = 15
    book_ahead_days: int = 30
    """How far ahead a slot may be booked (days after today, in the site's time zone)."""
    working_days_only: bool = False
    """Only working days get slots (no Saturday counter), when set."""

    def __post_init__(self) -> None:
        if not 5 <= self.slot_minutes <= 240:
            raise ValueError("slot_minutes must be between 5 and 240")
        if self.quota_per_slot < 1:
            raise ValueError("quota_per_slot must be at least 1")
        if self.quota_per_day is not None and self.quota_per_day < 1:
            raise ValueError("quota_per_day must be at least 1 when set")
        if self.checkin_early_minutes < 0 or self.checkin_late_minutes < 0:
            raise ValueError("the check-in window must not be negative")
        if self.book_ahead_days < 0:
            raise ValueError("book_ahead_days must not be negative")


@dataclass(frozen=True)
class Rulebook:
    """The appointment rules of every service type: a default and per service type overrides."""

    default: AppointmentRules = field(default_factory=AppointmentRules)
    overrides: Mapping[str, AppointmentRules] = field(default_factory=dict)

    def for_service(self, service_type: str) -> AppointmentRules:
        return self.overrides.get(service_type, self.default)

    @property
    def shortest_late_minutes(self) -> int:
        return min(r.checkin_late_minutes for r in (self.default, *self.overrides.values()))


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime


def day_slots(calendar: Calendar, day: date, tz: tzinfo, rules: AppointmentRules) -> list[Slot]:
    """The slots of ``day`` (local time ``tz``) under ``rules``; none when the site is closed."""
    try:
        if rules.working_days_only and not calendar.is_working_day(day):
            return []
        hours = calendar.opening_hours(day)
    except CalendarNotCovered:
        return []
    if hours is None:
        return []
    bounds = [hours.opens, hours.closes]
    if hours.break_start is not None and hours.break_end is not None:
        bounds[1:1] = [hours.break_start, hours.break_end]
    length = timedelta(minutes=rules.slot_minutes)
    slots: list[Slot] = []
    for opens, closes in zip(bounds[::2], bounds[1::2], strict=True):
        start = datetime.combine(day, opens, tzinfo=tz)
        end_of_period = datetime.combine(day, closes, tzinfo=tz)
        while start + length <= end_of_period:
            slots.append(Slot(start, start + length))
            start += length
    return slots


def find_slot(calendar: Calendar, tz: tzinfo, rules: AppointmentRules, slot_start: datetime) -> Slot | None:
    """The slot that starts exactly at ``slot_start``, or None."""
    local = slot_start.astimezone(tz)
    return next((s for s in day_slots(calendar, local.date(), tz, rules) if s.start == local), None)


def checkin_window(slot_start: datetime, rules: AppointmentRules) -> tuple[datetime, datetime]:
    return (
        slot_start - timedelta(minutes=rules.checkin_early_minutes),
        slot_start + timedelta(minutes=rules.checkin_late_minutes),
    )


def merge_queued_at(slot_start: datetime, checked_in_at: datetime) -> datetime:
    """When a checked-in appointment joins the queue for ordering: its slot start (see the module)."""
    del checked_in_at  # the rule does not depend on it: early waits, late keeps the slot's place
    return slot_start


def new_booking_code() -> str:
    return "".join(secrets.choice(BOOKING_ALPHABET) for _ in range(BOOKING_CODE_LENGTH))


# --- errors ---------------------------------------------------------------------------------------


class AppointmentError(QueueError):
    pass


class SlotUnavailable(AppointmentError):
    """No slot starts at that instant for the service type (closed, a holiday, or not a slot boundary)."""


class SlotInPast(AppointmentError):
    pass


class SlotTooFarAhead(AppointmentError):
    def __init__(self, days: int) -> None:
        self.days = days
        super().__init__(f"slots can be booked up to {days} days ahead")


class SlotFull(AppointmentError):
    def __init__(self, per_day: bool) -> None:
        self.per_day = per_day
        super().__init__("the day's quota is used up" if per_day else "the slot is fully booked")


class AlreadyBooked(AppointmentError):
    """The citizen already holds an active appointment for this service type on that day."""


class OutsideCheckinWindow(AppointmentError):
    def __init__(self, opens: datetime, closes: datetime, early: bool) -> None:
        self.opens, self.closes, self.early = opens, closes, early
        super().__init__(f"check-in is open from {opens.isoformat()} to {closes.isoformat()}")


# --- the aggregate --------------------------------------------------------------------------------


class AppointmentState(StrEnum):
    BOOKED = "booked"
    CHECKED_IN = "checked_in"
    CANCELLED = "cancelled"
    MISSED = "missed"


APPOINTMENT_STATE_LABELS = {
    AppointmentState.BOOKED: "Terjadwal",
    AppointmentState.CHECKED_IN: "Sudah hadir (tiket diterbitkan)",
    AppointmentState.CANCELLED: "Dibatalkan",
    AppointmentState.MISSED: "Tidak hadir pada jadwal",
}


@dataclass
class Appointment:
    id: str
    booking_code: str
    site: str
    service_type: str
    agency: str
    day: str
    slot_start: datetime
    slot_end: datetime
    channel: str
    citizen_ref: str
    booker: str
    """The token subject that booked (the citizen, or the staff member booking for someone)."""
    booked_at: datetime
    state: AppointmentState = AppointmentState.BOOKED
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    checked_in_at: datetime | None = None
    missed_at: datetime | None = None
    visit_id: str | None = None
    ticket_id: str | None = None

    @property
    def state_label(self) -> str:
        return APPOINTMENT_STATE_LABELS[self.state]

    def _require_booked(self, action: str) -> None:
        if self.state is not AppointmentState.BOOKED:
            raise WrongState("appointment", self.state.value, action)

    def cancel(self, *, by: str, at: datetime) -> None:
        """Cancel up to the slot start; the seat goes back to the quota."""
        self._require_booked("cancel")
        if at >= self.slot_start:
            raise WrongState("appointment", "started", "cancel")
        self.state, self.cancelled_at, self.cancelled_by = AppointmentState.CANCELLED, at, by

    def check_in(self, *, at: datetime, rules: AppointmentRules, visit_id: str, ticket_id: str) -> None:
        self._require_booked("check_in")
        self.ensure_checkin_open(at, rules)
        self.state, self.checked_in_at = AppointmentState.CHECKED_IN, at
        self.visit_id, self.ticket_id = visit_id, ticket_id

    def ensure_checkin_open(self, at: datetime, rules: AppointmentRules) -> None:
        opens, closes = checkin_window(self.slot_start, rules)
        if not opens <= at <= closes:
            raise OutsideCheckinWindow(opens, closes, early=at < opens)

    def miss(self, *, at: datetime, rules: AppointmentRules) -> bool:
        """Mark as missed when the check-in window has passed; True if it changed now."""
        if self.state is not AppointmentState.BOOKED:
            return False
        if at <= checkin_window(self.slot_start, rules)[1]:
            return False
        self.state, self.missed_at = AppointmentState.MISSED, at
        return True
