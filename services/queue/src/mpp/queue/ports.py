"""What the queue use cases need from the outside world."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Protocol

from mpp.contracts.masterdata import Calendar


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


@dataclass(frozen=True)
class ServiceInfo:
    code: str
    agency: str
    prefix: str
    """Ticket prefix of the service type (A, B, ...)."""
    online_enabled: bool = True
    """Can be booked online (appointments)."""


@dataclass(frozen=True)
class CounterInfo:
    code: str
    site: str
    agency: str
    service_types: tuple[str, ...]


class Catalogue(Protocol):
    """The site's service catalogue, as the queue sees it."""

    def service(self, code: str) -> ServiceInfo | None:
        """A service type people can queue for, or None if unknown."""
        ...

    def counter(self, site: str, code: str) -> CounterInfo | None:
        """A counter of the catalogue at ``site``, or None."""
        ...

    def counters_at(self, site: str) -> tuple[CounterInfo, ...]:
        """The catalogue's counters at ``site``."""
        ...

    def site_zone(self, site: str) -> tzinfo:
        """The site's time zone: ticket numbers restart at its local midnight."""
        ...

    def site_manager(self, site: str) -> str:
        """The agency that runs the building (the agency of visit events)."""
        ...

    def site_calendar(self, site: str) -> Calendar:
        """The site's working-day calendar: opening hours, holidays and cuti bersama."""
        ...
