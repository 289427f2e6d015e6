"""Working-time arithmetic on the demo site's 2026 calendar (WIB): hours, breaks, Ramadan hours, weekends,
national holidays, cuti bersama and pauses.

Weekly hours: Monday to Thursday 08:00-16:00 with a 12:00-13:00 break, Friday 08:00-16:00 with an
11:30-13:00 break, Saturday 08:00-12:00 (open, but not a working day). Ramadan (19 February to
17 March): Monday to Thursday 08:00-14:00, Friday 08:00-14:30 with an 11:30-12:30 break.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.contracts.calendar import CalendarNotCovered, ClockPaused, Pause, Sla, WorkingClock
from mpp.contracts.events.common import DurationUnit
from mpp.contracts.masterdata import load_demo_catalogue

pytestmark = pytest.mark.unit

WIB = ZoneInfo("Asia/Jakarta")
WIT = ZoneInfo("Asia/Jayapura")
MINUTES, HOURS, DAYS = DurationUnit.MINUTES, DurationUnit.HOURS, DurationUnit.WORKING_DAYS
CATALOGUE = load_demo_catalogue()
CLOCK = WorkingClock.for_site(CATALOGUE, "mpp-kota-sukamaju")


def wib(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=WIB)


def sla(value: int, unit: DurationUnit) -> Sla:
    return Sla(value=value, unit=unit)


class TestWorkingDays:
    @pytest.mark.parametrize(
        ("day", "working"),
        [
            (date(2026, 4, 13), True),  # an ordinary Monday
            (date(2026, 3, 2), True),  # a Monday in Ramadan
            (date(2026, 4, 11), False),  # Saturday: the site opens, but it is not a working day
            (date(2026, 4, 12), False),  # Sunday
            (date(2026, 8, 17), False),  # Hari Proklamasi, a Monday
            (date(2026, 12, 24), False),  # cuti bersama Natal, a Thursday
            (date(2026, 3, 23), False),  # cuti bersama Idulfitri, a Monday
        ],
    )
    def test_knows_working_days(self, day: date, working: bool) -> None:
        assert CLOCK.is_working_day(day) is working

    def test_a_year_the_calendar_does_not_list_is_refused(self) -> None:
        with pytest.raises(CalendarNotCovered, match="2027"):
            CLOCK.is_working_day(date(2027, 1, 4))

    def test_the_next_working_day_skips_lebaran(self) -> None:
        assert CLOCK.next_working_day(date(2026, 3, 17)) == date(2026, 3, 25)

    def test_the_clock_of_a_site_uses_its_time_zone(self) -> None:
        assert CLOCK.tz == WIB


class TestOpeningIntervals:
    def test_an_ordinary_monday_has_a_midday_break(self) -> None:
        assert CLOCK.opening_intervals(date(2026, 4, 13)) == [
            (wib(4, 13, 8), wib(4, 13, 12)),
            (wib(4, 13, 13), wib(4, 13, 16)),
        ]

    def test_friday_has_a_longer_break_for_friday_prayers(self) -> None:
        assert CLOCK.opening_intervals(date(2026, 4, 10)) == [
            (wib(4, 10, 8), wib(4, 10, 11, 30)),
            (wib(4, 10, 13), wib(4, 10, 16)),
        ]

    def test_a_ramadan_monday_closes_at_14_without_a_break(self) -> None:
        assert CLOCK.opening_intervals(date(2026, 3, 2)) == [(wib(3, 2, 8), wib(3, 2, 14))]

    def test_a_ramadan_friday_closes_at_14_30(self) -> None:
        assert CLOCK.opening_intervals(date(2026, 3, 6)) == [
            (wib(3, 6, 8), wib(3, 6, 11, 30)),
            (wib(3, 6, 12, 30), wib(3, 6, 14, 30)),
        ]

    @pytest.mark.parametrize("day", [date(2026, 4, 11), date(2026, 8, 17), date(2026, 12, 24)])
    def test_are_empty_on_saturdays_holidays_and_cuti_bersama(self, day: date) -> None:
        assert CLOCK.opening_intervals(day) == []

    def test_are_in_the_site_time_zone(self) -> None:
        opens, _ = CLOCK.opening_intervals(date(2026, 4, 13))[0]

        assert opens.tzinfo == WIB


class TestAddingMinutesAndHours:
    @pytest.mark.parametrize(
        ("start", "value", "unit", "due"),
        [
            (wib(4, 13, 9), 30, MINUTES, wib(4, 13, 9, 30)),
            (wib(4, 13, 11, 45), 30, MINUTES, wib(4, 13, 13, 15)),  # over the break
            (wib(4, 13, 11), 60, MINUTES, wib(4, 13, 12)),  # used up at the break, not after it
            (wib(4, 13, 12, 10), 30, MINUTES, wib(4, 13, 13, 30)),  # received during the break
            (wib(4, 13, 7), 30, MINUTES, wib(4, 13, 8, 30)),  # received before opening
            (wib(4, 10, 15, 50), 30, MINUTES, wib(4, 13, 8, 20)),  # over the weekend
            (wib(5, 13, 15, 30), 60, MINUTES, wib(5, 18, 8, 30)),  # Kenaikan, cuti bersama, weekend
            (wib(3, 2, 13, 30), 60, MINUTES, wib(3, 3, 8, 30)),  # Ramadan closes at 14:00
            (wib(3, 6, 11), 60, MINUTES, wib(3, 6, 13)),  # Ramadan Friday break 11:30-12:30
            (wib(4, 13, 14), 4, HOURS, wib(4, 14, 10)),  # a same-day letter received late
            (wib(3, 17, 13), 4, HOURS, wib(3, 25, 11)),  # last day of Ramadan, then Lebaran
        ],
    )
    def test_counts_only_opening_time_of_working_days(
        self, start: datetime, value: int, unit: DurationUnit, due: datetime
    ) -> None:
        assert CLOCK.add(start, value, unit) == due

    def test_answers_in_the_site_time_zone(self) -> None:
        clock = WorkingClock(CATALOGUE.site_calendar("mpp-kota-sukamaju"), WIT)

        due = clock.add(datetime(2026, 4, 12, 23, 0, tzinfo=UTC), 30, MINUTES)

        assert (due, due.tzinfo) == (datetime(2026, 4, 13, 8, 30, tzinfo=WIT), WIT)

    def test_a_naive_datetime_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no time zone"):
            CLOCK.add(datetime(2026, 4, 13, 9), 30, MINUTES)

    def test_a_negative_duration_is_refused(self) -> None:
        with pytest.raises(ValueError, match="negative"):
            CLOCK.add(wib(4, 13, 9), -1, MINUTES)


class TestAddingWorkingDays:
    @pytest.mark.parametrize(
        ("received", "due"),
        [
            (wib(4, 10, 15, 59), wib(4, 13, 16)),  # Friday before closing: Friday does not count
            (wib(4, 10, 16), wib(4, 13, 16)),  # Friday at closing time is still Friday
            (wib(4, 10, 16, 1), wib(4, 14, 16)),  # after closing: deemed received on Monday
            (wib(4, 11, 10), wib(4, 14, 16)),  # at the Saturday counter: deemed received on Monday
            (wib(4, 13, 7), wib(4, 14, 16)),  # before opening: received that day
            (wib(3, 17, 10), wib(3, 25, 16)),  # over Nyepi, Idulfitri and cuti bersama
            (wib(3, 9, 10), wib(3, 10, 14)),  # due on a Ramadan day: at its closing time
            (wib(3, 12, 10), wib(3, 13, 14, 30)),  # due on a Ramadan Friday
            (wib(3, 12, 14, 30), wib(3, 16, 14)),  # after the Ramadan closing time
            (wib(12, 23, 10), wib(12, 28, 16)),  # over cuti bersama and Natal
        ],
    )
    def test_one_working_day_is_due_at_the_close_of_the_next_working_day(
        self, received: datetime, due: datetime
    ) -> None:
        assert CLOCK.add(received, 1, DAYS) == due

    def test_pbg_received_on_16_march_is_due_on_4_may(self) -> None:
        assert CLOCK.due(wib(3, 16, 10), sla(28, DAYS)) == wib(5, 4, 16)

    def test_the_research_permit_is_due_three_working_days_later(self) -> None:
        assert CLOCK.due(wib(4, 29, 9), sla(3, DAYS)) == wib(5, 5, 16)  # skips Labour Day, 1 May

    def test_a_due_date_in_a_year_the_calendar_does_not_list_is_refused(self) -> None:
        with pytest.raises(CalendarNotCovered, match="2027"):
            CLOCK.add(wib(12, 31, 10), 1, DAYS)

    def test_the_receipt_day_after_closing_is_the_next_working_day(self) -> None:
        assert CLOCK.receipt_day(wib(4, 10, 17)) == date(2026, 4, 13)


class TestElapsed:
    @pytest.mark.parametrize(
        ("start", "end", "unit", "elapsed"),
        [
            (wib(4, 13, 8), wib(4, 13, 16), MINUTES, 420),
            (wib(4, 10, 8), wib(4, 10, 16), MINUTES, 390),
            (wib(4, 10, 15), wib(4, 13, 9), MINUTES, 120),  # over the weekend
            (wib(3, 2, 8), wib(3, 2, 16), MINUTES, 360),  # Ramadan
            (wib(3, 6, 8), wib(3, 6, 16), MINUTES, 330),  # Ramadan Friday
            (wib(3, 17, 13), wib(3, 25, 9), MINUTES, 120),  # over Lebaran
            (wib(4, 13, 8), wib(4, 14, 16), HOURS, 14),
            (wib(4, 13, 12, 15), wib(4, 13, 12, 45), MINUTES, 0),  # within the break
            (wib(3, 16, 10), wib(3, 16, 13), DAYS, 0),  # finished on the day of receipt
            (wib(3, 16, 10), wib(3, 16, 15), DAYS, 1),  # after that day's Ramadan closing: next day
            (wib(3, 16, 10), wib(5, 4, 16), DAYS, 28),  # PBG finished at closing on its due date
            (wib(3, 16, 10), wib(5, 4, 16, 1), DAYS, 29),  # a minute late
            (wib(4, 10, 16, 30), wib(4, 13, 10), DAYS, 0),  # received after closing, done Monday
        ],
    )
    def test_counts_working_time(
        self, start: datetime, end: datetime, unit: DurationUnit, elapsed: float
    ) -> None:
        assert CLOCK.elapsed(start, end, unit) == elapsed

    def test_an_end_before_the_start_is_refused(self) -> None:
        with pytest.raises(ValueError, match="before start"):
            CLOCK.elapsed(wib(4, 13, 10), wib(4, 13, 9), MINUTES)

    def test_working_days_are_whole(self) -> None:
        assert isinstance(CLOCK.elapsed(wib(3, 16, 10), wib(5, 4, 16), DAYS), int)


class TestPauses:
    def test_a_return_over_the_lebaran_holidays_pushes_pbg_by_one_working_day(self) -> None:
        returned = (wib(3, 17, 10), wib(3, 25, 10))  # the only working day it covered is 25 March

        assert CLOCK.due(wib(3, 16, 10), sla(28, DAYS), [returned]) == wib(5, 5, 16)

    def test_the_paused_time_does_not_count(self) -> None:
        returned = (wib(3, 17, 10), wib(3, 25, 10))

        assert CLOCK.elapsed(wib(3, 16, 10), wib(5, 5, 16), DAYS, [returned]) == 28

    def test_a_pause_within_one_day_does_not_move_a_due_date_in_working_days(self) -> None:
        assert CLOCK.due(wib(4, 13, 9), sla(1, DAYS), [(wib(4, 13, 10), wib(4, 13, 11))]) == wib(4, 14, 16)

    def test_a_pause_over_closing_time_moves_it_by_one_day(self) -> None:
        assert CLOCK.due(wib(4, 13, 9), sla(1, DAYS), [(wib(4, 13, 15), wib(4, 14, 9))]) == wib(4, 15, 16)

    def test_a_pause_pushes_minutes_by_the_opening_time_it_covered(self) -> None:
        assert CLOCK.due(wib(4, 13, 9), sla(60, MINUTES), [(wib(4, 13, 9, 30), wib(4, 14, 9))]) == wib(
            4, 14, 9, 30
        )

    def test_a_pause_over_holidays_covers_only_opening_time(self) -> None:
        paused = (wib(5, 13, 15, 10), wib(5, 18, 8))  # Wednesday 15:10 to Monday 08:00: 50 minutes

        assert CLOCK.due(wib(5, 13, 15), sla(60, MINUTES), [paused]) == wib(5, 18, 8, 50)

    def test_an_open_pause_runs_to_the_end(self) -> None:
        assert CLOCK.elapsed(wib(4, 13, 9), wib(4, 14, 16), MINUTES, [(wib(4, 13, 10), None)]) == 60

    def test_an_open_pause_before_the_due_instant_leaves_it_unknown(self) -> None:
        with pytest.raises(ClockPaused, match="not known yet"):
            CLOCK.due(wib(4, 13, 9), sla(60, MINUTES), [(wib(4, 13, 9, 30), None)])

    def test_an_open_pause_after_the_due_instant_does_not_matter(self) -> None:
        assert CLOCK.due(wib(4, 13, 9), sla(60, MINUTES), [(wib(4, 13, 11), None)]) == wib(4, 13, 10)

    def test_overlapping_pauses_count_once(self) -> None:
        pauses: list[Pause] = [(wib(4, 13, 10), wib(4, 13, 11)), (wib(4, 13, 10, 30), wib(4, 13, 12))]

        assert CLOCK.elapsed(wib(4, 13, 8), wib(4, 13, 16), MINUTES, pauses) == 300

    def test_a_pause_before_the_start_is_ignored(self) -> None:
        assert CLOCK.elapsed(wib(4, 13, 9), wib(4, 13, 10), MINUTES, [(wib(4, 10, 9), wib(4, 10, 10))]) == 60

    def test_a_pause_that_ends_before_it_starts_is_refused(self) -> None:
        with pytest.raises(ValueError, match="ends before it starts"):
            CLOCK.elapsed(wib(4, 13, 8), wib(4, 13, 16), MINUTES, [(wib(4, 13, 11), wib(4, 13, 10))])


# Properties. Instants run to the end of September so that due dates stay within 2026.

INSTANTS = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 9, 30, 23, 59), timezones=st.just(WIB)
)
LIMITS = st.one_of(
    st.builds(sla, st.integers(1, 3000), st.just(MINUTES)),
    st.builds(sla, st.integers(1, 50), st.just(HOURS)),
    st.builds(sla, st.integers(1, 30), st.just(DAYS)),
)
UNITS = st.sampled_from([MINUTES, HOURS, DAYS])
CLOSED_PAUSES = st.lists(
    st.tuples(INSTANTS, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=7))).map(
        lambda p: (p[0], p[0] + p[1])
    ),
    max_size=3,
)


class TestProperties:
    @settings(deadline=None)
    @given(start=INSTANTS, limit=LIMITS)
    def test_the_time_to_the_due_instant_is_the_limit(self, start: datetime, limit: Sla) -> None:
        assert CLOCK.elapsed(start, CLOCK.due(start, limit), limit.unit) == limit.value

    @settings(deadline=None)
    @given(start=INSTANTS, limit=LIMITS)
    def test_due_without_pauses_adds_the_limit(self, start: datetime, limit: Sla) -> None:
        assert CLOCK.due(start, limit) == CLOCK.add(start, limit.value, limit.unit)

    @settings(deadline=None)
    @given(instants=st.lists(INSTANTS, min_size=3, max_size=3).map(sorted), unit=UNITS)
    def test_elapsed_is_additive_over_adjacent_intervals(
        self, instants: list[datetime], unit: DurationUnit
    ) -> None:
        a, b, c = instants

        assert CLOCK.elapsed(a, c, unit) == pytest.approx(
            CLOCK.elapsed(a, b, unit) + CLOCK.elapsed(b, c, unit)
        )

    @settings(deadline=None)
    @given(instants=st.lists(INSTANTS, min_size=3, max_size=3).map(sorted))
    def test_working_time_is_exactly_additive(self, instants: list[datetime]) -> None:
        a, b, c = instants

        assert CLOCK.working_time(a, c) == CLOCK.working_time(a, b) + CLOCK.working_time(b, c)

    @settings(deadline=None)
    @given(start=INSTANTS, limit=LIMITS, pauses=CLOSED_PAUSES)
    def test_pauses_never_shorten_the_time_allowed(
        self, start: datetime, limit: Sla, pauses: list[Pause]
    ) -> None:
        assert CLOCK.due(start, limit, pauses) >= CLOCK.due(start, limit)

    @settings(deadline=None)
    @given(start=INSTANTS, limit=LIMITS, pauses=CLOSED_PAUSES)
    def test_the_working_time_to_a_paused_due_instant_is_the_limit(
        self, start: datetime, limit: Sla, pauses: list[Pause]
    ) -> None:
        assert CLOCK.elapsed(start, CLOCK.due(start, limit, pauses), limit.unit, pauses) == limit.value

    @settings(deadline=None)
    @given(instants=st.lists(INSTANTS, min_size=2, max_size=2).map(sorted), unit=UNITS, pauses=CLOSED_PAUSES)
    def test_pauses_never_add_elapsed_time(
        self, instants: list[datetime], unit: DurationUnit, pauses: list[Pause]
    ) -> None:
        start, end = instants

        assert CLOCK.elapsed(start, end, unit, pauses) <= CLOCK.elapsed(start, end, unit)

    @settings(deadline=None)
    @given(instants=st.lists(INSTANTS, min_size=3, max_size=3).map(sorted), unit=UNITS)
    def test_an_open_pause_counts_like_one_that_ends_at_the_end(
        self, instants: list[datetime], unit: DurationUnit
    ) -> None:
        start, paused, end = instants

        assert CLOCK.elapsed(start, end, unit, [(paused, None)]) == CLOCK.elapsed(
            start, end, unit, [(paused, end)]
        )

    @settings(deadline=None)
    @given(instants=st.lists(INSTANTS, min_size=4, max_size=4).map(sorted), unit=UNITS)
    def test_adjacent_pauses_count_like_one(self, instants: list[datetime], unit: DurationUnit) -> None:
        start, a, b, c = instants

        assert CLOCK.elapsed(start, c, unit, [(b, c), (a, b)]) == CLOCK.elapsed(start, c, unit, [(a, c)])

    @settings(deadline=None)
    @given(start=INSTANTS, value=st.integers(0, 29), unit=UNITS)
    def test_a_longer_limit_is_never_due_earlier(
        self, start: datetime, value: int, unit: DurationUnit
    ) -> None:
        assert CLOCK.add(start, value, unit) <= CLOCK.add(start, value + 1, unit)

    @settings(deadline=None)
    @given(start=INSTANTS, value=st.integers(1, 3000))
    def test_a_limit_in_minutes_falls_due_within_opening_hours(self, start: datetime, value: int) -> None:
        due = CLOCK.add(start, value, MINUTES)

        assert any(opens <= due <= closes for opens, closes in CLOCK.opening_intervals(due.date()))

    @settings(deadline=None)
    @given(start=INSTANTS, value=st.integers(1, 30))
    def test_a_limit_in_working_days_falls_due_at_the_close_of_a_working_day(
        self, start: datetime, value: int
    ) -> None:
        due = CLOCK.add(start, value, DAYS)

        assert CLOCK.is_working_day(due.date())
        assert due == CLOCK.closing_time(due.date())

    @settings(deadline=None)
    @given(start=INSTANTS, value=st.integers(1, 30))
    def test_working_days_agree_with_the_calendar_date_arithmetic(self, start: datetime, value: int) -> None:
        assert CLOCK.add(start, value, DAYS).date() == CLOCK.calendar.add_working_days(
            CLOCK.receipt_day(start), value
        )

    @settings(deadline=None)
    @given(start=INSTANTS, limit=LIMITS)
    def test_the_answer_does_not_depend_on_the_time_zone_of_the_question(
        self, start: datetime, limit: Sla
    ) -> None:
        assert CLOCK.due(start.astimezone(UTC), limit) == CLOCK.due(start, limit)
