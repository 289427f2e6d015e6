"""Master data shared by every service: sites, agencies, service types with their standar pelayanan,
counters, working-day calendars and workflows, gathered in one validated :class:`Catalogue`.

The published part of each *standar pelayanan* (PermenPANRB 15/2014) is structured here: requirements,
procedure, time limit (SLA), fee with its legal basis, product and complaint channels, together with
the number and date of the decree that enacted the standard. Texts meant for citizens are in
Bahasa Indonesia.

Working-time arithmetic on a calendar (due instants, elapsed SLA time) is in ``mpp.contracts.calendar``,
which also defines :class:`Sla`; workflows (states, actions, roles) are in ``mpp.contracts.workflow``.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Hashable, Iterable
from datetime import date, time, timedelta
from enum import IntEnum, StrEnum
from functools import cached_property
from importlib import resources
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mpp.contracts.calendar import CalendarNotCovered, Sla
from mpp.contracts.events.common import (
    Code,
    ComplaintChannel,
    KabKotaCode,
    ProvinceCode,
)
from mpp.contracts.nik import PROVINCES
from mpp.contracts.workflow import Workflow

__all__ = [
    "DEMO_CATALOGUE",
    "Agency",
    "AgencyType",
    "Calendar",
    "CalendarNotCovered",
    "Catalogue",
    "ComplaintContact",
    "Counter",
    "DayHours",
    "Fee",
    "FeeKind",
    "Holiday",
    "HolidayKind",
    "Requirement",
    "ServiceType",
    "ServiceTypeCode",
    "Site",
    "Sla",
    "SpecialHours",
    "Text",
    "TimeZoneName",
    "Weekday",
    "Workflow",
    "load_catalogue",
    "load_demo_catalogue",
]

ServiceTypeCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$", max_length=64),
    Field(description="Service type code: the agency code, a dot and a slug, e.g. dpmptsp.pbg."),
]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class _Master(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeZoneName(StrEnum):
    """The three Indonesian time zones as IANA names."""

    WIB = "Asia/Jakarta"
    WITA = "Asia/Makassar"
    WIT = "Asia/Jayapura"


class AgencyType(StrEnum):
    """Kind of participating agency, as counted in the ministry's MPP evaluation (M1)."""

    CENTRAL = "central"
    """A central ministry or its vertical office (Polri, Kemenag, Imigrasi, BPN, DJP, BPJS)."""
    LOCAL_OPD = "local_opd"
    """A kabupaten/kota government unit (OPD)."""
    PROVINCE = "province"
    """A provincial government unit (e.g. Samsat's revenue office)."""
    BUMN = "bumn"
    BUMD = "bumd"
    PRIVATE = "private"
    """Private companies, including private banks."""


class Site(_Master):
    """One Mal Pelayanan Publik."""

    code: Code
    name: Text
    kabkota: KabKotaCode
    kabkota_name: Text
    province: ProvinceCode
    province_name: Text
    timezone: TimeZoneName
    address: Text = Field(description="Street address of the building.")
    manager_agency: Code = Field(description="Agency that runs the building, usually the DPMPTSP.")
    calendar: Code = Field(description="Working-day calendar of the site.")
    opened_on: date | None = None

    @model_validator(mode="after")
    def _codes_agree(self) -> Self:
        if self.province not in PROVINCES:
            raise ValueError(f"site {self.code}: unknown province code {self.province}")
        if not self.kabkota.startswith(self.province):
            raise ValueError(
                f"site {self.code}: kabupaten/kota {self.kabkota} is not in province {self.province}"
            )
        return self


class Agency(_Master):
    """A participating agency (tenant) with counters at the MPP."""

    code: Code
    name: Text
    short_name: Text
    type: AgencyType
    parent: str = Field(default="", description="Parent institution, e.g. Pemerintah Kota or a ministry.")


class FeeKind(StrEnum):
    FREE = "free"
    FIXED = "fixed"
    VARIABLE = "variable"
    """Computed per case (e.g. vehicle tax, building retribution) by a published formula."""


