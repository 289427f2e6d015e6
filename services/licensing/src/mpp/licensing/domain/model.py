"""The permit application aggregate and its state machine."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

ROMAN_MONTHS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
TRACKING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class LicensingError(Exception):
    """Base of every licensing domain error."""


class InvalidTransition(LicensingError):
    def __init__(self, status: ApplicationStatus, action: str) -> None:
        self.status = status
        self.action = action
        self.allowed = sorted(ALLOWED_ACTIONS[status])
        super().__init__(f"action {action!r} is not allowed in state {status.value}")


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    PERMIT_ISSUED = "permit_issued"


ALLOWED_ACTIONS: dict[ApplicationStatus, frozenset[str]] = {
    ApplicationStatus.SUBMITTED: frozenset({"approve"}),
    ApplicationStatus.PERMIT_ISSUED: frozenset(),
}


@dataclass(frozen=True)
class Submitted:
    application_id: str


@dataclass(frozen=True)
class Approved:
    application_id: str
    officer: str
    approved_at: datetime


@dataclass(frozen=True)
class PermitGranted:
    application_id: str
    permit_number: str
    issued_at: datetime


DomainEvent = Submitted | Approved | PermitGranted


@dataclass
class Application:
    id: str
    tracking_code: str
    service_type: str
    agency: str
    site: str
    applicant_ref: str
    channel: str
    submitted_at: datetime
    documents: int
    status: ApplicationStatus = ApplicationStatus.SUBMITTED
    approved_at: datetime | None = None
    approved_by: str | None = None
    permit_number: str | None = None
    version: int = 0
    events: list[DomainEvent] = field(default_factory=list, compare=False)

    @classmethod
    def submit(
        cls,
        *,
        application_id: str,
        tracking_code: str,
        service_type: str,
        agency: str,
        site: str,
        applicant_ref: str,
        channel: str,
        submitted_at: datetime,
        documents: int,
    ) -> Application:
        app = cls(
            id=application_id,
            tracking_code=tracking_code,
            service_type=service_type,
            agency=agency,
            site=site,
            applicant_ref=applicant_ref,
            channel=channel,
            submitted_at=submitted_at,
            documents=documents,
        )
        app.events.append(Submitted(application_id))
        return app

    def approve(self, *, officer: str, at: datetime, permit_number: str) -> None:
        """Approve and issue the permit in one step (the minimal workflow)."""
        self._require("approve")
        self.status = ApplicationStatus.PERMIT_ISSUED
        self.approved_at = at
        self.approved_by = officer
        self.permit_number = permit_number
        self.events.append(Approved(self.id, officer, at))
        self.events.append(PermitGranted(self.id, permit_number, at))

    def allowed_actions(self) -> list[str]:
        return sorted(ALLOWED_ACTIONS[self.status])

    def _require(self, action: str) -> None:
        if action not in ALLOWED_ACTIONS[self.status]:
            raise InvalidTransition(self.status, action)


def new_tracking_code() -> str:
    """A short code a citizen can type: 10 characters without look-alikes (0/O, 1/I)."""
    return "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(10))


def format_permit_number(*, sequence: int, agency: str, service_short: str, issued_at: datetime) -> str:
    """Permit number in the regional decree style, e.g. ``0042/DPMPTSP/PBG/XI/2026``."""
    return (
        f"{sequence:04d}/{agency.upper()}/{service_short.upper()}/"
        f"{ROMAN_MONTHS[issued_at.month - 1]}/{issued_at.year}"
    )


def mask_name(name: str) -> str:
    """A holder's name as shown publicly: the first letter of each word, e.g. ``B*** S******``."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split() if word)
