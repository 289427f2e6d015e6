"""Structure checks for NIK and KK numbers, and synthetic test NIKs.

A NIK (Nomor Induk Kependudukan) has 16 digits: province (2), kabupaten/kota (2), kecamatan (2),
birth date DDMMYY (women add 40 to the day) and a serial (4, from 0001). It has no check digit, so a
structurally valid NIK may still not exist: only the civil registry can say that. A KK (Kartu Keluarga)
number has the same shape, but its middle six digits are the date the KK was issued (no +40).

Everything here is pure. Never log, print or put a NIK into an error that leaves the process: the
messages below name the failing part, not the number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from mpp.contracts.envelope import PERSONAL_DATA_KEY
from mpp.contracts.events.common import Sex

PROVINCES: dict[str, str] = {
    "11": "Aceh",
    "12": "Sumatera Utara",
    "13": "Sumatera Barat",
    "14": "Riau",
    "15": "Jambi",
    "16": "Sumatera Selatan",
    "17": "Bengkulu",
    "18": "Lampung",
    "19": "Kepulauan Bangka Belitung",
    "21": "Kepulauan Riau",
    "31": "DKI Jakarta",
    "32": "Jawa Barat",
    "33": "Jawa Tengah",
    "34": "DI Yogyakarta",
    "35": "Jawa Timur",
    "36": "Banten",
    "51": "Bali",
    "52": "Nusa Tenggara Barat",
    "53": "Nusa Tenggara Timur",
    "61": "Kalimantan Barat",
    "62": "Kalimantan Tengah",
    "63": "Kalimantan Selatan",
    "64": "Kalimantan Timur",
    "65": "Kalimantan Utara",
    "71": "Sulawesi Utara",
    "72": "Sulawesi Tengah",
    "73": "Sulawesi Selatan",
    "74": "Sulawesi Tenggara",
    "75": "Gorontalo",
    "76": "Sulawesi Barat",
    "81": "Maluku",
    "82": "Maluku Utara",
    "91": "Papua",
    "92": "Papua Barat",
    "93": "Papua Selatan",
    "94": "Papua Tengah",
    "95": "Papua Pegunungan",
    "96": "Papua Barat Daya",
}
"""The 38 provinces by their Kemendagri code (the first two digits of a NIK)."""

NIK_LENGTH = 16
FEMALE_DAY_OFFSET = 40


class InvalidNik(ValueError):
    """A NIK or KK number whose structure is wrong.

    ``reason`` is a stable machine code; ``str(exc)`` explains it in English; ``message_id`` is the
    same explanation in Bahasa Indonesia for officers and citizens. Neither contains the number.
    """

    def __init__(self, reason: str, message: str, message_id: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message_id = message_id


@dataclass(frozen=True, slots=True)
class ParsedNik:
    """The parts of a structurally valid NIK."""

    province_code: str
    regency_code: str
    """Four digits: province + kabupaten/kota, e.g. ``3273``."""
    district_code: str
    """Six digits: province + kabupaten/kota + kecamatan, e.g. ``327301``."""
    birth_date: date
    sex: Sex
    serial: str

    @property
    def province_name(self) -> str:
        return PROVINCES[self.province_code]

    def age_on(self, day: date) -> int:
        """Age in whole years on ``day``."""
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years


@dataclass(frozen=True, slots=True)
class ParsedKk:
    """The parts of a structurally valid KK number."""

    province_code: str
    regency_code: str
    district_code: str
    issued_on: date
    serial: str


def _check_shape(number: str, what: str) -> None:
    if len(number) != NIK_LENGTH:
        raise InvalidNik(
            "length",
            f"{what} must have {NIK_LENGTH} digits, got {len(number)} characters",
            f"{what} harus terdiri dari {NIK_LENGTH} digit angka, yang diisi {len(number)} karakter",
        )
    if not (number.isascii() and number.isdigit()):
        raise InvalidNik(
            "not_digits",
            f"{what} must contain digits only",
            f"{what} hanya boleh berisi angka",
        )
    if number[:2] not in PROVINCES:
        raise InvalidNik(
            "province_unknown",
            f"{what} starts with {number[:2]}, which is not a province code",
            f"Dua digit pertama {what} ({number[:2]}) bukan kode provinsi yang dikenal",
        )
    if number[2:4] == "00":
        raise InvalidNik(
            "regency_zero",
            f"{what} has kabupaten/kota code 00",
            f"Kode kabupaten/kota pada {what} tidak boleh 00",
        )
    if number[4:6] == "00":
        raise InvalidNik(
            "district_zero",
            f"{what} has kecamatan code 00",
            f"Kode kecamatan pada {what} tidak boleh 00",
        )
    if number[12:] == "0000":
        raise InvalidNik(
            "serial_zero",
            f"{what} has serial number 0000 (serials start at 0001)",
            f"Nomor urut pada {what} tidak boleh 0000",
        )


def _date_from_digits(day: int, month: int, yy: int, today: date) -> date | None:
    """The most recent real date DD-MM-YY that is not after ``today``, if any."""
    for century in (2000, 1900):
        try:
            candidate = date(century + yy, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    return None


def parse_nik(nik: str, *, today: date | None = None) -> ParsedNik:
    """Check the structure of a NIK and return its parts; raises :class:`InvalidNik`.

    The two-digit birth year is read as the most recent year that puts the birth date on or before
    ``today`` (default: the current date).
    """
    _check_shape(nik, "NIK")
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = Sex.MALE
    if day > FEMALE_DAY_OFFSET:
        sex, day = Sex.FEMALE, day - FEMALE_DAY_OFFSET
    born = _date_from_digits(day, month, yy, today or date.today())
    if born is None:
        raise InvalidNik(
            "birth_date_invalid",
            "NIK digits 7-12 are not a real birth date DDMMYY (women add 40 to the day)",
            "Digit 7-12 NIK bukan tanggal lahir yang valid (DDMMYY, perempuan +40 pada tanggal)",
        )
    return ParsedNik(
        province_code=nik[:2],
        regency_code=nik[:4],
        district_code=nik[:6],
        birth_date=born,
        sex=sex,
        serial=nik[12:],
    )


def parse_kk(number: str, *, today: date | None = None) -> ParsedKk:
    """Check the structure of a KK number and return its parts; raises :class:`InvalidNik`."""
    _check_shape(number, "KK")
    issued = _date_from_digits(int(number[6:8]), int(number[8:10]), int(number[10:12]), today or date.today())
    if issued is None:
        raise InvalidNik(
            "issue_date_invalid",
            f"KK digits 7-12 ({number[6:12]}) are not a real issue date DDMMYY",
            f"Digit 7-12 nomor KK ({number[6:12]}) bukan tanggal penerbitan yang valid (DDMMYY)",
        )
    return ParsedKk(
        province_code=number[:2],
        regency_code=number[:4],
        district_code=number[:6],
        issued_on=issued,
        serial=number[12:],
    )


def is_valid_nik(nik: str, *, today: date | None = None) -> bool:
    try:
        parse_nik(nik, today=today)
    except InvalidNik:
        return False
    return True


def generate_test_nik(
    rng: random.Random,
    *,
    province_code: str | None = None,
    regency: int | None = None,
    district: int | None = None,
    birth_date: date | None = None,
    sex: Sex | None = None,
    serial: int | None = None,
    today: date | None = None,
) -> str:
    """A synthetic, structurally valid NIK for tests and demos. Never use real NIKs.

    Parts not given are drawn from ``rng`` (births between 1940 and ``today``), so a seeded
    ``random.Random`` gives the same NIK every time.
    """
    today = today or date.today()
    province = province_code if province_code is not None else rng.choice(sorted(PROVINCES))
    if province not in PROVINCES:
        raise ValueError(f"unknown province code {province!r}")
    regency = regency if regency is not None else rng.randint(1, 79)
    district = district if district is not None else rng.randint(1, 40)
    if not (1 <= regency <= 99 and 1 <= district <= 99):
        raise ValueError("regency and district must be between 1 and 99")
    if birth_date is None:
        earliest = date(1940, 1, 1)
        birth_date = earliest + timedelta(days=rng.randint(0, (today - earliest).days))
    yy = birth_date.year % 100
    if _date_from_digits(birth_date.day, birth_date.month, yy, today) != birth_date:
        raise ValueError("birth_date must be on or before today and less than a century ago")
    sex = sex if sex is not None else rng.choice((Sex.MALE, Sex.FEMALE))
    serial = serial if serial is not None else rng.randint(1, 9999)
    if not 1 <= serial <= 9999:
        raise ValueError("serial must be between 1 and 9999")
    day = birth_date.day + (FEMALE_DAY_OFFSET if sex is Sex.FEMALE else 0)
    return f"{province}{regency:02d}{district:02d}{day:02d}{birth_date.month:02d}{yy:02d}{serial:04d}"


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _validate_nik(value: str) -> str:
    try:
        parse_nik(value)
    except InvalidNik as exc:
        # Request models answer officers and citizens: the Indonesian text, never the number itself.
        raise ValueError(exc.message_id) from None
    return value


ValidNik = Annotated[
    str,
    BeforeValidator(_strip),
    AfterValidator(_validate_nik),
    Field(
        description="A structurally valid 16-digit NIK. Personal data.",
        json_schema_extra={"pattern": "^[0-9]{16}$", PERSONAL_DATA_KEY: True},
    ),
]
"""A NIK in a request model: surrounding spaces are removed and the structure is checked, with an
error that names the failing part (length, province, kabupaten/kota, birth date or serial)."""


__all__ = [
    "PROVINCES",
    "InvalidNik",
    "ParsedKk",
    "ParsedNik",
    "ValidNik",
    "generate_test_nik",
    "is_valid_nik",
    "parse_kk",
    "parse_nik",
]
