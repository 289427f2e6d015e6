"""Periods are whole days: week from Monday, triwulan, semester, year."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from mpp.reporting.domain.periods import Period, period_label, period_start, split_months

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


def _days_of(part: tuple[date | None, date | None], lo: date, hi: date, *, months: bool) -> set[date]:
    start, end = part
    out = set()
    day = lo
    while day <= hi:
        key = day.replace(day=1) if months else day
        if (start is None or key >= start) and (end is None or key <= end):
            out.add(day)
        day += timedelta(days=1)
    return out


def test_split_months_covers_every_day_of_the_range_exactly_once() -> None:
    rng = random.Random(3)
    lo, hi = date(2023, 11, 1), date(2025, 3, 31)
    span = (hi - lo).days
    for _ in range(400):
        a = lo + timedelta(days=rng.randrange(span)) if rng.random() < 0.9 else None
        b = lo + timedelta(days=rng.randrange(span)) if rng.random() < 0.9 else None
        if a is not None and b is not None and a > b:
            a, b = b, a
        months, edges = split_months(a, b)
        parts = [_days_of(e, lo, hi, months=False) for e in edges]
        if months is not None:
            assert months[0] is None or months[0].day == 1
            assert months[1] is None or months[1].day == 1
            parts.append(_days_of(months, lo, hi, months=True))
        wanted = {d for d in _days_of((a, b), lo, hi, months=False)}
        assert sum(len(p) for p in parts) == len(wanted)
        assert set().union(*parts) == wanted
        # Whole months are never left to the edges.
        for start, end in edges:
            assert start is not None and end is not None
            first = start if start.day == 1 else (start.replace(day=28) + timedelta(days=4)).replace(day=1)
            assert (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1) > end


def test_split_months_at_month_edges() -> None:
    assert split_months(date(2026, 1, 1), date(2026, 12, 31)) == ((date(2026, 1, 1), date(2026, 12, 1)), [])
    assert split_months(date(2026, 1, 5), date(2026, 2, 10)) == (
        None,
        [(date(2026, 1, 5), date(2026, 2, 10))],
    )
    assert split_months(date(2026, 1, 31), date(2026, 3, 1)) == (
        (date(2026, 2, 1), date(2026, 2, 1)),
        [(date(2026, 1, 31), date(2026, 1, 31)), (date(2026, 3, 1), date(2026, 3, 1))],
    )
    assert split_months(None, None) == ((None, None), [])
    assert split_months(date(2026, 1, 1), date.max) == ((date(2026, 1, 1), None), [])


def test_split_months_at_the_ends_of_the_calendar_reads_days() -> None:
    """No month before January of year 1 or after December 9999 can be named: those ranges are days."""
    assert split_months(None, date(1, 1, 5)) == (None, [(None, date(1, 1, 5))])
    assert split_months(date(1, 1, 1), date(1, 1, 31)) == (None, [(date(1, 1, 1), date(1, 1, 31))])
    assert split_months(date(9999, 12, 2), None) == (None, [(date(9999, 12, 2), None)])
    assert split_months(date(9999, 12, 15), date.max) == (None, [(date(9999, 12, 15), None)])
    assert split_months(None, date(1, 2, 1)) == ((None, date(1, 1, 1)), [(date(1, 2, 1), date(1, 2, 1))])
