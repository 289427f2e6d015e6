"""Working-time arithmetic on a site's working-day calendar: due instants and elapsed SLA time.

A :class:`WorkingClock` reads a :class:`~mpp.contracts.masterdata.Calendar` in the site's time zone and
answers two questions for an SLA (*jangka waktu penyelesaian*): when is a case due, and how much
working time has it used, leaving out the periods when the clock was stopped (e.g. while an
application was returned to the citizen for correction).

Working time
    Time counts only during the opening hours of working days, without the midday break and with
    special hours (e.g. shorter Ramadan hours) replacing the weekly ones. Working days are the
    calendar's working weekdays that are not holidays (national holidays, cuti bersama and local
    holidays declared by the kabupaten/kota). A site may also open on other days (a Saturday counter):
    that time serves citizens but does not run the SLA clock, because published limits are in working
    time of the civil service (*jam kerja*, *hari kerja*); a weekend opening is an extra that must not
    shorten them.

Limits in minutes and hours
    Only working time counts. The due instant is the first instant at which the limit is used up, so
    30 minutes from Monday 11:45 with a 12:00-13:00 break is due at 13:15, and 60 minutes from 11:00
    is due at 12:00 (not 13:00).

Limits in working days
    An application received on working day D, at or before that day's closing time, is due at the
    closing time of the N-th working day after D. The day of receipt itself does not count, because
    the period runs *after* receipt: UU 30/2014 on government administration (Pasal 53) gives an
    official "paling lama 10 (sepuluh) hari kerja setelah permohonan diterima secara lengkap".
    Counting the day of receipt would also let an application handed in at 15:55 lose a whole day. An application received after closing time, or on a day that is not a working day (a
    Saturday counter, a holiday, an online submission at night), is deemed received on the next
    working day, the first day on which it can be processed, and the N days count after that day.
    This is also the rule of ``Calendar.add_working_days``. So with counters closing at 16:00:

    * received Friday 15:59 or 16:00, 1 working day: due Monday 16:00;
    * received Friday 16:01 or Saturday, 1 working day: due Tuesday 16:00;
    * received Monday 16 March 2026 (WIB), 28 working days (PBG): due Monday 4 May 2026 16:00, after
      the Nyepi and Idulfitri holidays and cuti bersama, Good Friday and Labour Day.

    The elapsed working days of a case are counted the same way: the working days after its day of
    receipt up to and including the day of the instant measured, an instant after a day's closing
    time belonging to the next working day (see :meth:`WorkingClock.receipt_day`). A case finished on its day of receipt has used 0 working days; one
    finished at closing time on its due date has used exactly N, and one finished a minute later
    N + 1.

Pauses
    A pause (the clock stopped, e.g. the application returned to the citizen) removes the working
    time it covered, measured like any other period, and pushes the due instant by that much. In
    working days, an application resubmitted on day R starts counting again after R, as a new
    receipt would. Pauses never shorten the time allowed.

Every function takes and returns timezone-aware datetimes and works in the site's time zone; years
whose holidays the calendar does not list raise :class:`CalendarNotCovered`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal, TypeVar, overload
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from mpp.contracts.events.common import DurationUnit

if TYPE_CHECKING:
    from mpp.contracts.masterdata import Calendar, Catalogue

__all__ = [
    "CalendarNotCovered",
    "ClockPaused",
    "DurationUnit",
    "Pause",
    "Sla",
    "WorkingClock",
]

Pause = tuple[datetime, datetime | None]
"""A period when the SLA clock was stopped; an end of ``None`` means it is still stopped."""

_ONE_DAY = timedelta(days=1)
_Amount = TypeVar("_Amount", int, timedelta)


class Sla(BaseModel):
    """Jangka waktu penyelesaian: the published time limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: int = Field(ge=1)
    unit: DurationUnit

    def describe(self) -> str:
        """The limit in Bahasa Indonesia, e.g. ``28 hari kerja``."""
        unit = {
            DurationUnit.MINUTES: "menit",
            DurationUnit.HOURS: "jam",
            DurationUnit.WORKING_DAYS: "hari kerja",
        }
        return f"{self.value} {unit[self.unit]}"


class CalendarNotCovered(LookupError):
    """The calendar does not list the holidays of the year asked about."""


class ClockPaused(ValueError):
    """The clock is stopped by a pause that has not ended, so the due instant is not known yet."""


