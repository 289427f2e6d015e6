"""Licensing use cases: (command, unit of work, ports) -> result. A dict routes commands to handlers."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel
from mpp.contracts.events.identity import (
    VERIFIER_AGENCY,
    VERIFIER_PRODUCER,
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
    REQUEST_LOST_REASON,
    RETRY_NIK_VERIFICATION,
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
    VerificationStep,
    Verified,
    format_permit_number,
    new_tracking_code,
)
from mpp.licensing.domain.verification import RetryPolicy
from mpp.licensing.persistence.protection import UnreadableRequest
from mpp.licensing.persistence.repository import ApplicationRepository
from mpp.licensing.persistence.uow import LicensingUnitOfWork
from mpp.licensing.ports import Clock, RequestVault, ServiceCatalogue

PRODUCER = "mpp.licensing"
log = logging.getLogger(__name__)


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
    in_scope: Callable[[str, str], bool] | None = None
    """Whether the caller may see an application of (agency, site); one out of scope is not found."""


@dataclass
class Ports:
    clock: Clock
    catalogue: ServiceCatalogue
    vault: RequestVault
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    extra: dict[str, Any] = field(default_factory=dict)


class VerificationRequestLost(LicensingError):
    """The pending verification request of an application waiting for its NIK cannot be read back."""


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
        policy=ports.policy,
    )
    # The NIK leaves licensing only in this request, on identity's personal-data topic. The request is
    # kept sealed (to ask again) only until identity settles the NIK, never in the clear.
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
    await uow.applications.add(
        app,
        applicant_name=cmd.applicant_name,
        documents=[d.__dict__ for d in cmd.documents],
        sealed_request=ports.vault.seal(app.id, request.model_dump_json().encode()),
    )
    uow.publish(_request_envelope(app, request, cmd.correlation_id))
    return app


def _request_envelope(
    app: Application, request: CitizenVerificationRequestedV1, correlation_id: str
) -> Envelope:
    return Envelope.wrap(
        request,
        producer=PRODUCER,
        agency=app.agency,
        site=app.site,
        subject=request.request_id,
        correlation_id=correlation_id,
        causation_id=None,
    )


async def _pending_request(
    app: Application, applications: ApplicationRepository, vault: RequestVault
) -> CitizenVerificationRequestedV1 | None:
    """The request to publish again, or None when it cannot be read back (none kept, or sealed with a key
    this deployment no longer has)."""
    sealed = await applications.sealed_request(app.id)
    if sealed is None:
        return None
    try:
        return CitizenVerificationRequestedV1.model_validate_json(vault.open(app.id, sealed))
    except (UnreadableRequest, ValidationError):
        log.warning("licensing.verification.request_unreadable", extra={"application_id": app.id})
        return None


VerificationResult = CitizenVerifiedV1 | CitizenVerificationFailedV1


class Ignored(StrEnum):
    """Why an answer on the results topic changed nothing (bounded: a metric label)."""

    FOREIGN_PRODUCER = "foreign_producer"
    """Not published by the identity service."""
    NOT_OURS = "not_ours"
    """An answer to another service's request: the results topic carries every agency's answers."""
    MISMATCHED = "mismatched"
    """Names one of our requests but another case or agency than the one that asked."""
    STALE = "stale"
    """An answer to an earlier request of the application, replaced since."""
    SETTLED = "settled"
    """The application's NIK was already settled by an earlier answer (a redelivery or a repeat)."""


@dataclass
class ResultsApplied:
    """What one batch of answers did: events to publish and counts for logs and metrics."""

    published: list[Envelope] = field(default_factory=list)
    started: int = 0
    rejected: int = 0
    retries_scheduled: int = 0
    stalled: int = 0
    ignored: dict[Ignored, int] = field(default_factory=dict)

    def ignore(self, why: Ignored) -> None:
        self.ignored[why] = self.ignored.get(why, 0) + 1

    def count(self, step: VerificationStep) -> None:
        if step is VerificationStep.RETRY_SCHEDULED:
            self.retries_scheduled += 1
        elif step is VerificationStep.STALLED:
            self.stalled += 1
        elif step is VerificationStep.REJECTED:
            self.rejected += 1


