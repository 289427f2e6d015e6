"""Licensing use cases: (command, unit of work, ports) -> result. A dict routes commands to handlers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel
from mpp.contracts.events.identity import (
    CitizenVerificationFailedV1,
    CitizenVerificationRequestedV1,
    CitizenVerifiedV1,
    VerificationPurpose,
)
from mpp.contracts.events.licensing import (
    ApplicationApprovedV1,
    ApplicationRejectedV1,
    ApplicationResubmittedV1,
    ApplicationReturnedV1,
    ApplicationSlaBreachedV1,
    ApplicationSubmittedV1,
    ApplicationVerifiedV1,
    PermitIssuedV1,
    PermitRevokedV1,
)
from mpp.licensing.domain.model import (
    PERMIT_ISSUED,
    Application,
    Approved,
    LicensingError,
    PermitGranted,
    PermitRevoked,
    Rejected,
    Resubmitted,
    Returned,
    SlaBreached,
    Submitted,
    Verified,
    format_permit_number,
    new_tracking_code,
)
from mpp.licensing.persistence.repository import ApplicationRepository
from mpp.licensing.persistence.uow import LicensingUnitOfWork
from mpp.licensing.ports import Clock, ServiceCatalogue

PRODUCER = "mpp.licensing"


class UnknownServiceType(LicensingError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"unknown licensing service type {code!r}")


class ApplicationNotFound(LicensingError):
    pass


class NoWorkflow(LicensingError):
    """The service type has no workflow yet, so its applications cannot be taken."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"service type {code!r} has no workflow")


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
    officer: bool = True
    """Submitted by an officer at a counter (``actor``), not by the citizen online."""


@dataclass(frozen=True)
class ActOnApplication:
    application_id: str
    action: str
    roles: frozenset[str]
    actor: str
    correlation_id: str
    reason: str | None = None
    missing: tuple[str, ...] = ()