class Fee(_Master):
    """Biaya/tarif with its legal basis."""

    kind: FeeKind
    amount_rp: int | None = Field(default=None, ge=0, description="The fee in rupiah for a fixed fee.")
    description: Text = Field(description="Explanation for citizens in Bahasa Indonesia.")
    legal_basis: Text = Field(description="Regulation that sets the fee or makes the service free.")

    @model_validator(mode="after")
    def _amount_matches_kind(self) -> Self:
        if self.kind is FeeKind.FIXED and not self.amount_rp:
            raise ValueError("a fixed fee needs a positive amount_rp")
        if self.kind is not FeeKind.FIXED and self.amount_rp:
            raise ValueError(f"a {self.kind.value} fee has no amount_rp")
        return self


class Requirement(_Master):
    """Persyaratan: one required document or condition."""

    code: Code = Field(description="Stable code, referred to when an application is returned.")
    description: Text
    optional: bool = Field(
        default=False, description="Needed only in some cases (the description says when)."
    )


class ComplaintContact(_Master):
    """Penanganan pengaduan: one way to complain about the service."""

    channel: ComplaintChannel
    contact: Text = Field(description="Where: an address, number, account or desk.")


class ServiceType(_Master):
    """A service type (jenis layanan) with the published part of its standar pelayanan."""

    code: ServiceTypeCode
    agency: Code
    name: Text
    description: str = ""
    licensing: bool = Field(description="A licensing service (perizinan) rather than non-licensing.")
    online_enabled: bool = Field(description="Can be applied for or booked online.")
    ticket_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,3}$")]
    requirements: tuple[Requirement, ...] = Field(min_length=1)
    procedure: tuple[Text, ...] = Field(min_length=1, description="Prosedur: the steps in order.")
    sla: Sla
    fee: Fee
    product: Text = Field(description="Produk: the output the citizen receives.")
    complaint_channels: tuple[ComplaintContact, ...] = Field(min_length=1)
    decree_number: Text = Field(description="Number of the decree that enacted the standard.")
    decree_date: date
    workflow: Code | None = Field(
        default=None,
        description="Workflow the service's applications follow (see mpp.contracts.workflow); none for a "
        "service finished at the counter.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.code.startswith(self.agency + "."):
            raise ValueError(f"service type {self.code} must start with its agency code {self.agency}.")
        _no_duplicates(f"service type {self.code} requirements", [r.code for r in self.requirements])
        return self


class Counter(_Master):
    """A counter (loket) of one agency at one site."""

    code: Code
    site: Code
    agency: Code
    name: Text = Field(description="Label shown on displays, e.g. Loket 3.")
    service_types: tuple[ServiceTypeCode, ...] = Field(min_length=1)


class Weekday(IntEnum):
    """ISO weekday numbers."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


class DayHours(_Master):
    """Opening hours on one weekday."""

    weekday: Weekday
    opens: time
    closes: time
    break_start: time | None = None
    break_end: time | None = None

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        if self.opens >= self.closes:
            raise ValueError(f"weekday {self.weekday}: opens must be before closes")
        if (self.break_start is None) != (self.break_end is None):
            raise ValueError(f"weekday {self.weekday}: a break needs a start and an end")
        if (
            self.break_start is not None
            and self.break_end is not None
            and not self.opens < self.break_start < self.break_end < self.closes
        ):
            raise ValueError(f"weekday {self.weekday}: the break must lie within opening hours")
        return self


class HolidayKind(StrEnum):
    NATIONAL_HOLIDAY = "national_holiday"
    """Hari libur nasional."""
    CUTI_BERSAMA = "cuti_bersama"
    """Collective leave for civil servants; MPP services are closed."""
    LOCAL_HOLIDAY = "local_holiday"


class Holiday(_Master):
    day: date
    name: Text
    kind: HolidayKind


class SpecialHours(_Master):
    """Hours that replace the weekly hours for a period (e.g. Ramadan); unlisted weekdays are closed."""

    name: Text
    start: date
    end: date
    hours: tuple[DayHours, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"special hours {self.name}: end is before start")
        _no_duplicates(f"special hours {self.name} weekdays", [h.weekday for h in self.hours])
        return self


class Calendar(_Master):
    """A working-day calendar: weekly opening hours, holidays and special hours.

    Working days (for SLAs in working days) are the ``working_weekdays`` that are neither national
    holidays nor cuti bersama; a site may still open on other days (``weekly_hours``).
    """

    code: Code
    name: Text
    working_weekdays: tuple[Weekday, ...] = (
        Weekday.MONDAY,
        Weekday.TUESDAY,
        Weekday.WEDNESDAY,
        Weekday.THURSDAY,
        Weekday.FRIDAY,
    )
    weekly_hours: tuple[DayHours, ...] = Field(min_length=1)
    holiday_years: tuple[int, ...] = Field(min_length=1, description="Years whose holidays are all listed.")
    holidays: tuple[Holiday, ...] = ()
    special_hours: tuple[SpecialHours, ...] = ()
    source: Text = Field(
        description="Where the holiday dates come from (e.g. the SKB of the three ministers)."
    )
    note: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _no_duplicates(f"calendar {self.code} weekly hours", [h.weekday for h in self.weekly_hours])
        _no_duplicates(f"calendar {self.code} holidays", [h.day for h in self.holidays])
        stray = sorted({h.day.year for h in self.holidays} - set(self.holiday_years))
        if stray:
            raise ValueError(f"calendar {self.code}: holidays in years not listed in holiday_years: {stray}")
        return self

    @cached_property
    def _holidays(self) -> dict[date, Holiday]:
        return {h.day: h for h in self.holidays}

    def holiday(self, day: date) -> Holiday | None:
        self._check_covered(day)
        return self._holidays.get(day)

    def is_working_day(self, day: date) -> bool:
        """A working day for SLA purposes."""
        self._check_covered(day)
        return day.isoweekday() in self.working_weekdays and day not in self._holidays

    def opening_hours(self, day: date) -> DayHours | None:
        """The site's hours on ``day``, or none when closed."""
        if self.holiday(day) is not None:
            return None
        for period in self.special_hours:
            if period.start <= day <= period.end:
                return next((h for h in period.hours if h.weekday == day.isoweekday()), None)
        return next((h for h in self.weekly_hours if h.weekday == day.isoweekday()), None)

    def add_working_days(self, start: date, days: int) -> date:
        """The date ``days`` working days after ``start`` (the day of submission does not count)."""
        if days < 0:
            raise ValueError("days must not be negative")
        current = start
        while days:
            current += timedelta(days=1)
            if self.is_working_day(current):
                days -= 1
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end``."""
        count, current = 0, start
        while current < end:
            current += timedelta(days=1)
            count += self.is_working_day(current)
        return count

    def _check_covered(self, day: date) -> None:
        if day.year not in self.holiday_years:
            raise CalendarNotCovered(f"calendar {self.code} has no holidays for {day.year}")


class Catalogue(_Master):
    """All master data, with every reference checked."""

    version: Text = Field(description="Version of this catalogue (e.g. a date and a sequence).")
    sites: tuple[Site, ...] = Field(min_length=1)
    agencies: tuple[Agency, ...] = Field(min_length=1)
    service_types: tuple[ServiceType, ...] = Field(min_length=1)
    counters: tuple[Counter, ...] = ()
    calendars: tuple[Calendar, ...] = Field(min_length=1)
    workflows: tuple[Workflow, ...] = ()

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        for name, codes in (
            ("site", [s.code for s in self.sites]),
            ("agency", [a.code for a in self.agencies]),
            ("service type", [s.code for s in self.service_types]),
            ("counter", [c.code for c in self.counters]),
            ("calendar", [c.code for c in self.calendars]),
            ("workflow", [w.code for w in self.workflows]),
        ):
            _no_duplicates(f"{name} codes", codes)
        problems = (
            self._dangling_site_references()
            + self._dangling_service_references()
            + self._workflow_references()
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _dangling_site_references(self) -> list[str]:
        agencies = {a.code for a in self.agencies}
        calendars = {c.code for c in self.calendars}
        problems: list[str] = []
        for site in self.sites:
            if site.manager_agency not in agencies:
                problems.append(f"site {site.code}: unknown manager agency {site.manager_agency}")
            if site.calendar not in calendars:
                problems.append(f"site {site.code}: unknown calendar {site.calendar}")
        return problems

    def _dangling_service_references(self) -> list[str]:
        agencies = {a.code for a in self.agencies}
        sites = {s.code for s in self.sites}
        service_agency = {s.code: s.agency for s in self.service_types}
        problems = [
            f"service type {s.code}: unknown agency {s.agency}"
            for s in self.service_types
            if s.agency not in agencies
        ]
        for counter in self.counters:
            if counter.site not in sites:
                problems.append(f"counter {counter.code}: unknown site {counter.site}")
            if counter.agency not in agencies:
                problems.append(f"counter {counter.code}: unknown agency {counter.agency}")
            for code in counter.service_types:
                if code not in service_agency:
                    problems.append(f"counter {counter.code}: unknown service type {code}")
                elif service_agency[code] != counter.agency:
                    problems.append(
                        f"counter {counter.code}: service type {code} belongs to {service_agency[code]}, "
                        f"not {counter.agency}"
                    )
        return problems

    def _workflow_references(self) -> list[str]:
        workflows = {w.code: w for w in self.workflows}
        problems: list[str] = []
        for service in self.service_types:
            if service.workflow is None:
                continue
            workflow = workflows.get(service.workflow)
            if workflow is None:
                problems.append(f"service type {service.code}: unknown workflow {service.workflow}")
            elif workflow.total_sla != service.sla:
                problems.append(
                    f"service type {service.code}: its standard promises {service.sla.describe()} but "
                    f"workflow {workflow.code} takes {workflow.total_sla.describe()}"
                )
        return problems

    @cached_property
    def _index(self) -> dict[str, dict[str, BaseModel]]:
        return {
            "site": {s.code: s for s in self.sites},
            "agency": {a.code: a for a in self.agencies},
            "service type": {s.code: s for s in self.service_types},
            "counter": {c.code: c for c in self.counters},
            "calendar": {c.code: c for c in self.calendars},
            "workflow": {w.code: w for w in self.workflows},
        }

    def _get(self, kind: str, code: str) -> BaseModel:
        try:
            return self._index[kind][code]
        except KeyError:
            raise KeyError(f"unknown {kind} {code!r}") from None

    def site(self, code: str) -> Site:
        found = self._get("site", code)
        assert isinstance(found, Site)
        return found

    def agency(self, code: str) -> Agency:
        found = self._get("agency", code)
        assert isinstance(found, Agency)
        return found

    def service_type(self, code: str) -> ServiceType:
        found = self._get("service type", code)
        assert isinstance(found, ServiceType)
        return found

    def counter(self, code: str) -> Counter:
        found = self._get("counter", code)
        assert isinstance(found, Counter)
        return found

    def calendar(self, code: str) -> Calendar:
        found = self._get("calendar", code)
        assert isinstance(found, Calendar)
        return found

    def workflow(self, code: str) -> Workflow:
        found = self._get("workflow", code)
        assert isinstance(found, Workflow)
        return found

    def service_workflow(self, service_type: str) -> Workflow | None:
        """The workflow of a service type, or none for a service finished at the counter."""
        code = self.service_type(service_type).workflow
        return None if code is None else self.workflow(code)

    def services_of(self, agency: str) -> tuple[ServiceType, ...]:
        """The service types of one agency."""
        self.agency(agency)
        return tuple(s for s in self.service_types if s.agency == agency)

    def counters_at(self, site: str) -> tuple[Counter, ...]:
        self.site(site)
        return tuple(c for c in self.counters if c.site == site)

    def site_calendar(self, site: str) -> Calendar:
        return self.calendar(self.site(site).calendar)


def _no_duplicates(what: str, keys: Iterable[Hashable]) -> None:
    duplicates = sorted(str(k) for k, n in Tally(keys).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")


DEMO_CATALOGUE = "demo_catalogue.json"


def load_catalogue(text: str | bytes) -> Catalogue:
    """Parse and validate a catalogue from its JSON text."""
    return Catalogue.model_validate_json(text)


def load_demo_catalogue() -> Catalogue:
    """The demo catalogue shipped with this package (a fictional MPP, Kota Sukamaju)."""
    text = resources.files("mpp.contracts").joinpath("data", DEMO_CATALOGUE).read_text(encoding="utf-8")
    return load_catalogue(text)
