"""The citizen record: NIK and KK structure, consistency warnings, masking and status changes."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pytest

from mpp.contracts.events.common import Sex
from mpp.contracts.nik import generate_test_nik, parse_nik
from mpp.identity.domain.citizen import (
    CitizenStatus,
    InvalidCitizenData,
    InvalidNumber,
    InvalidStatusChange,
    Registration,
    consistency_warnings,
    mask_name,
    mask_number,
    register,
)

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 3)
NOW = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
BORN = date(1985, 7, 5)


def _nik(*, birth_date: date = BORN, sex: Sex = Sex.FEMALE, serial: int = 3) -> str:
    return generate_test_nik(
        random.Random(1),
        province_code="32",
        regency=98,
        district=1,
        birth_date=birth_date,
        sex=sex,
        serial=serial,
        today=TODAY,
    )


KK = generate_test_nik(
    random.Random(2),
    province_code="32",
    regency=98,
    district=1,
    birth_date=date(2015, 3, 9),
    sex=Sex.MALE,
    serial=77,
    today=TODAY,
)


def _register(**overrides: Any) -> Registration:
    fields: dict[str, Any] = {
        "citizen_ref": "c_0123456789abcdef0123456789abcdef",
        "nik": _nik(),
        "kk_number": KK,
        "full_name": "Warga Uji 0001",
        "birth_date": BORN,
        "birth_place": "Kota Sukamaju",
        "sex": Sex.FEMALE,
        "domicile_kabkota": "3298",
        "site": "mpp-kota-sukamaju",
        "registered_at": NOW,
        "registered_by": "officer-1",
        "today": TODAY,
    }
    return register(**(fields | overrides))


class TestRegister:
    def test_a_consistent_record_is_active_without_warnings(self) -> None:
        registration = _register()

        assert registration.warnings == []
        assert registration.citizen.status is CitizenStatus.ACTIVE

    def test_normalises_spaces_in_names_and_places(self) -> None:
        citizen = _register(full_name="  Warga   Uji\t0001 ", birth_place=" Kota  Sukamaju ").citizen

        assert citizen.full_name == "Warga Uji 0001"
        assert citizen.birth_place == "Kota Sukamaju"

    @pytest.mark.parametrize(
        ("nik", "reason", "message"),
        [
            ("329801450785000", "length", "NIK harus terdiri dari 16 digit angka"),
            ("32980145078500x3", "not_digits", "NIK hanya boleh berisi angka"),
            ("9998014507850003", "province_unknown", "Dua digit pertama NIK bukan kode provinsi"),
            ("3200014507850003", "regency_zero", "Kode kabupaten/kota pada NIK tidak boleh 00"),
            ("3298004507850003", "district_zero", "Kode kecamatan pada NIK tidak boleh 00"),
            ("3298014507850000", "serial_zero", "Nomor urut pada NIK tidak boleh 0000"),
            ("3298019913850003", "birth_date_invalid", "bukan tanggal lahir yang valid"),
        ],
    )
    def test_a_nik_of_the_wrong_structure_is_refused_without_echoing_it(
        self, nik: str, reason: str, message: str
    ) -> None:
        with pytest.raises(InvalidNumber) as caught:
            _register(nik=nik)

        assert caught.value.field == "nik"
        assert caught.value.reason == reason
        assert message in caught.value.message
        assert nik not in caught.value.message
        assert nik[6:12] not in caught.value.message

    def test_a_kk_with_an_impossible_issue_date_is_refused_without_echoing_its_digits(self) -> None:
        kk = "3298013213150077"

        with pytest.raises(InvalidNumber) as caught:
            _register(kk_number=kk)

        assert caught.value.field == "kk_number"
        assert caught.value.reason == "issue_date_invalid"
        assert "nomor KK" in caught.value.message
        assert kk[6:12] not in caught.value.message

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"full_name": " "}, "full_name"),
            ({"full_name": "1234"}, "full_name"),
            ({"full_name": "A" * 201}, "full_name"),
            ({"birth_place": "   "}, "birth_place"),
            ({"birth_date": date(2026, 11, 4)}, "birth_date"),
            ({"birth_date": date(1899, 12, 31)}, "birth_date"),
            ({"domicile_kabkota": "329"}, "domicile_kabkota"),
            ({"domicile_kabkota": "9998"}, "domicile_kabkota"),
            ({"domicile_kabkota": "3200"}, "domicile_kabkota"),
        ],
    )
    def test_unacceptable_fields_are_refused_naming_the_field(
        self, overrides: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(InvalidCitizenData) as caught:
            _register(**overrides)

        assert caught.value.field == field


class TestConsistencyWarnings:
    def test_a_sex_other_than_the_nik_says_is_a_warning(self) -> None:
        registration = _register(nik=_nik(sex=Sex.FEMALE), sex=Sex.MALE)

        assert [w.code for w in registration.warnings] == ["sex_mismatch"]
        assert registration.warnings[0].field == "sex"
        assert "Jenis kelamin" in registration.warnings[0].message

    def test_a_birth_date_other_than_the_nik_says_is_a_warning(self) -> None:
        registration = _register(birth_date=date(1985, 7, 6))

        assert [w.code for w in registration.warnings] == ["birth_date_mismatch"]
        assert "Tanggal lahir" in registration.warnings[0].message

    def test_both_mismatches_give_two_warnings_and_the_record_is_still_registered(self) -> None:
        registration = _register(nik=_nik(sex=Sex.MALE), birth_date=date(1986, 7, 5), sex=Sex.FEMALE)

        assert {w.code for w in registration.warnings} == {"birth_date_mismatch", "sex_mismatch"}
        assert registration.citizen.birth_date == date(1986, 7, 5)

    def test_a_centenarian_is_not_flagged_for_the_two_digit_year(self) -> None:
        born = date(1925, 2, 14)
        nik = "3298015402250001"  # 14 + 40 = 54: a woman born 14-02-(19)25, read as 2025 by the parser

        registration = _register(nik=nik, birth_date=born, sex=Sex.FEMALE)

        assert registration.warnings == []

    def test_the_warnings_never_contain_the_nik(self) -> None:
        nik = _nik(sex=Sex.MALE)
        registration = _register(nik=nik, birth_date=date(1990, 1, 1), sex=Sex.FEMALE)

        assert all(nik not in w.message and nik[6:12] not in w.message for w in registration.warnings)

    def test_consistency_is_judged_on_the_parsed_nik(self) -> None:
        parsed = parse_nik(_nik(), today=TODAY)

        assert consistency_warnings(parsed, birth_date=BORN, sex=Sex.FEMALE) == []


class TestMasking:
    def test_a_number_keeps_only_its_kabupaten_kota_prefix(self) -> None:
        assert mask_number("3171014507850003") == "3171************"

    def test_a_name_keeps_the_first_letter_of_each_word(self) -> None:
        assert mask_name("Warga Uji 0001") == "W**** U** 0***"


class TestStatusChanges:
    def test_an_active_citizen_can_be_recorded_as_deceased(self) -> None:
        citizen = _register().citizen

        assert citizen.change_status(CitizenStatus.DECEASED, at=NOW) is True
        assert citizen.status is CitizenStatus.DECEASED
        assert citizen.status_changed_at == NOW

    def test_the_same_status_again_changes_nothing(self) -> None:
        citizen = _register().citizen

        assert citizen.change_status(CitizenStatus.ACTIVE, at=NOW) is False
        assert citizen.status_changed_at is None

    def test_a_deceased_citizen_cannot_become_active_again(self) -> None:
        citizen = _register().citizen
        citizen.change_status(CitizenStatus.DECEASED, at=NOW)

        with pytest.raises(InvalidStatusChange) as caught:
            citizen.change_status(CitizenStatus.ACTIVE, at=NOW)

        assert caught.value.current is CitizenStatus.DECEASED
        assert caught.value.allowed == []

    def test_a_citizen_who_moved_out_can_come_back(self) -> None:
        citizen = _register().citizen
        citizen.change_status(CitizenStatus.MOVED_OUT, at=NOW)

        citizen.change_status(CitizenStatus.ACTIVE, at=NOW)

        assert citizen.status is CitizenStatus.ACTIVE