async def apply_verification_results(
    results: list[Envelope],
    applications: ApplicationRepository,
    ports: Ports,
) -> ResultsApplied:
    """Answers of the identity service to this service's verification requests. An answer counts only
    when identity published it and it answers the application's outstanding request: a verified NIK
    starts the workflow (ApplicationSubmitted, once), a final refusal ends the application, a passing one
    (registry unavailable) schedules a new request or hands the application to an officer."""
    outcome = ResultsApplied()
    now = ports.clock.now()
    answers: list[tuple[Envelope, VerificationResult]] = []
    for env in results:
        result = env.payload
        if not isinstance(result, CitizenVerifiedV1 | CitizenVerificationFailedV1):
            continue
        if env.producer != VERIFIER_PRODUCER or env.agency != VERIFIER_AGENCY:
            outcome.ignore(Ignored.FOREIGN_PRODUCER)
            continue
        answers.append((env, result))
    # One query for the batch: the results topic carries every agency's answers, most of them not ours.
    by_request, by_id = await applications.for_answers(
        {r.request_id for _, r in answers}, {r.case_id for _, r in answers}
    )
    # Each changed application is saved once, after the batch (its row is locked for this transaction).
    changed: dict[str, tuple[Application, bytes | None]] = {}
    for env, result in answers:
        app = by_request.get(result.request_id)
        if app is None or app.verification_request_id != result.request_id:
            owner = by_id.get(result.case_id)
            outcome.ignore(Ignored.STALE if owner is not None and owner.awaiting_nik else _not_current(owner))
            continue
        if app.id != result.case_id or app.agency != result.requesting_agency:
            outcome.ignore(Ignored.MISMATCHED)
            continue
        if not app.awaiting_nik:
            outcome.ignore(Ignored.SETTLED)
            continue
        sealed: bytes | None = None
        if isinstance(result, CitizenVerifiedV1):
            app.nik_verified(result.citizen_ref, result.request_id)
            outcome.started += 1
        else:
            step, sealed = await _refused(app, result, applications, ports, now)
            if step is VerificationStep.IGNORED:
                outcome.ignore(Ignored.SETTLED)
                continue
            outcome.count(step)
        if sealed is not None:
            by_request[app.verification_request_id or ""] = app
        earlier = changed.get(app.id)
        changed[app.id] = (app, sealed if sealed is not None or earlier is None else earlier[1])
        outcome.published.extend(_contract_events(app, env.correlation_id or app.id, str(env.id)))
    await applications.save_locked(list(changed.values()))
    return outcome


async def _refused(
    app: Application,
    result: CitizenVerificationFailedV1,
    applications: ApplicationRepository,
    ports: Ports,
    now: datetime,
) -> tuple[VerificationStep, bytes | None]:
    """Apply identity's refusal; with a retry scheduled, the renewed request (new id), sealed."""
    next_request_id = str(uuid.uuid4())
    step = app.nik_refused(
        request_id=result.request_id,
        reason=result.reason,
        retryable=result.retryable,
        now=now,
        policy=ports.policy,
        next_request_id=next_request_id,
    )
    if step is not VerificationStep.RETRY_SCHEDULED:
        return step, None
    # A new question (new request id): identity answers each request id once.
    request = await _pending_request(app, applications, ports.vault)
    if request is None:
        app.verification_unrepeatable(REQUEST_LOST_REASON)
        return VerificationStep.STALLED, None
    renewed = request.model_copy(update={"request_id": next_request_id})
    return step, ports.vault.seal(app.id, renewed.model_dump_json().encode())


def _not_current(owner: Application | None) -> Ignored:
    # The case is ours but settled (a late answer to an earlier request), or not ours at all.
    return Ignored.NOT_OURS if owner is None else Ignored.SETTLED


@dataclass(frozen=True)
class SweepResult:
    asked_again: int
    stalled: int


