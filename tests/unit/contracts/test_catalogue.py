"""The master-data catalogue: the demo catalogue loads, references resolve, calendars count working days."""

import json
import re
from datetime import date, time
from importlib import resources
from typing import Any

import pytest
from pydantic import ValidationError

from mpp.contracts.events.common import DurationUnit
from mpp.contracts.masterdata import (
    AgencyType,
    Calendar,
    CalendarNotCovered,
    Catalogue,
    Fee,
    FeeKind,
    HolidayKind,
    Sla,
    TimeZoneName,
    load_demo_catalogue,
)

pytestmark = pytest.mark.unit

SITE = "mpp-kota-sukamaju"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_demo_catalogue()


@pytest.fixture(scope="module")
def calendar(catalogue: Catalogue) -> Calendar:
    return catalogue.site_calendar(SITE)


@pytest.fixture
def document() -> dict[str, Any]:
    """The demo catalogue as plain JSON data, to be broken by a test."""
    text = (
        resources.files("mpp.contracts").joinpath("data", "demo_catalogue.json").read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


class TestDemoCatalogue:
    def test_has_at_least_six_agencies(self, catalogue: Catalogue) -> None:
        assert len(catalogue.agencies) >= 6

    def test_has_at_least_twenty_service_types(self, catalogue: Catalogue) -> None:
        assert len(catalogue.service_types) >= 20

    def test_finds_a_service_type_by_code(self, catalogue: Catalogue) -> None:
        pbg = catalogue.service_type("dpmptsp.pbg")

        assert (pbg.agency, pbg.licensing, pbg.sla) == (
            "dpmptsp",
            True,
            Sla(value=28, unit=DurationUnit.WORKING_DAYS),
        )

    def test_finds_an_agency_and_a_site_by_code(self, catalogue: Catalogue) -> None:
        assert catalogue.agency("dpmptsp").type is AgencyType.LOCAL_OPD
        assert catalogue.site(SITE).timezone is TimeZoneName.WIB

    def test_an_unknown_code_raises_key_error(self, catalogue: Catalogue) -> None:
        with pytest.raises(KeyError, match=re.escape("unknown service type 'dpmptsp.nothing'")):
            catalogue.service_type("dpmptsp.nothing")

    @pytest.mark.parametrize(
        "code", ["dpmptsp.izin-usaha-toko-swalayan", "dpmptsp.pbg", "dpmptsp.izin-penelitian", "dpmptsp.nib"]
    )
    def test_lists_the_licensing_services(self, catalogue: Catalogue, code: str) -> None:
        assert catalogue.service_type(code).licensing

    def test_has_a_same_day_non_licensing_letter(self, catalogue: Catalogue) -> None:
        letter = catalogue.service_type("dpmptsp.legalisasi")

        assert (letter.licensing, letter.sla.unit) == (False, DurationUnit.MINUTES)

    def test_every_agency_has_a_counter(self, catalogue: Catalogue) -> None:
        assert {a.code for a in catalogue.agencies} == {c.agency for c in catalogue.counters_at(SITE)}

    def test_services_of_lists_one_agencys_services(self, catalogue: Catalogue) -> None:
        assert {s.code for s in catalogue.services_of("polres")} == {"polres.skck", "polres.sim-perpanjangan"}

    def test_sla_reads_in_bahasa_indonesia(self, catalogue: Catalogue) -> None:
        assert catalogue.service_type("dpmptsp.pbg").sla.describe() == "28 hari kerja"


class TestCatalogueValidation:
    def test_a_counter_of_an_unknown_agency_is_rejected(self, document: dict[str, Any]) -> None:
        document["counters"][0]["agency"] = "imigrasi"

        with pytest.raises(ValidationError, match="loket-01: unknown agency imigrasi"):
            Catalogue.model_validate(document)

    def test_a_counter_with_an_unknown_service_type_is_rejected(self, document: dict[str, Any]) -> None:
        document["counters"][0]["service_types"] = ["disdukcapil.paspor"]

        with pytest.raises(ValidationError, match=re.escape("unknown service type disdukcapil.paspor")):
            Catalogue.model_validate(document)

    def test_a_counter_serving_another_agencys_service_is_rejected(self, document: dict[str, Any]) -> None:
        document["counters"][0]["service_types"] = ["polres.skck"]

        with pytest.raises(ValidationError, match="belongs to polres, not disdukcapil"):
            Catalogue.model_validate(document)

    def test_a_service_type_of_an_unknown_agency_is_rejected(self, document: dict[str, Any]) -> None:
        document["agencies"] = [a for a in document["agencies"] if a["code"] != "disnaker"]
        document["counters"] = [c for c in document["counters"] if c["agency"] != "disnaker"]

        with pytest.raises(
            ValidationError, match=re.escape("disnaker.kartu-pencari-kerja: unknown agency disnaker")
        ):
            Catalogue.model_validate(document)

    def test_a_site_with_an_unknown_calendar_is_rejected(self, document: dict[str, Any]) -> None:
        document["sites"][0]["calendar"] = "kalender-lain"

        with pytest.raises(ValidationError, match="unknown calendar kalender-lain"):
            Catalogue.model_validate(document)

    def test_a_duplicate_code_is_rejected(self, document: dict[str, Any]) -> None:
        document["agencies"].append(document["agencies"][0])

        with pytest.raises(ValidationError, match="duplicate agency codes: disdukcapil"):
            Catalogue.model_validate(document)

    def test_a_service_code_outside_its_agency_is_rejected(self, document: dict[str, Any]) -> None:
        document["service_types"][0]["code"] = "dpmptsp.ktp-el-rekam"

        with pytest.raises(ValidationError, match="must start with its agency code"):
            Catalogue.model_validate(document)

    def test_a_site_in_an_unknown_province_is_rejected(self, document: dict[str, Any]) -> None:
        document["sites"][0] |= {"province": "99", "kabkota": "9998"}

        with pytest.raises(ValidationError, match="unknown province code 99"):
            Catalogue.model_validate(document)

    def test_unknown_keys_are_rejected(self, document: dict[str, Any]) -> None:
        document["agencies"][0]["nama"] = "typo"

        with pytest.raises(ValidationError, match="nama"):
            Catalogue.model_validate(document)

    def test_a_fixed_fee_needs_an_amount(self) -> None:
        with pytest.raises(ValidationError, match="positive amount_rp"):
            Fee(kind=FeeKind.FIXED, description="Tarif tetap.", legal_basis="PP 76/2020")


class TestWorkingDayCalendar:
    def test_lists_17_national_holidays_and_8_days_of_cuti_bersama_in_2026(self, calendar: Calendar) -> None:
        kinds = [h.kind for h in calendar.holidays if h.day.year == 2026]

        assert (kinds.count(HolidayKind.NATIONAL_HOLIDAY), kinds.count(HolidayKind.CUTI_BERSAMA)) == (17, 8)

    def test_cuti_bersama_is_not_a_working_day(self, calendar: Calendar) -> None:
        assert not calendar.is_working_day(date(2026, 3, 20))

    def test_an_ordinary_weekday_is_a_working_day(self, calendar: Calendar) -> None:
        assert calendar.is_working_day(date(2026, 3, 25))

    def test_saturday_is_open_but_not_a_working_day(self, calendar: Calendar) -> None:
        saturday = date(2026, 4, 11)

        assert not calendar.is_working_day(saturday)
        assert calendar.opening_hours(saturday) is not None

    def test_ramadan_hours_replace_the_weekly_hours(self, calendar: Calendar) -> None:
        hours = calendar.opening_hours(date(2026, 3, 2))

        assert hours is not None
        assert hours.closes == time(14, 0)

    def test_closed_on_a_holiday(self, calendar: Calendar) -> None:
        assert calendar.opening_hours(date(2026, 8, 17)) is None

    def test_working_days_skip_the_lebaran_holidays(self, calendar: Calendar) -> None:
        assert calendar.add_working_days(date(2026, 3, 16), 5) == date(2026, 3, 30)

    def test_pbg_due_date_is_28_working_days_later(self, calendar: Calendar) -> None:
        assert calendar.add_working_days(date(2026, 3, 16), 28) == date(2026, 5, 4)

    def test_counts_working_days_between_two_dates(self, calendar: Calendar) -> None:
        assert calendar.working_days_between(date(2026, 3, 16), date(2026, 3, 30)) == 5

    def test_a_year_without_holidays_is_refused(self, calendar: Calendar) -> None:
        with pytest.raises(CalendarNotCovered, match="2027"):
            calendar.is_working_day(date(2027, 1, 4))

    def test_names_its_source_and_asks_for_a_check(self, calendar: Calendar) -> None:
        assert "SKB" in calendar.source
        assert "Check" in calendar.note
