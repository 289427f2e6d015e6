"""The citizen record of the civil registry (Disdukcapil) and the rules a new record must follow.

A NIK and a KK number are checked for their structure only (the NIK has no check digit). The birth date
and sex encoded in the NIK are compared with the form: a mismatch is reported as a warning for the
officer, never a rejection, because the registry's own data is what counts. Every message here is in
Bahasa Indonesia and none of them repeats a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from mpp.contracts.events.common import Sex
from mpp.contracts.nik import PROVINCES, InvalidNik, ParsedKk, ParsedNik, parse_kk, parse_nik

MAX_NAME_LENGTH = 200
MAX_PLACE_LENGTH = 100
EARLIEST_BIRTH_DATE = date(1900, 1, 1)


class IdentityError(Exception):
    """Base of every identity domain error."""


class InvalidNumber(IdentityError):
    """A NIK or KK number whose structure is wrong. ``message`` is Indonesian and never holds the number."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.message = message


class InvalidCitizenData(IdentityError):
    """A field of the citizen record is not acceptable (``message`` in Bahasa Indonesia)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field)
        self.field = field
        self.message = message


class CitizenStatus(StrEnum):
    """Status of a record in the registry."""

    ACTIVE = "active"
    MOVED_OUT = "moved_out"
    """Moved to another kabupaten/kota (pindah keluar): still a living citizen, domicile no longer here."""
    DECEASED = "deceased"
    DUPLICATE = "duplicate"
    """A double registration (NIK ganda) that was deactivated."""


STATUS_CHANGES: dict[CitizenStatus, frozenset[CitizenStatus]] = {
    CitizenStatus.ACTIVE: frozenset(
        {CitizenStatus.MOVED_OUT, CitizenStatus.DECEASED, CitizenStatus.DUPLICATE}
    ),
    CitizenStatus.MOVED_OUT: frozenset(
        {CitizenStatus.ACTIVE, CitizenStatus.DECEASED, CitizenStatus.DUPLICATE}
    ),
    CitizenStatus.DECEASED: frozenset(),
    CitizenStatus.DUPLICATE: frozenset(),
}


class InvalidStatusChange(IdentityError):
    def __init__(self, current: CitizenStatus, target: CitizenStatus) -> None:
        super().__init__(f"status {current.value} cannot change to {target.value}")
        self.current = current
        self.target = target
        self.allowed = sorted(s.value for s in STATUS_CHANGES[current])


_NUMBER_PROBLEMS: dict[str, str] = {
    "length": "{what} harus terdiri dari 16 digit angka",
    "not_digits": "{what} hanya boleh berisi angka",
    "province_unknown": "Dua digit pertama {what} bukan kode provinsi yang dikenal",
    "regency_zero": "Kode kabupaten/kota pada {what} tidak boleh 00",
    "district_zero": "Kode kecamatan pada {what} tidak boleh 00",
    "serial_zero": "Nomor urut pada {what} tidak boleh 0000",
    "birth_date_invalid": "Digit 7-12 {what} bukan tanggal lahir yang valid (DDMMYY, perempuan +40 pada tanggal)",
    "issue_date_invalid": "Digit 7-12 {what} bukan tanggal penerbitan yang valid (DDMMYY)",
}


def number_problem(what: str, reason: str) -> str:
    """The Indonesian explanation of a structure error, naming the failing part and never the digits."""
    return _NUMBER_PROBLEMS.get(reason, "Struktur {what} tidak valid").format(what=what)


def check_nik(nik: str, *, today: date) -> ParsedNik:
    try:
        return parse_nik(nik, today=today)
    except InvalidNik as exc:
        raise InvalidNumber("nik", exc.reason, number_problem("NIK", exc.reason)) from None


def check_kk(number: str, *, today: date) -> ParsedKk:
    try:
        return parse_kk(number, today=today)
    except InvalidNik as exc:
        raise InvalidNumber("kk_number", exc.reason, number_problem("nomor KK", exc.reason)) from None


@dataclass(frozen=True, slots=True)
class ConsistencyWarning:
    """Something on the form disagrees with the NIK; the officer should check the source documents."""

    code: str
    field: str
    message: str


def consistency_warnings(parsed: ParsedNik, *, birth_date: date, sex: Sex) -> list[ConsistencyWarning]:
    """Compare the form's birth date and sex with those encoded in the NIK."""
    warnings: list[ConsistencyWarning] = []
    # The NIK holds a two-digit year: compare DD-MM-YY so a citizen born a century ago is not flagged.
    nik_date = (parsed.birth_date.day, parsed.birth_date.month, parsed.birth_date.year % 100)
    if (birth_date.day, birth_date.month, birth_date.year % 100) != nik_date:
        warnings.append(
            ConsistencyWarning(
                code="birth_date_mismatch",
                field="birth_date",
                message="Tanggal lahir tidak sesuai dengan tanggal lahir yang tercantum pada NIK",
            )
        )
    if sex is not parsed.sex:
        warnings.append(
            ConsistencyWarning(
                code="sex_mismatch",
                field="sex",
                message="Jenis kelamin tidak sesuai dengan NIK (pada NIK perempuan, tanggal lahir ditambah 40)",
            )
        )
    return warnings