async def ask_again_unanswered(uow: LicensingUnitOfWork, ports: Ports, *, batch: int = 200) -> SweepResult:
    """One pass of the verification sweep: every application whose verification request is due (no answer
    within its wait, or a retry after a passing refusal) has its outstanding request published again, with
    the same request id; those out of attempts are handed to an officer. The caller commits."""
    now = ports.clock.now()
    asked = stalled = 0
    for app in await uow.applications.verification_due_for_update(now, batch):
        step = app.verification_due(now, ports.policy)
        if step is VerificationStep.ASK_AGAIN:
            request = await _pending_request(app, uow.applications, ports.vault)
            if request is None:
                app.verification_unrepeatable(REQUEST_LOST_REASON)
                stalled += 1
            else:
                uow.publish(_request_envelope(app, request, "nik-" + app.id))
                asked += 1
        elif step is VerificationStep.STALLED:
            stalled += 1
        else:
            continue
        await uow.applications.save(app)
    return SweepResult(asked, stalled)


async def restart_nik_verification(
    app: Application, cmd: ActOnApplication, uow: LicensingUnitOfWork, ports: Ports
) -> Application:
    """An officer asks identity again about a stalled application: a new round, with a new request id."""
    now = ports.clock.now()
    request_id = str(uuid.uuid4())
    app.restart_verification(request_id=request_id, now=now, policy=ports.policy, roles=cmd.roles)
    request = await _pending_request(app, uow.applications, ports.vault)
    if request is None:
        raise VerificationRequestLost(app.id)
    renewed = request.model_copy(
        update={"request_id": request_id, "officer_ref": cmd.actor, "requested_at": now}
    )
    await uow.applications.save(
        app, sealed_request=ports.vault.seal(app.id, renewed.model_dump_json().encode())
    )
    uow.publish(_request_envelope(app, renewed, cmd.correlation_id))
    return app


async def act_on_application(cmd: ActOnApplication, uow: LicensingUnitOfWork, ports: Ports) -> Application:
    """Read, check, change and save in one transaction that holds the application's row lock from the
    read on: two officers acting at once run one after the other, the second on the first one's result."""
    app = await uow.applications.get(cmd.application_id, for_update=True)
    if app is None or (cmd.in_scope is not None and not cmd.in_scope(app.agency, app.site)):
        raise ApplicationNotFound(cmd.application_id)
    if cmd.action == RETRY_NIK_VERIFICATION:
        return await restart_nik_verification(app, cmd, uow, ports)
    now = ports.clock.now()
    action = app.check(cmd.action, cmd.roles, cmd.reason)
    permit_number = None
    token: str | None = None
    if action.emits == PERMIT_ISSUED:
        service = ports.catalogue.licensing_service(app.service_type)
        short = service.short_code if service is not None else app.service_type.rsplit(".", 1)[-1]
        if uow.applications.numbers_in_one_statement:
            # The serial is drawn by the statement that saves the issue (the sequence row is locked only
            # from there to the commit): until then the number carries a unique placeholder, 30 digits
            # that appear nowhere else in the application or its event.
            token = f"{secrets.randbelow(9 * 10**29) + 10**29}"
            seq = int(token)
        else:
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
    events = _contract_events(app, cmd.correlation_id, cmd.application_id)
    if token is not None and len(events) == 1:
        await uow.applications.save_issued(app, events[0], token=token, now=now)
        return app
    if token is not None:
        # Not the one event the combined statement writes: draw the serial first, the usual way.
        seq = await uow.applications.next_permit_sequence(agency=app.agency, site=app.site, year=now.year)
        number = f"{seq:04d}"
        app.permit_number = (app.permit_number or "").replace(token, number)
        events = [_with_number(e, token, number) for e in events]
    await uow.applications.save(app)
    uow.publish(*events)
    return app


def _with_number(envelope: Envelope, token: str, number: str) -> Envelope:
    payload = envelope.payload
    if isinstance(payload, PermitIssuedV1):
        payload = payload.model_copy(update={"permit_number": payload.permit_number.replace(token, number)})
        return envelope.model_copy(update={"payload": payload})
    return envelope


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