@dataclass
class Ports:
    clock: Clock
    catalogue: ServiceCatalogue
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
                        sla_due_on=_local_date(app, app.due_at),
                    )
                )
            case Verified(officer=officer, at=at):
                payloads.append(
                    ApplicationVerifiedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        officer_ref=officer,
                        verified_at=at,
                    )
                )
            case Returned(missing=missing, note=note, at=at):
                payloads.append(
                    ApplicationReturnedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        applicant_ref=app.applicant_ref,
                        missing=missing,
                        note=note,
                        returned_at=at,
                    )
                )
            case Resubmitted(at=at):
                payloads.append(
                    ApplicationResubmittedV1(
                        application_id=app.id, service_type=app.service_type, resubmitted_at=at
                    )
                )
            case Approved(officer=officer, at=at, working_days_elapsed=used):
                payloads.append(
                    ApplicationApprovedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        applicant_ref=app.applicant_ref,
                        officer_ref=officer,
                        approved_at=at,
                        submitted_at=app.submitted_at,
                        working_days_elapsed=used,
                    )
                )
            case Rejected(officer=officer, reason_code=code, reason=reason, at=at):
                payloads.append(
                    ApplicationRejectedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        applicant_ref=app.applicant_ref,
                        officer_ref=officer,
                        reason_code=code,
                        reason=reason,
                        rejected_at=at,
                    )
                )
            case PermitGranted(permit_number=number, at=at, within_sla=within):
                payloads.append(
                    PermitIssuedV1(
                        application_id=app.id,
                        permit_number=number,
                        service_type=app.service_type,
                        applicant_ref=app.applicant_ref,
                        issued_at=at,
                        submitted_at=app.submitted_at,
                        within_sla=within,
                    )
                )
            case PermitRevoked(permit_number=number, reason=reason, at=at):
                payloads.append(
                    PermitRevokedV1(
                        application_id=app.id,
                        permit_number=number,
                        service_type=app.service_type,
                        reason=reason,
                        revoked_at=at,
                    )
                )
            case SlaBreached(due_at=due, at=at):
                sla = app.workflow.total_sla
                payloads.append(
                    ApplicationSlaBreachedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        sla_value=sla.value,
                        sla_unit=sla.unit.value,
                        due_at=due,
                        breached_at=at,
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


def _local_date(app: Application, instant: datetime | None) -> date | None:
    return None if instant is None else instant.astimezone(app.clock.tz).date()


async def submit_application(cmd: SubmitApplication, uow: LicensingUnitOfWork, ports: Ports) -> Application:
    service = ports.catalogue.licensing_service(cmd.service_type)
    if service is None:
        raise UnknownServiceType(cmd.service_type)
    if service.workflow is None:
        raise NoWorkflow(cmd.service_type)
    workflow, clock = ports.catalogue.rules(service.workflow.code, cmd.site)
    request_id = str(uuid.uuid4())
    app = Application.submit(
        application_id=str(uuid.uuid4()),
        tracking_code=new_tracking_code(),
        service_type=service.code,
        agency=service.agency,
        site=cmd.site,
        channel=cmd.channel.value,
        submitted_at=ports.clock.now(),
        documents=len(cmd.documents),
        workflow=workflow,
        clock=clock,
        verification_request_id=request_id,
    )
    await uow.applications.add(
        app,
        applicant_name=cmd.applicant_name,
        documents=[d.__dict__ for d in cmd.documents],
    )
    # The NIK leaves licensing only in this request, on identity's personal-data topic; it is not stored.
    request = CitizenVerificationRequestedV1(
        request_id=request_id,
        nik=cmd.applicant_nik,
        requesting_agency=app.agency,
        requesting_service=PRODUCER,
        officer_ref=cmd.actor if cmd.officer else None,
        case_id=app.id,
        purpose=VerificationPurpose.PERMIT_APPLICATION,
        requested_at=app.submitted_at,
    )
    uow.publish(
        Envelope.wrap(
            request,
            producer=PRODUCER,
            agency=app.agency,
            site=app.site,
            subject=request_id,
            correlation_id=cmd.correlation_id,
            causation_id=None,
        )
    )
    return app


VerificationResult = CitizenVerifiedV1 | CitizenVerificationFailedV1


async def apply_verification_results(
    results: list[Envelope], applications: ApplicationRepository
) -> list[Envelope]:
    """Answers of the identity service to this service's verification requests: a verified NIK starts the
    application's workflow (ApplicationSubmitted), a refused one ends it. Answers to requests of other
    services, and answers already applied, change nothing. The contract events to publish."""
    published: list[Envelope] = []
    for env in results:
        result = env.payload
        if not isinstance(result, CitizenVerifiedV1 | CitizenVerificationFailedV1):
            continue
        app = await applications.find_by_verification_request(result.request_id)
        if app is None or app.id != result.case_id:
            continue
        if isinstance(result, CitizenVerifiedV1):
            changed = app.nik_verified(result.citizen_ref)
        else:
            changed = app.nik_rejected(result.reason)
        if not changed:
            continue
        await applications.save(app)
        published.extend(_contract_events(app, env.correlation_id or app.id, str(env.id)))
    return published


async def act_on_application(cmd: ActOnApplication, uow: LicensingUnitOfWork, ports: Ports) -> Application:
    app = await uow.applications.get(cmd.application_id)
    if app is None:
        raise ApplicationNotFound(cmd.application_id)
    now = ports.clock.now()
    action = app.check(cmd.action, cmd.roles, cmd.reason)
    permit_number = None
    if action.emits == PERMIT_ISSUED:
        service = ports.catalogue.licensing_service(app.service_type)
        short = service.short_code if service is not None else app.service_type.rsplit(".", 1)[-1]
        seq = await uow.applications.next_permit_sequence(agency=app.agency, site=app.site, year=now.year)
        permit_number = format_permit_number(
            sequence=seq, agency=app.agency, service_short=short, issued_at=now
        )
    app.act(
        cmd.action,
        cmd.roles,
        now,
        cmd.reason,
        cmd.missing,
        actor=cmd.actor,
        permit_number=permit_number,
    )
    await uow.applications.save(app)
    uow.publish(*_contract_events(app, cmd.correlation_id, cmd.application_id))
    return app


async def flag_sla_breaches(uow: LicensingUnitOfWork, clock: Clock, *, batch: int = 500) -> int:
    """Mark every open application past its due instant as breached and emit ApplicationSlaBreached,
    once each: marking and the outbox row share the transaction; the caller commits."""
    now = clock.now()
    flagged = 0
    for app in await uow.applications.overdue_for_update(now, batch):
        if app.breach(now):
            await uow.applications.save(app)
            uow.publish(*_contract_events(app, "sla-" + app.id, app.id))
            flagged += 1
    return flagged


Handler = Callable[[Any, LicensingUnitOfWork, Ports], Awaitable[Application]]

HANDLERS: dict[type, Handler] = {
    SubmitApplication: submit_application,
    ActOnApplication: act_on_application,
}
