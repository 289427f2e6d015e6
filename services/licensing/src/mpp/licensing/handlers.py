"""Licensing use cases: (command, unit of work, ports) -> result. A dict routes commands to handlers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel
from mpp.contracts.events.licensing import ApplicationApprovedV1, ApplicationSubmittedV1, PermitIssuedV1
from mpp.licensing.domain.model import (
    Application,
    Approved,
    LicensingError,
    PermitGranted,
    Submitted,
    format_permit_number,
    new_tracking_code,
)
from mpp.licensing.persistence.uow import LicensingUnitOfWork
from mpp.licensing.ports import Clock, Pseudonymiser, ServiceCatalogue

PRODUCER = "mpp.licensing"


class UnknownServiceType(LicensingError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"unknown licensing service type {code!r}")


class ApplicationNotFound(LicensingError):
    pass


@dataclass(frozen=True)
class DocumentMeta:
    requirement: str
    file_name: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class SubmitApplication:
    service_type: str
    site: str
    channel: Channel
    applicant_nik: str
    applicant_name: str
    documents: tuple[DocumentMeta, ...]
    correlation_id: str
    actor: str


@dataclass(frozen=True)
class ApproveApplication:
    application_id: str
    officer: str
    correlation_id: str


@dataclass
class Ports:
    clock: Clock
    catalogue: ServiceCatalogue
    pseudonymiser: Pseudonymiser
    extra: dict[str, Any] = field(default_factory=dict)


def _contract_events(app: Application, correlation_id: str, causation_id: str | None) -> list[Envelope]:
    """Map the aggregate's internal domain events to contract events (the wire never follows refactors)."""
    payloads: list[EventPayload] = []
    for ev in app.events:
        match ev:
            case Submitted():
                payloads.append(
                    ApplicationSubmittedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        applicant_ref=app.applicant_ref,
                        channel=Channel(app.channel),
                        tracking_code=app.tracking_code,
                        submitted_at=app.submitted_at,
                        documents=app.documents,
                    )
                )
            case Approved(officer=officer, approved_at=at):
                payloads.append(
                    ApplicationApprovedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        applicant_ref=app.applicant_ref,
                        officer_ref=officer,
                        approved_at=at,
                        submitted_at=app.submitted_at,
                    )
                )
            case PermitGranted(permit_number=number, issued_at=at):
                payloads.append(
                    PermitIssuedV1(
                        application_id=app.id,
                        permit_number=number,
                        service_type=app.service_type,
                        applicant_ref=app.applicant_ref,
                        issued_at=at,
                        submitted_at=app.submitted_at,
                    )
                )
    app.events.clear()
    return [
        Envelope.wrap(
            p,
            producer=PRODUCER,
            agency=app.agency,
            site=app.site,
            subject=app.id,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        for p in payloads
    ]


async def submit_application(cmd: SubmitApplication, uow: LicensingUnitOfWork, ports: Ports) -> Application:
    service = ports.catalogue.licensing_service(cmd.service_type)
    if service is None:
        raise UnknownServiceType(cmd.service_type)
    app = Application.submit(
        application_id=str(uuid.uuid4()),
        tracking_code=new_tracking_code(),
        service_type=service.code,
        agency=service.agency,
        site=cmd.site,
        applicant_ref=ports.pseudonymiser.citizen_ref(cmd.applicant_nik),
        channel=cmd.channel.value,
        submitted_at=ports.clock.now(),
        documents=len(cmd.documents),
    )
    await uow.applications.add(
        app,
        applicant_name=cmd.applicant_name,
        documents=[d.__dict__ for d in cmd.documents],
    )
    uow.publish(*_contract_events(app, cmd.correlation_id, None))
    return app


async def approve_application(cmd: ApproveApplication, uow: LicensingUnitOfWork, ports: Ports) -> Application:
    app = await uow.applications.get(cmd.application_id)
    if app is None:
        raise ApplicationNotFound(cmd.application_id)
    service = ports.catalogue.licensing_service(app.service_type)
    short = service.short_code if service is not None else app.service_type.rsplit(".", 1)[-1]
    now = ports.clock.now()
    app._require("approve")
    seq = await uow.applications.next_permit_sequence(agency=app.agency, site=app.site, year=now.year)
    app.approve(
        officer=cmd.officer,
        at=now,
        permit_number=format_permit_number(
            sequence=seq, agency=app.agency, service_short=short, issued_at=now
        ),
    )
    await uow.applications.save(app)
    uow.publish(*_contract_events(app, cmd.correlation_id, cmd.application_id))
    return app


Handler = Callable[[Any, LicensingUnitOfWork, Ports], Awaitable[Application]]

HANDLERS: dict[type, Handler] = {
    SubmitApplication: submit_application,
    ApproveApplication: approve_application,
}
