"""Answering another agency's question "is this NIK a living citizen, and who are they to you?".

The answer gives the asker what it may know (purpose limitation): a pseudonymous reference, an age band,
whether the citizen is entitled to elderly priority and the kabupaten/kota of domicile. Every lookup is
written to the access log, like X-Road's message log, so the citizen can see who looked them up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from mpp.contracts.events.common import AgeBand
from mpp.contracts.events.identity import VerificationFailure
from mpp.contracts.nik import InvalidNik, parse_nik
from mpp.identity.domain.citizen import CitizenStatus, number_problem

ELDERLY_AGE = 60
"""Lansia: 60 and over are served first."""


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """What the verifier needs from a citizen record (no name, no NIK)."""

    citizen_ref: str
    birth_date: date
    status: CitizenStatus
    domicile_kabkota: str


@dataclass(frozen=True, slots=True)
class Verified:
    citizen_ref: str
    age_band: AgeBand
    elderly_priority: bool
    domicile_kabkota: str | None


@dataclass(frozen=True, slots=True)
class Refused:
    reason: VerificationFailure
    message: str
    citizen_ref: str | None = None
    """Set when the record exists but may not be confirmed (e.g. deceased), for the access log."""
    retryable: bool = False


Decision = Verified | Refused


def age_on(birth_date: date, day: date) -> int:
    """Age in whole years on ``day`` (a 29 February birthday counts from 1 March in other years)."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def decide(*, nik: str, entry: RegistryEntry | None, today: date, agency_known: bool = True) -> Decision:
    """The answer to one verification request, given the registry entry of the NIK (if any)."""
    if not agency_known:
        return Refused(
            VerificationFailure.NOT_AUTHORISED,
            "Instansi peminta tidak terdaftar sebagai pengguna layanan verifikasi NIK",
        )
    try:
        parse_nik(nik, today=today)
    except InvalidNik as exc:
        return Refused(
            VerificationFailure.INVALID_STRUCTURE,
            "Struktur NIK tidak valid: " + number_problem("NIK", exc.reason),
        )
    if entry is None:
        return Refused(VerificationFailure.NOT_FOUND, "NIK tidak terdaftar dalam database kependudukan")
    if entry.status is CitizenStatus.DECEASED:
        return Refused(
            VerificationFailure.INACTIVE,
            "NIK tercatat atas nama penduduk yang telah meninggal dunia",
            citizen_ref=entry.citizen_ref,
        )
    if entry.status is CitizenStatus.DUPLICATE:
        return Refused(
            VerificationFailure.INACTIVE,
            "NIK tercatat sebagai data ganda dan sudah dinonaktifkan",
            citizen_ref=entry.citizen_ref,
        )
    age = age_on(entry.birth_date, today)
    return Verified(
        citizen_ref=entry.citizen_ref,
        age_band=AgeBand.of(age),
        elderly_priority=age >= ELDERLY_AGE,
        # A citizen who moved out is still verified, but this registry no longer knows their domicile.
        domicile_kabkota=entry.domicile_kabkota if entry.status is CitizenStatus.ACTIVE else None,
    )


class AccessChannel(StrEnum):
    EVENT = "event"
    """A verification request from another agency's service."""
    HTTP = "http"
    """A Disdukcapil officer reading the record."""


class AccessOutcome(StrEnum):
    VERIFIED = "verified"
    REFUSED = "refused"
    READ = "read"


REGISTRY_READ_PURPOSE = "registry_record_read"


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One line of the access log. It names the citizen by reference (or, when no record was found, by a
    keyed hash of the number asked about), never by NIK."""

    request_id: str
    channel: AccessChannel
    requesting_agency: str
    requesting_service: str
    officer_ref: str | None
    case_id: str | None
    purpose: str
    site: str
    citizen_ref: str | None
    subject_hash: str | None
    outcome: AccessOutcome
    reason_code: str | None
    answered_at: datetime
    requested_at: datetime | None = None
    request_event_id: str | None = None
    answer_event_id: str | None = None
    correlation_id: str | None = None