def normalise_text(value: str) -> str:
    return " ".join(value.split())


@dataclass
class Citizen:
    """One person in the registry. ``citizen_ref`` is the pseudonym other services know them by."""

    citizen_ref: str
    nik: str
    kk_number: str
    full_name: str
    birth_date: date
    birth_place: str
    sex: Sex
    domicile_kabkota: str
    status: CitizenStatus
    site: str
    registered_at: datetime
    registered_by: str
    status_changed_at: datetime | None = None
    version: int = 0

    def change_status(self, target: CitizenStatus, *, at: datetime) -> bool:
        """Move to ``target``; returns False when the record already has that status."""
        if target is self.status:
            return False
        if target not in STATUS_CHANGES[self.status]:
            raise InvalidStatusChange(self.status, target)
        self.status = target
        self.status_changed_at = at
        return True


@dataclass(frozen=True, slots=True)
class Registration:
    citizen: Citizen
    warnings: list[ConsistencyWarning]


def register(
    *,
    citizen_ref: str,
    nik: str,
    kk_number: str,
    full_name: str,
    birth_date: date,
    birth_place: str,
    sex: Sex,
    domicile_kabkota: str,
    site: str,
    registered_at: datetime,
    registered_by: str,
    today: date,
) -> Registration:
    """A new active record, or :class:`InvalidNumber` / :class:`InvalidCitizenData`."""
    parsed = check_nik(nik, today=today)
    check_kk(kk_number, today=today)
    name = normalise_text(full_name)
    if not 2 <= len(name) <= MAX_NAME_LENGTH or not any(ch.isalpha() for ch in name):
        raise InvalidCitizenData("full_name", "Nama lengkap harus berisi 2-200 karakter dan memuat huruf")
    place = normalise_text(birth_place)
    if not 1 <= len(place) <= MAX_PLACE_LENGTH:
        raise InvalidCitizenData("birth_place", "Tempat lahir harus berisi 1-100 karakter")
    if birth_date > today:
        raise InvalidCitizenData("birth_date", "Tanggal lahir tidak boleh setelah hari ini")
    if birth_date < EARLIEST_BIRTH_DATE:
        raise InvalidCitizenData("birth_date", "Tanggal lahir tidak boleh sebelum tahun 1900")
    check_kabkota(domicile_kabkota)
    citizen = Citizen(
        citizen_ref=citizen_ref,
        nik=nik,
        kk_number=kk_number,
        full_name=name,
        birth_date=birth_date,
        birth_place=place,
        sex=sex,
        domicile_kabkota=domicile_kabkota,
        status=CitizenStatus.ACTIVE,
        site=site,
        registered_at=registered_at,
        registered_by=registered_by,
    )
    return Registration(citizen, consistency_warnings(parsed, birth_date=birth_date, sex=sex))


def check_kabkota(code: str) -> None:
    if not (len(code) == 4 and code.isascii() and code.isdigit()):
        raise InvalidCitizenData("domicile_kabkota", "Kode kabupaten/kota harus terdiri dari 4 digit angka")
    if code[:2] not in PROVINCES:
        raise InvalidCitizenData(
            "domicile_kabkota", "Dua digit pertama kode kabupaten/kota bukan kode provinsi yang dikenal"
        )
    if code[2:] == "00":
        raise InvalidCitizenData("domicile_kabkota", "Kode kabupaten/kota tidak boleh berakhiran 00")


def mask_number(number: str) -> str:
    """A NIK or KK number with only its kabupaten/kota prefix visible: ``3171************``."""
    return number[:4] + "*" * max(0, len(number) - 4)


def mask_name(name: str) -> str:
    """Each word reduced to its first character: ``Warga Uji 0001`` -> ``W**** U** 0***``."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())
