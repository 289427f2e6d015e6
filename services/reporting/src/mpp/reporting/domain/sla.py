"""Whether an application finished within its published service standard, from master data.

Used when the finishing event does not say so itself. Working days are counted on the site's
calendar from the local day of submission (not counted) to the local day of finishing (counted).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from mpp.contracts.calendar import CalendarNotCovered
from mpp.contracts.events.common import DurationUnit
from mpp.contracts.masterdata import Catalogue
from mpp.reporting.domain.facts import SlaCheck, SlaDue

_MAX_SLA_DAYS = 3660


def catalogue_sla(catalogue: Catalogue, site_tz: Callable[[str], ZoneInfo]) -> SlaCheck:
    services = {s.code: s for s in catalogue.service_types}
    sites = {s.code: s for s in catalogue.sites}
    calendars = {c.code: c for c in catalogue.calendars}

    def within(site: str, service_type: str, submitted: datetime, finished: datetime) -> bool | None:
        service = services.get(service_type)
        if service is None:
            return None
        sla = service.sla
        if sla.unit is DurationUnit.MINUTES:
            return (finished - submitted).total_seconds() <= sla.value * 60
        if sla.unit is DurationUnit.HOURS:
            return (finished - submitted).total_seconds() <= sla.value * 3600
        where = sites.get(site)
        calendar = calendars.get(where.calendar) if where else None
        if calendar is None:
            return None
        tz = site_tz(site)
        try:
            days = calendar.working_days_between(
                submitted.astimezone(tz).date(), finished.astimezone(tz).date()
            )
        except CalendarNotCovered:
            return None
        return days <= sla.value

    return within


def catalogue_due(catalogue: Catalogue, site_tz: Callable[[str], ZoneInfo]) -> SlaDue:
    """The local due day of an application's published standard and how late it finished: working days
    after the due day up to the finishing day for standards in working days, calendar days otherwise."""
    services = {s.code: s for s in catalogue.service_types}
    sites = {s.code: s for s in catalogue.sites}
    calendars = {c.code: c for c in catalogue.calendars}

    def due(site: str, service_type: str, submitted: datetime, finished: datetime) -> tuple[date, int] | None:
        service = services.get(service_type)
        if service is None:
            return None
        tz = site_tz(site)
        finished_day = finished.astimezone(tz).date()
        sla = service.sla
        if sla.unit is not DurationUnit.WORKING_DAYS:
            minutes = sla.value * (60 if sla.unit is DurationUnit.HOURS else 1)
            due_day = (submitted + timedelta(minutes=minutes)).astimezone(tz).date()
            return due_day, (finished_day - due_day).days
        where = sites.get(site)
        calendar = calendars.get(where.calendar) if where else None
        if calendar is None or sla.value > _MAX_SLA_DAYS:
            return None
        try:
            day, counted = submitted.astimezone(tz).date(), 0
            while counted < sla.value:
                day += timedelta(days=1)
                counted += calendar.is_working_day(day)
            late = calendar.working_days_between(day, finished_day) if finished_day > day else 0
        except CalendarNotCovered:
            return None
        return day, late

    return due
