"""Structure checks of NIK and KK numbers, and synthetic test NIKs."""

import contextlib
import random
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from mpp.contracts.events.common import Sex
from mpp.contracts.nik import (
    PROVINCES,
    InvalidNik,
    ValidNik,
    generate_test_nik,
    is_valid_nik,
    parse_kk,
    parse_nik,
)

pytestmark = pytest.mark.unit

TODAY = date(2026, 3, 2)
MAN = "3273010506900001"
WOMAN = "3273014506900001"
FULLWIDTH_DIGITS = MAN.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})


class Applicant(BaseModel):
    nik: ValidNik


def _reason(number: str) -> str:
    with pytest.raises(InvalidNik) as caught:
        parse_nik(number, today=TODAY)
    return caught.value.reason


class TestParseNik:
    def test_a_valid_nik_gives_its_parts(self) -> None:
        parsed = parse_nik(MAN, today=TODAY)

        assert (parsed.province_code, parsed.regency_code, parsed.district_code, parsed.serial) == (
            "32",
            "3273",
            "327301",
            "0001",
        )
        assert (parsed.birth_date, parsed.sex, parsed.province_name) == (
            date(1990, 6, 5),
            Sex.MALE,
            "Jawa Barat",
        )

    def test_a_woman_has_forty_added_to_the_day(self) -> None:
        parsed = parse_nik(WOMAN, today=TODAY)

        assert (parsed.birth_date, parsed.sex) == (date(1990, 6, 5), Sex.FEMALE)

    def test_a_recent_two_digit_year_is_this_century(self) -> None:
        assert parse_nik("3273011508050003", today=TODAY).birth_date == date(2005, 8, 15)

    def test_a_two_digit_year_after_today_is_last_century(self) -> None:
        assert parse_nik("3273011508300003", today=TODAY).birth_date == date(1930, 8, 15)

    def test_age_is_counted_in_whole_years(self) -> None:
        assert parse_nik(MAN, today=TODAY).age_on(TODAY) == 35

    @pytest.mark.parametrize(
        ("number", "reason"),
        [
            ("9973010506900001", "province_unknown"),
            ("2073010506900001", "province_unknown"),
            ("3200010506900001", "regency_zero"),
            ("3273000506900001", "district_zero"),
            ("3273013206900001", "birth_date_invalid"),
            ("3273013002900001", "birth_date_invalid"),
            ("3273017206900001", "birth_date_invalid"),
            ("3273010513900001", "birth_date_invalid"),
            ("3273010006900001", "birth_date_invalid"),
            ("3273010506900000", "serial_zero"),
            ("327301050690001", "length"),
            ("32730105069000011", "length"),
            ("", "length"),
            ("32730105069O0001", "not_digits"),
            (FULLWIDTH_DIGITS, "not_digits"),
        ],
    )
    def test_a_bad_structure_is_rejected_with_its_reason(self, number: str, reason: str) -> None:
        assert _reason(number) == reason

    def test_the_error_explains_without_repeating_the_nik(self) -> None:
        with pytest.raises(InvalidNik) as caught:
            parse_nik("9973010506900001", today=TODAY)

        assert "province" in str(caught.value)
        assert "9973010506900001" not in str(caught.value)
        assert "provinsi" in caught.value.message_id

    def test_an_invalid_nik_is_a_value_error(self) -> None:
        assert issubclass(InvalidNik, ValueError)

    def test_is_valid_nik_answers_without_raising(self) -> None:
        assert (is_valid_nik(MAN, today=TODAY), is_valid_nik("1234", today=TODAY)) == (True, False)


class TestParseKk:
    def test_the_middle_digits_are_the_issue_date(self) -> None:
        assert parse_kk("3273011503150002", today=TODAY).issued_on == date(2015, 3, 15)

    def test_there_is_no_forty_added_to_the_day(self) -> None:
        with pytest.raises(InvalidNik, match="issue date"):
            parse_kk("3273015503150002", today=TODAY)

    def test_an_unknown_province_is_rejected(self) -> None:
        with pytest.raises(InvalidNik, match="province"):
            parse_kk("9973011503150002", today=TODAY)


