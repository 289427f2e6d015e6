"""Whether an application finished within its published service standard, from master data.

Used when the finishing event does not say so itself. Working days are counted on the site's
calendar from the local day of submission (not counted) to the local day of finishing (counted).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from mpp.contracts.calendar import CalendarNotCovered
from mpp.contracts.events.common import DurationUnit
from mpp.contracts.masterdata import Catalogue
from mpp.reporting.domain.facts import SlaCheck


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
