"""When a site's day closes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from mpp.contracts.masterdata import load_demo_catalogue
from mpp.queue.domain.dayclose import closed_before, day_closes_at

JAKARTA = ZoneInfo("Asia/Jakarta")
CALENDAR = load_demo_catalogue().calendars[0]
HOUR = timedelta(hours=1)


def test_a_working_day_closes_at_closing_time_plus_grace() -> None:
    closes = day_closes_at(CALENDAR, JAKARTA, date(2026, 11, 3), HOUR)

    hours = CALENDAR.opening_hours(date(2026, 11, 3))
    assert hours is not None
    assert closes == datetime(2026, 11, 3, hours.closes.hour, hours.closes.minute, tzinfo=JAKARTA) + HOUR


def test_a_day_without_hours_closes_at_midnight() -> None:
    christmas = date(2026, 12, 25)
    assert CALENDAR.opening_hours(christmas) is None

    assert day_closes_at(CALENDAR, JAKARTA, christmas, HOUR) == datetime(2026, 12, 26, tzinfo=JAKARTA)


def test_a_year_the_calendar_does_not_cover_follows_the_weekly_hours() -> None:
    day = date(2031, 11, 4)  # a Tuesday
    weekly = next(h for h in CALENDAR.weekly_hours if h.weekday == day.isoweekday())

    assert day_closes_at(CALENDAR, JAKARTA, day, HOUR) == datetime.combine(day, weekly.closes, JAKARTA) + HOUR


def test_what_started_before_today_is_closed_during_the_day() -> None:
    morning = datetime(2026, 11, 3, 2, 15, tzinfo=UTC)  # 09:15 in Jakarta

    assert closed_before(CALENDAR, JAKARTA, morning, HOUR) == datetime(2026, 11, 3, tzinfo=JAKARTA)


def test_everything_is_closed_once_today_closed() -> None:
    evening = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)  # 19:00 in Jakarta

    assert closed_before(CALENDAR, JAKARTA, evening, HOUR) == evening


def test_just_after_midnight_yesterday_may_still_be_in_its_grace() -> None:
    late_grace = timedelta(hours=9)  # 16:00 + 9 h: yesterday closes at 01:00 today
    after_midnight = datetime(2026, 11, 3, 17, 30, tzinfo=UTC)  # 00:30 on 4 November in Jakarta

    assert closed_before(CALENDAR, JAKARTA, after_midnight, late_grace) == datetime(
        2026, 11, 3, tzinfo=JAKARTA
    )