class WorkingClock:
    """Working-time arithmetic on one calendar in one time zone (see the module documentation)."""

    def __init__(self, calendar: Calendar, tz: tzinfo) -> None:
        self.calendar = calendar
        self.tz = tz
        self._intervals: dict[date, tuple[tuple[datetime, datetime], ...]] = {}

    @classmethod
    def for_site(cls, catalogue: Catalogue, site: str) -> WorkingClock:
        """The clock of one site of the catalogue: its calendar in its time zone."""
        found = catalogue.site(site)
        return cls(catalogue.calendar(found.calendar), ZoneInfo(found.timezone.value))

    # Days

    def is_working_day(self, d: date) -> bool:
        """A working weekday that is not a holiday (national, cuti bersama or local).

        Raises :class:`CalendarNotCovered` for a year whose holidays the calendar does not list.
        """
        return self.calendar.is_working_day(d)

    def opening_intervals(self, d: date) -> list[tuple[datetime, datetime]]:
        """The working time of day ``d`` in local time: its opening hours minus the break.

        Special hours (e.g. Ramadan) replace the weekly hours; the list is empty on days that are not
        working days, even when the site opens (see the module documentation).
        """
        return list(self._day_intervals(d))

    def closing_time(self, d: date) -> datetime:
        """When working day ``d`` ends: its last closing time, or midnight if it lists no hours."""
        intervals = self._day_intervals(d)
        if intervals:
            return intervals[-1][1]
        return datetime.combine(d + _ONE_DAY, time(0), tzinfo=self.tz)

    def next_working_day(self, d: date) -> date:
        """The first working day after ``d``."""
        d += _ONE_DAY
        while not self.is_working_day(d):
            d += _ONE_DAY
        return d

    def receipt_day(self, instant: datetime) -> date:
        """The working day an application received at ``instant`` counts as received on.

        The local day itself when it is a working day and ``instant`` is at or before its closing
        time; otherwise the next working day.
        """
        _require_aware(instant)
        day = instant.astimezone(self.tz).date()
        if self.is_working_day(day) and instant <= self.closing_time(day):
            return day
        return self.next_working_day(day)

    # Durations

    def add(self, start: datetime, value: int, unit: DurationUnit) -> datetime:
        """The due instant of a limit of ``value`` ``unit`` starting at ``start``, in local time."""
        _require_aware(start)
        if value < 0:
            raise ValueError("a duration must not be negative")
        unit = DurationUnit(unit)
        if unit == DurationUnit.WORKING_DAYS:
            return self._add_working_days(start, value)
        return self._add_working_time(start, _as_timedelta(value, unit))

    @overload
    def elapsed(  # type: ignore[overload-overlap]  # an int is a float, and it is whole in working days
        self,
        start: datetime,
        end: datetime,
        unit: Literal[DurationUnit.WORKING_DAYS],
        pauses: Sequence[Pause] = (),
    ) -> int: ...

    @overload
    def elapsed(
        self, start: datetime, end: datetime, unit: DurationUnit, pauses: Sequence[Pause] = ()
    ) -> float: ...

    def elapsed(
        self, start: datetime, end: datetime, unit: DurationUnit, pauses: Sequence[Pause] = ()
    ) -> float:
        """Working time from ``start`` to ``end`` without the paused periods.

        Minutes and hours are exact (a float); working days are whole (an int, counted as the module
        documentation describes). A pause that has not ended runs to ``end``.
        """
        _require_aware(start, end)
        if end < start:
            raise ValueError("end is before start")
        unit = DurationUnit(unit)
        active = _without(start, end, _merged(pauses))
        if unit == DurationUnit.WORKING_DAYS:
            return sum(self._working_days(a, b) for a, b in active)
        worked = sum((self.working_time(a, b) for a, b in active), timedelta())
        return worked / _as_timedelta(1, unit)

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """The exact working time between two instants (zero when ``end`` is not after ``start``)."""
        _require_aware(start, end)
        return sum((_utc(b) - _utc(a) for a, b in self._working_periods(start, end)), timedelta())

    def due(self, start: datetime, sla: Sla, pauses: Sequence[Pause] = ()) -> datetime:
        """When a case started at ``start`` is due under ``sla``, each pause pushing it by the working
        time the pause covered.

        Raises :class:`ClockPaused` when a pause that has not ended began before the case was due.
        """
        _require_aware(start)
        unit = DurationUnit(sla.unit)
        if unit == DurationUnit.WORKING_DAYS:
            return self._due(start, sla.value, pauses, self._add_working_days, self._working_days)
        return self._due(
            start, _as_timedelta(sla.value, unit), pauses, self._add_working_time, self.working_time
        )

    def _due(
        self,
        start: datetime,
        remaining: _Amount,
        pauses: Sequence[Pause],
        add: Callable[[datetime, _Amount], datetime],
        measure: Callable[[datetime, datetime], _Amount],
    ) -> datetime:
        cursor = start
        for paused_from, paused_until in _merged(pauses):
            if paused_until is not None and paused_until <= cursor:
                continue
            stops = max(paused_from, cursor)
            candidate = add(cursor, remaining)
            if candidate <= stops:
                return candidate
            remaining -= measure(cursor, stops)
            if paused_until is None:
                raise ClockPaused(
                    f"the clock stopped at {stops.isoformat()} and has not restarted: "
                    "the due instant is not known yet"
                )
            cursor = paused_until
        return add(cursor, remaining)

    def _add_working_time(self, start: datetime, remaining: timedelta) -> datetime:
        if not remaining:
            return start.astimezone(self.tz)
        day = start.astimezone(self.tz).date()
        while True:
            for opens, closes in self._day_intervals(day):
                if closes <= start:
                    continue
                counts_from = max(opens, start)
                span = _utc(closes) - _utc(counts_from)
                if remaining <= span:
                    return (_utc(counts_from) + remaining).astimezone(self.tz)
                remaining -= span
            day += _ONE_DAY

    def _add_working_days(self, start: datetime, days: int) -> datetime:
        return self.closing_time(self.calendar.add_working_days(self.receipt_day(start), days))

    def _working_days(self, start: datetime, end: datetime) -> int:
        return self.calendar.working_days_between(self.receipt_day(start), self.receipt_day(end))

    def _working_periods(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        day, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        while day <= last:
            for opens, closes in self._day_intervals(day):
                a, b = max(opens, start), min(closes, end)
                if a < b:
                    yield a, b
            day += _ONE_DAY

    def _day_intervals(self, d: date) -> tuple[tuple[datetime, datetime], ...]:
        cached = self._intervals.get(d)
        if cached is not None:
            return cached
        intervals: tuple[tuple[datetime, datetime], ...] = ()
        hours = self.calendar.opening_hours(d) if self.is_working_day(d) else None
        if hours is not None:
            bounds = [hours.opens, hours.closes]
            if hours.break_start is not None and hours.break_end is not None:
                bounds[1:1] = [hours.break_start, hours.break_end]
            local = [datetime.combine(d, t, tzinfo=self.tz) for t in bounds]
            intervals = tuple(zip(local[::2], local[1::2], strict=True))
        self._intervals[d] = intervals
        return intervals


def _require_aware(*instants: datetime) -> None:
    for instant in instants:
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError(f"{instant.isoformat()} has no time zone: pass timezone-aware datetimes")


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def _as_timedelta(value: int, unit: DurationUnit) -> timedelta:
    if unit == DurationUnit.MINUTES:
        return timedelta(minutes=value)
    if unit == DurationUnit.HOURS:
        return timedelta(hours=value)
    raise ValueError(f"{unit.value} is not a length of time")


def _merged(pauses: Sequence[Pause]) -> list[Pause]:
    """Pauses sorted and merged where they overlap or touch."""
    for paused_from, paused_until in pauses:
        _require_aware(paused_from, *([paused_until] if paused_until is not None else []))
        if paused_until is not None and paused_until < paused_from:
            raise ValueError(f"a pause ends before it starts: {paused_from.isoformat()}")
    merged: list[Pause] = []
    for paused_from, paused_until in sorted(pauses, key=lambda p: _utc(p[0])):
        if merged:
            last_from, last_until = merged[-1]
            if last_until is None or paused_from <= last_until:
                ends = None if last_until is None or paused_until is None else max(last_until, paused_until)
                merged[-1] = (last_from, ends)
                continue
        merged.append((paused_from, paused_until))
    return merged


def _without(start: datetime, end: datetime, pauses: list[Pause]) -> list[tuple[datetime, datetime]]:
    """The parts of ``[start, end]`` outside the (merged) pauses."""
    active: list[tuple[datetime, datetime]] = []
    cursor = start
    for paused_from, paused_until in pauses:
        if paused_from >= end:
            break
        if paused_until is not None and paused_until <= cursor:
            continue
        if paused_from > cursor:
            active.append((cursor, paused_from))
        if paused_until is None:
            return active
        cursor = max(cursor, paused_until)
    if cursor < end:
        active.append((cursor, end))
    return active
