"""Reporting periods: day, ISO week, month, quarter (triwulan), semester and year.

Every read model row belongs to one local day; a period is a set of whole days, so the figures of a
period are the sums of its days.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    SEMESTER = "semester"
    YEAR = "year"
    ALL = "all"
    """The whole requested range as one period."""


def period_start(day: date, period: Period) -> date | None:
    """The first day of the period holding ``day`` (none for :attr:`Period.ALL`)."""
    match period:
        case Period.DAY:
            return day
        case Period.WEEK:
            return day - timedelta(days=day.weekday())
        case Period.MONTH:
            return day.replace(day=1)
        case Period.QUARTER:
            return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
        case Period.SEMESTER:
            return date(day.year, 1 if day.month <= 6 else 7, 1)
        case Period.YEAR:
            return date(day.year, 1, 1)
        case Period.ALL:
            return None


def period_label(start: date | None, period: Period) -> str:
    """A compact label: 2026-03-02, 2026-W10, 2026-03, 2026-Q1 (triwulan I), 2026-S1, 2026, all."""
    if start is None:
        return "all"
    match period:
        case Period.DAY:
            return start.isoformat()
        case Period.WEEK:
            year, week, _ = start.isocalendar()
            return f"{year}-W{week:02d}"
        case Period.MONTH:
            return f"{start.year}-{start.month:02d}"
        case Period.QUARTER:
            return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
        case Period.SEMESTER:
            return f"{start.year}-S{1 if start.month <= 6 else 2}"
        case _:
            return str(start.year)


DayRange = tuple[date | None, date | None]
"""Inclusive bounds; none is unbounded."""


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _previous_month(first: date) -> date:
    return date(first.year - 1, 12, 1) if first.month == 1 else date(first.year, first.month - 1, 1)


def split_months(start: date | None, end: date | None) -> tuple[DayRange | None, list[DayRange]]:
    """Cut the inclusive day range ``[start, end]`` into the whole calendar months it covers, as the
    first days of the first and last of them (inclusive), and the days left at either edge.

    Every day of the range lies in exactly one part, so a sum over the range is the sum of the monthly
    totals plus the sums of the edge days.
    """
    if end is not None and end >= date(9999, 12, 1):
        end = None  # the last representable month: the same as no upper bound
    if (start is not None and start > date(9999, 12, 1)) or (end is not None and end < date(1, 2, 1)):
        return None, [(start, end)]  # no whole month can be named at the ends of the calendar
    first = None if start is None else (start if start.day == 1 else _next_month(start))
    # ``beyond``: the first day after the last whole month (an exclusive bound).
    beyond: date | None = None
    if end is not None:
        after = end + timedelta(days=1)
        beyond = after if after.day == 1 else end.replace(day=1)
    if first is not None and beyond is not None and first >= beyond:
        return None, [(start, end)]
    months: DayRange = (first, None if beyond is None else _previous_month(beyond))
    edges: list[DayRange] = []
    if start is not None and first is not None and start < first:
        edges.append((start, first - timedelta(days=1)))
    if end is not None and beyond is not None and beyond <= end:
        edges.append((beyond, end))
    return months, edges
