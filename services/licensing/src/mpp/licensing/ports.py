"""What the licensing use cases need from the outside world."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.workflow import Workflow
from mpp.licensing.persistence.uow import LicensingUnitOfWork


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class ServiceTypeInfo(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def agency(self) -> str: ...
    @property
    def short_code(self) -> str: ...
    @property
    def workflow(self) -> Workflow | None: ...


class ServiceCatalogue(Protocol):
    def licensing_service(self, code: str) -> ServiceTypeInfo | None:
        """The licensing service type with this code at this site, or None."""
        ...

    def rules(self, workflow: str, site: str) -> tuple[Workflow, WorkingClock]:
        """The workflow with this code and the working clock of ``site``."""
        ...


class RequestVault(Protocol):
    """Keeps the pending verification request (it holds the NIK) unreadable at rest."""

    def seal(self, application_id: str, request_json: bytes) -> bytes: ...

    def open(self, application_id: str, sealed: bytes) -> bytes: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> LicensingUnitOfWork: ...
