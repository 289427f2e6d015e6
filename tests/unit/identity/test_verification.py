"""The verification decision: age band, elderly priority and every reason for a refusal."""

from __future__ import annotations

from datetime import date

import pytest

from mpp.contracts.events.common import AgeBand
from mpp.contracts.events.identity import VerificationFailure
from mpp.identity.domain.citizen import CitizenStatus
from mpp.identity.domain.verification import Refused, RegistryEntry, Verified, age_on, decide

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 3)
NIK = "3298014507660003"  # a woman born 05-07-1966
REF = "c_0123456789abcdef0123456789abcdef"


def _entry(
    *, born: date = date(1966, 7, 5), status: CitizenStatus = CitizenStatus.ACTIVE, kabkota: str = "3298"
) -> RegistryEntry:
    return RegistryEntry(citizen_ref=REF, birth_date=born, status=status, domicile_kabkota=kabkota)


class TestAge:
    @pytest.mark.parametrize(
        ("day", "age"),
        [(date(2026, 7, 4), 59), (date(2026, 7, 5), 60), (date(2026, 7, 6), 60), (date(2027, 7, 4), 60)],
    )
    def test_counts_whole_years_changing_on_the_birthday(self, day: date, age: int) -> None:
        assert age_on(date(1966, 7, 5), day) == age

    def test_a_leap_day_birthday_counts_from_1_march_in_other_years(self) -> None:
        born = date(1964, 2, 29)

        assert age_on(born, date(2024, 2, 28)) == 59
        assert age_on(born, date(2024, 2, 29)) == 60
        assert age_on(born, date(2023, 2, 28)) == 58
        assert age_on(born, date(2023, 3, 1)) == 59


class TestElderlyPriority:
    def test_the_day_before_the_60th_birthday_is_not_elderly(self) -> None:
        decision = decide(nik=NIK, entry=_entry(born=date(1966, 11, 4)), today=TODAY)

        assert isinstance(decision, Verified)
        assert decision.elderly_priority is False
        assert decision.age_band is AgeBand.FROM_46_TO_59

    def test_the_60th_birthday_itself_is_elderly(self) -> None:
        decision = decide(nik=NIK, entry=_entry(born=date(1966, 11, 3)), today=TODAY)

        assert isinstance(decision, Verified)
        assert decision.elderly_priority is True
        assert decision.age_band is AgeBand.SIXTY_PLUS

    @pytest.mark.parametrize(
        ("born", "band"),
        [
            (date(2010, 11, 4), AgeBand.UNDER_17),
            (date(2009, 11, 3), AgeBand.FROM_17_TO_25),
            (date(1995, 1, 1), AgeBand.FROM_26_TO_35),
            (date(1985, 1, 1), AgeBand.FROM_36_TO_45),
            (date(1975, 1, 1), AgeBand.FROM_46_TO_59),
            (date(1940, 1, 1), AgeBand.SIXTY_PLUS),
        ],
    )
    def test_the_age_band_follows_the_registry_birth_date(self, born: date, band: AgeBand) -> None:
        decision = decide(nik=NIK, entry=_entry(born=born), today=TODAY)

        assert isinstance(decision, Verified)
        assert decision.age_band is band


class TestDecide:
    def test_an_active_citizen_is_verified_with_reference_and_domicile(self) -> None:
        decision = decide(nik=NIK, entry=_entry(), today=TODAY)

        assert decision == Verified(
            citizen_ref=REF, age_band=AgeBand.SIXTY_PLUS, elderly_priority=True, domicile_kabkota="3298"
        )

    def test_a_citizen_who_moved_out_is_verified_without_a_domicile(self) -> None:
        decision = decide(nik=NIK, entry=_entry(status=CitizenStatus.MOVED_OUT), today=TODAY)

        assert isinstance(decision, Verified)
        assert decision.domicile_kabkota is None

    def test_an_unknown_nik_is_not_found(self) -> None:
        decision = decide(nik=NIK, entry=None, today=TODAY)

        assert isinstance(decision, Refused)
        assert decision.reason is VerificationFailure.NOT_FOUND
        assert decision.citizen_ref is None
        assert decision.retryable is False

    def test_a_deceased_citizen_is_inactive(self) -> None:
        decision = decide(nik=NIK, entry=_entry(status=CitizenStatus.DECEASED), today=TODAY)

        assert isinstance(decision, Refused)
        assert decision.reason is VerificationFailure.INACTIVE
        assert "meninggal dunia" in decision.message
        assert decision.citizen_ref == REF

    def test_a_duplicate_record_is_inactive(self) -> None:
        decision = decide(nik=NIK, entry=_entry(status=CitizenStatus.DUPLICATE), today=TODAY)

        assert isinstance(decision, Refused)
        assert decision.reason is VerificationFailure.INACTIVE
        assert "ganda" in decision.message

    @pytest.mark.parametrize("nik", ["9998014507660003", "3298019913660003", "3298014507660000"])
    def test_a_nik_of_the_wrong_structure_is_refused_as_such_without_echoing_it(self, nik: str) -> None:
        decision = decide(nik=nik, entry=None, today=TODAY)

        assert isinstance(decision, Refused)
        assert decision.reason is VerificationFailure.INVALID_STRUCTURE
        assert decision.message.startswith("Struktur NIK tidak valid")
        assert nik not in decision.message
        assert nik[6:12] not in decision.message

    def test_a_wrong_structure_wins_over_a_registry_entry(self) -> None:
        decision = decide(nik="3298019913660003", entry=_entry(), today=TODAY)

        assert isinstance(decision, Refused)
        assert decision.reason is VerificationFailure.INVALID_STRUCTURE

    def test_an_agency_that_may_not_ask_is_refused_before_any_lookup(self) -> None:
        decision = decide(nik=NIK, entry=_entry(), today=TODAY, agency_known=False)

        assert isinstance(decision, Refused)
        assert decision.reason is VerificationFailure.NOT_AUTHORISED
        assert decision.citizen_ref is None
