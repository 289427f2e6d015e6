"""When a site's day is over for the queue, and what closing it does to what is left open.

A site's day ``D`` closes at its closing time on ``D`` (the calendar's hours, in the site's time zone) plus
a grace period in which officers finish the citizens already at their counters; on a day the calendar
has no hours for (a holiday, a Sunday, a year it does not cover) it closes at midnight. Closing it:

- a ticket still waiting or being served is cancelled by the system with reason ``day_closed``;
- a ticket called and not answered is a no-show;
- a visit whose tickets are then all finished (or that has none) ends;
- a counter still open closes with reason ``end_of_day``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from mpp.contracts.calendar import CalendarNotCovered
from mpp.contracts.masterdata import Calendar

DAY_CLOSED = "day_closed"
"""The reason code of tickets the day close cancels."""
DAY_CLOSE_ACTOR = "system-day-close"
"""Who the events of a day close name as acting (no officer acts)."""


def day_closes_at(calendar: Calendar, tz: tzinfo, day: date, grace: timedelta) -> datetime:
    """The instant the queue of ``day`` closes at a site with ``calendar`` in time zone ``tz``."""
    try:
        hours = calendar.opening_hours(day)
    except CalendarNotCovered:
        hours = next((h for h in calendar.weekly_hours if h.weekday == day.isoweekday()), None)
    if hours is None:
        return datetime.combine(day + timedelta(days=1), time(0), tz)
    return datetime.combine(day, hours.closes, tz) + grace


def closed_before(calendar: Calendar, tz: tzinfo, now: datetime, grace: timedelta) -> datetime:
    """The start of the earliest local day (of today and yesterday) that has not closed at ``now``, or
    ``now`` when today has closed too: whatever started before it belongs to a closed day."""
    today = now.astimezone(tz).date()
    if now >= day_closes_at(calendar, tz, today, grace):
        return now
    yesterday = today - timedelta(days=1)
    if now >= day_closes_at(calendar, tz, yesterday, grace):
        return datetime.combine(today, time(0), tz)
    return datetime.combine(yesterday, time(0), tz)


@dataclass
class DayCloseReport:
    tickets_cancelled: int = 0
    tickets_no_show: int = 0
    visits_ended: int = 0
    counters_closed: int = 0

    @property
    def total(self) -> int:
        return self.tickets_cancelled + self.tickets_no_show + self.visits_ended + self.counters_closed

    def add(self, other: DayCloseReport) -> None:
        self.tickets_cancelled += other.tickets_cancelled
        self.tickets_no_show += other.tickets_no_show
        self.visits_ended += other.visits_ended
        self.counters_closed += other.counters_closed