class TestKkProperties:
    @given(
        province=st.sampled_from(sorted(PROVINCES)),
        regency=st.integers(1, 99),
        district=st.integers(1, 99),
        issued=st.dates(min_value=date(1930, 1, 1), max_value=TODAY),
        serial=st.integers(1, 9999),
    )
    def test_the_parts_of_a_well_formed_kk_come_back(
        self, province: str, regency: int, district: int, issued: date, serial: int
    ) -> None:
        number = f"{province}{regency:02d}{district:02d}{issued:%d%m%y}{serial:04d}"
        parsed = parse_kk(number, today=TODAY)
        assert (parsed.district_code, parsed.issued_on.month, parsed.issued_on.day, parsed.serial) == (
            number[:6],
            issued.month,
            issued.day,
            f"{serial:04d}",
        )
        # A two-digit year is read in the most recent century that does not put the date in the future.
        assert parsed.issued_on.year % 100 == issued.year % 100
        assert parsed.issued_on <= TODAY
        with contextlib.suppress(ValueError):  # 29 February has no twin a century later
            assert parsed.issued_on.replace(year=parsed.issued_on.year + 100) > TODAY

    @given(number=st.text(alphabet="0123456789", min_size=16, max_size=16))
    def test_any_sixteen_digits_parse_or_raise_with_a_reason(self, number: str) -> None:
        try:
            parsed = parse_kk(number, today=TODAY)
        except InvalidNik as refused:
            assert refused.reason in {
                "province_unknown",
                "regency_zero",
                "district_zero",
                "serial_zero",
                "issue_date_invalid",
            }
        else:
            assert parsed.regency_code == number[:4]
            assert parsed.issued_on <= TODAY

    @given(number=st.text(min_size=0, max_size=24))
    def test_anything_but_sixteen_ascii_digits_is_refused(self, number: str) -> None:
        if len(number) == 16 and number.isascii() and number.isdigit():
            return
        with pytest.raises(InvalidNik) as refused:
            parse_kk(number, today=TODAY)
        assert refused.value.reason in {"length", "not_digits"}


class TestValidNikType:
    def test_accepts_a_valid_nik(self) -> None:
        assert Applicant(nik=MAN).nik == MAN

    def test_strips_surrounding_spaces(self) -> None:
        assert Applicant(nik=f" {MAN} ").nik == MAN

    def test_rejects_with_a_clear_message(self) -> None:
        with pytest.raises(ValidationError, match="bukan kode provinsi"):
            Applicant(nik="9973010506900001")

    def test_is_marked_personal_in_the_json_schema(self) -> None:
        field = Applicant.model_json_schema()["properties"]["nik"]

        assert (field["pattern"], field["x-personal-data"]) == ("^[0-9]{16}$", True)


class TestGenerateTestNik:
    @given(seed=st.integers())
    def test_any_seed_gives_a_valid_nik(self, seed: int) -> None:
        assert is_valid_nik(generate_test_nik(random.Random(seed), today=TODAY), today=TODAY)

    @given(
        province=st.sampled_from(sorted(PROVINCES)),
        regency=st.integers(1, 99),
        district=st.integers(1, 99),
        birth_date=st.dates(min_value=date(1926, 3, 3), max_value=TODAY),
        sex=st.sampled_from(Sex),
        serial=st.integers(1, 9999),
    )
    def test_the_parts_asked_for_come_back_from_parsing(
        self, province: str, regency: int, district: int, birth_date: date, sex: Sex, serial: int
    ) -> None:
        nik = generate_test_nik(
            random.Random(0),
            province_code=province,
            regency=regency,
            district=district,
            birth_date=birth_date,
            sex=sex,
            serial=serial,
            today=TODAY,
        )
        parsed = parse_nik(nik, today=TODAY)

        assert (
            parsed.province_code,
            parsed.regency_code,
            parsed.birth_date,
            parsed.sex,
            int(parsed.serial),
        ) == (
            province,
            f"{province}{regency:02d}",
            birth_date,
            sex,
            serial,
        )

    @given(number=st.text(alphabet="0123456789", min_size=16, max_size=16))
    def test_any_sixteen_digits_parse_or_raise_invalid_nik(self, number: str) -> None:
        with contextlib.suppress(InvalidNik):
            assert parse_nik(number, today=TODAY).district_code == number[:6]

    def test_the_same_seed_gives_the_same_nik(self) -> None:
        assert generate_test_nik(random.Random(7), today=TODAY) == generate_test_nik(
            random.Random(7), today=TODAY
        )

    def test_a_birth_date_a_century_ago_is_refused(self) -> None:
        with pytest.raises(ValueError, match="century"):
            generate_test_nik(random.Random(0), birth_date=date(1925, 1, 1), today=TODAY)

    def test_an_unknown_province_is_refused(self) -> None:
        with pytest.raises(ValueError, match="province"):
            generate_test_nik(random.Random(0), province_code="99", today=TODAY)

    def test_there_are_38_provinces(self) -> None:
        assert len(PROVINCES) == 38
