"""What the identity use cases need from the outside world."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Protocol

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.envelope import Envelope
from mpp.contracts.workflow import Workflow
from mpp.identity.domain.verification import AccessRecord, RegistryEntry
from mpp.identity.persistence.uow import IdentityUnitOfWork


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SiteCalendar(Protocol):
    def today(self, site: str, at: datetime) -> date:
        """The local date at ``site`` at the instant ``at`` (ages change at local midnight)."""
        ...


class Pseudonymiser(Protocol):
    def citizen_ref(self, nik: str) -> str:
        """The pseudonymous citizen reference for a NIK (a keyed hash), ``c_`` + 32 hex digits."""
        ...

    def lookup_hash(self, nik: str) -> str:
        """The keyed hash that names a NIK in the registry's indexes and the access log."""
        ...


class AgencyDirectory(Protocol):
    def knows(self, agency: str) -> bool:
        """Whether ``agency`` is a participating agency that may ask for verifications."""
        ...


class DocumentService(Protocol):
    """A civil registry service type of the catalogue that takes document applications."""

    @property
    def code(self) -> str: ...
    @property
    def agency(self) -> str: ...
    @property
    def workflow(self) -> Workflow | None: ...
    @property
    def requirements(self) -> frozenset[str]:
        """Codes of every requirement (persyaratan) of the service type."""
        ...

    @property
    def mandatory_requirements(self) -> frozenset[str]:
        """Codes of the requirements that are not optional."""
        ...


class DocumentCatalogue(Protocol):
    def document_service(self, code: str) -> DocumentService | None:
        """The document service type with this code, or None when it takes no applications here."""
        ...

    def rules(self, workflow: str, site: str) -> tuple[Workflow, WorkingClock]:
        """The workflow with this code and the working clock of ``site``."""
        ...

    def site_kabkota(self, site: str) -> str:
        """The 4-digit kabupaten/kota code of ``site`` (document numbers start with it)."""
        ...


class RegistryLookup(Protocol):
    async def registry_entries(self, niks: Iterable[str]) -> dict[str, RegistryEntry]:
        """The registry entries of the NIKs that exist, keyed by NIK, in one query."""
        ...


class AccessLog(Protocol):
    async def answered(self, requests: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (requesting agency, request id) pairs already have an answer."""
        ...

    async def add_many(self, records: Sequence[AccessRecord]) -> None:
        """Append lines to the access log."""
        ...


class VerificationScope(Protocol):
    """The repositories and outbox the verification use case writes to, in one transaction."""

    @property
    def citizens(self) -> RegistryLookup: ...

    @property
    def access_log(self) -> AccessLog: ...

    def publish(self, *envelopes: Envelope) -> None:
        """Stage events for the outbox of the same transaction."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> IdentityUnitOfWork: ...
