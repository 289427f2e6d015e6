"""Periods are whole days: week from Monday, triwulan, semester, year."""

from __future__ import annotations

from datetime import date

import pytest

from mpp.reporting.domain.periods import Period, period_label, period_start

pytestmark = pytest.mark.unit

DAY = date(2026, 8, 20)  # a Thursday


@pytest.mark.parametrize(
    ("period", "start", "label"),
    [
        (Period.DAY, date(2026, 8, 20), "2026-08-20"),
        (Period.WEEK, date(2026, 8, 17), "2026-W34"),
        (Period.MONTH, date(2026, 8, 1), "2026-08"),
        (Period.QUARTER, date(2026, 7, 1), "2026-Q3"),
        (Period.SEMESTER, date(2026, 7, 1), "2026-S2"),
        (Period.YEAR, date(2026, 1, 1), "2026"),
    ],
)
def test_the_period_of_a_day(period: Period, start: date, label: str) -> None:
    assert period_start(DAY, period) == start
    assert period_label(start, period) == label


def test_the_whole_range_is_one_period() -> None:
    assert period_start(DAY, Period.ALL) is None
    assert period_label(None, Period.ALL) == "all"


@pytest.mark.parametrize(
    ("day", "quarter", "semester"),
    [
        (date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 1)),
        (date(2026, 3, 31), date(2026, 1, 1), date(2026, 1, 1)),
        (date(2026, 4, 1), date(2026, 4, 1), date(2026, 1, 1)),
        (date(2026, 6, 30), date(2026, 4, 1), date(2026, 1, 1)),
        (date(2026, 7, 1), date(2026, 7, 1), date(2026, 7, 1)),
        (date(2026, 12, 31), date(2026, 10, 1), date(2026, 7, 1)),
    ],
)
def test_quarter_and_semester_edges(day: date, quarter: date, semester: date) -> None:
    assert period_start(day, Period.QUARTER) == quarter
    assert period_start(day, Period.SEMESTER) == semester


def test_an_iso_week_across_the_new_year() -> None:
    start = period_start(date(2027, 1, 1), Period.WEEK)

    assert start == date(2026, 12, 28)
    assert period_label(start, Period.WEEK) == "2026-W53"
