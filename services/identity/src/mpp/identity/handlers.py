"""Identity use cases: (command, unit of work, ports) -> result. A dict routes commands to handlers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel, Sex
from mpp.contracts.events.identity import (
    CitizenVerificationFailedV1,
    CitizenVerificationRequestedV1,
    CitizenVerifiedV1,
    DocumentApplicationRejectedV1,
    DocumentApplicationReturnedV1,
    DocumentApplicationSubmittedV1,
    DocumentIssuedV1,
    VerificationFailure,
)
from mpp.identity.domain.citizen import Citizen, CitizenStatus, IdentityError, Registration, register
from mpp.identity.domain.documents import (
    DOCUMENT_ISSUED,
    SERVICE_KINDS,
    DocumentApplication,
    DocumentRequest,
    DocumentServiceKind,
    accept,
    birth_register_number,
    kk_number,
    kk_region,
    new_tracking_code,
    newborn_nik,
    newborn_region,
    niks_of,
)
from mpp.identity.domain.documents import Issued as DocumentGranted
from mpp.identity.domain.documents import Rejected as DocumentRejected
from mpp.identity.domain.documents import Returned as DocumentReturned
from mpp.identity.domain.documents import Submitted as DocumentSubmitted
from mpp.identity.domain.verification import (
    REGISTRY_READ_PURPOSE,
    AccessChannel,
    AccessOutcome,
    AccessRecord,
    Decision,
    Refused,
    Verified,
    decide,
)
from mpp.identity.persistence.uow import IdentityUnitOfWork
from mpp.identity.ports import (
    AgencyDirectory,
    Clock,
    DocumentCatalogue,
    Pseudonymiser,
    SiteCalendar,
    VerificationScope,
)

PRODUCER = "mpp.identity"
AGENCY = "disdukcapil"
MAX_SERVICE_NAME = 200
MAX_SERIAL = 9999
DOCUMENT_READ_PURPOSE = "issued_document_read"


class AlreadyRegistered(IdentityError):
    """The NIK already has a record in the registry."""


class CitizenNotFound(IdentityError):
    """No record with this reference in the caller's scope."""


@dataclass(frozen=True)
class RegisterCitizen:
    nik: str
    kk_number: str
    full_name: str
    birth_date: date
    birth_place: str
    sex: Sex
    domicile_kabkota: str
    site: str
    actor: str


@dataclass(frozen=True)
class ReadCitizen:
    citizen_ref: str
    site: str
    """The reader's site: records of other sites answer like missing ones."""
    officer_ref: str
    correlation_id: str | None


@dataclass(frozen=True)
class ChangeCitizenStatus:
    citizen_ref: str
    status: CitizenStatus
    site: str
    actor: str


@dataclass
class Ports:
    clock: Clock
    calendar: SiteCalendar
    pseudonymiser: Pseudonymiser
    agencies: AgencyDirectory
    documents: DocumentCatalogue | None = None
    registry_available: bool = True
    """False while the civil registry is declared unavailable (maintenance): verification requests are
    then answered registry_unavailable, retryable, without a lookup."""


async def register_citizen(cmd: RegisterCitizen, uow: IdentityUnitOfWork, ports: Ports) -> Registration:
    now = ports.clock.now()
    registration = register(
        citizen_ref=ports.pseudonymiser.citizen_ref(cmd.nik),
        nik=cmd.nik,
        kk_number=cmd.kk_number,
        full_name=cmd.full_name,
        birth_date=cmd.birth_date,
        birth_place=cmd.birth_place,
        sex=cmd.sex,
        domicile_kabkota=cmd.domicile_kabkota,
        site=cmd.site,
        registered_at=now,
        registered_by=cmd.actor,
        today=ports.calendar.today(cmd.site, now),
    )
    if await uow.citizens.exists(cmd.nik):
        raise AlreadyRegistered()
    await uow.citizens.add(registration.citizen)
    return registration


async def read_citizen(cmd: ReadCitizen, uow: IdentityUnitOfWork, ports: Ports) -> Citizen:
    """The record, if in the reader's scope; the read itself goes to the citizen's access log."""
    citizen = await uow.citizens.get(cmd.citizen_ref)
    if citizen is None or citizen.site != cmd.site:
        raise CitizenNotFound()
    await uow.access_log.add_many(
        [
            AccessRecord(
                request_id=str(uuid.uuid4()),
                channel=AccessChannel.HTTP,
                requesting_agency=AGENCY,
                requesting_service=PRODUCER,
                officer_ref=cmd.officer_ref[:64],
                case_id=None,
                purpose=REGISTRY_READ_PURPOSE,
                site=cmd.site,
                citizen_ref=citizen.citizen_ref,
                subject_hash=None,
                outcome=AccessOutcome.READ,
                reason_code=None,
                answered_at=ports.clock.now(),
                correlation_id=cmd.correlation_id,
            )
        ]
    )
    return citizen


async def change_citizen_status(cmd: ChangeCitizenStatus, uow: IdentityUnitOfWork, ports: Ports) -> Citizen:
    citizen = await uow.citizens.get(cmd.citizen_ref)
    if citizen is None or citizen.site != cmd.site:
        raise CitizenNotFound()
    if citizen.change_status(cmd.status, at=ports.clock.now()):
        await uow.citizens.save_status(citizen)
    return citizen


REGISTRY_UNAVAILABLE = Refused(
    VerificationFailure.REGISTRY_UNAVAILABLE,
    "Database kependudukan sedang tidak dapat diakses; permintaan akan diulang",
    retryable=True,
)


@dataclass(frozen=True)
class VerificationOutcome:
    """What one batch of verification requests came to (for metrics and logs: no personal data)."""

    decisions: list[Decision]
    duplicates: int


def _answer(
    request: Envelope, asked: CitizenVerificationRequestedV1, decision: Decision, at: datetime
) -> Envelope:
    payload: EventPayload
    if isinstance(decision, Verified):
        payload = CitizenVerifiedV1(
            request_id=asked.request_id,
            case_id=asked.case_id,
            requesting_agency=asked.requesting_agency,
            citizen_ref=decision.citizen_ref,
            age_band=decision.age_band,
            elderly_priority=decision.elderly_priority,
            domicile_kabkota=decision.domicile_kabkota,
            verified_at=at,
        )
    else:
        payload = CitizenVerificationFailedV1(
            request_id=asked.request_id,
            case_id=asked.case_id,
            requesting_agency=asked.requesting_agency,
            reason_code=decision.reason,
            reason=decision.message,
            retryable=decision.retryable,
            failed_at=at,
        )
    return Envelope.wrap(
        payload,
        producer=PRODUCER,
        agency=AGENCY,
        site=request.site,
        subject=asked.request_id,
        correlation_id=request.correlation_id,
        causation_id=str(request.id),
        occurred_at=at,
    )


async def verify_citizens(
    requests: Sequence[Envelope], scope: VerificationScope, ports: Ports
) -> VerificationOutcome:
    """Answer a batch of verification requests: one registry query for the whole batch, one answer per
    (requesting agency, request id) however often it is asked, and one access-log line per answer."""
    now = ports.clock.now()
    asked = [
        (env, env.payload) for env in requests if isinstance(env.payload, CitizenVerificationRequestedV1)
    ]
    seen = await scope.access_log.answered((p.requesting_agency, p.request_id) for _, p in asked)
    fresh: list[tuple[Envelope, CitizenVerificationRequestedV1]] = []
    for env, p in asked:
        key = (p.requesting_agency, p.request_id)
        if key not in seen:
            seen.add(key)
            fresh.append((env, p))
    if not ports.registry_available:
        # Nothing was looked up or disclosed, so nothing goes to the access log, and the request id stays
        # unanswered: asking again with it later gets a real answer.
        for env, p in fresh:
            scope.publish(_answer(env, p, REGISTRY_UNAVAILABLE, now))
        return VerificationOutcome(
            decisions=[REGISTRY_UNAVAILABLE] * len(fresh), duplicates=len(asked) - len(fresh)
        )
    entries = await scope.citizens.registry_entries(p.nik for _, p in fresh)
    decisions: list[Decision] = []
    records: list[AccessRecord] = []
    for env, p in fresh:
        decision = decide(
            nik=p.nik,
            entry=entries.get(p.nik),
            today=ports.calendar.today(env.site, now),
            agency_known=ports.agencies.knows(p.requesting_agency),
        )
        answer = _answer(env, p, decision, now)
        scope.publish(answer)
        decisions.append(decision)
        citizen_ref = decision.citizen_ref
        records.append(
            AccessRecord(
                request_id=p.request_id,
                channel=AccessChannel.EVENT,
                requesting_agency=p.requesting_agency,
                requesting_service=p.requesting_service[:MAX_SERVICE_NAME],
                officer_ref=p.officer_ref,
                case_id=p.case_id,
                purpose=p.purpose.value,
                site=env.site,
                citizen_ref=citizen_ref,
                subject_hash=None if citizen_ref is not None else ports.pseudonymiser.lookup_hash(p.nik),
                outcome=AccessOutcome.VERIFIED if isinstance(decision, Verified) else AccessOutcome.REFUSED,
                reason_code=decision.reason.value if isinstance(decision, Refused) else None,
                answered_at=now,
                requested_at=p.requested_at,
                request_event_id=str(env.id),
                answer_event_id=str(answer.id),
                correlation_id=env.correlation_id,
            )
        )
    await scope.access_log.add_many(records)
    return VerificationOutcome(decisions=decisions, duplicates=len(asked) - len(fresh))


# Document applications


class UnknownDocumentService(IdentityError):
    """The service type takes no document applications here (unknown, or without a workflow)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"service type {code!r} takes no document applications")
        self.code = code


class UnknownRequirement(IdentityError):
    """An attached document names a requirement the service type does not list."""

    def __init__(self, index: int, code: str) -> None:
        super().__init__(f"documents[{index}]: unknown requirement")
        self.index = index
        self.code = code


class NotOwnApplication(IdentityError):
    """A citizen applied for a document about someone else."""


class DocumentApplicationNotFound(IdentityError):
    """No application with this id in the caller's scope."""


class SerialsExhausted(IdentityError):
    """The 9,999 serials of a numbering region and day are used up."""


@dataclass(frozen=True)
class DocumentMeta:
    requirement: str
    file_name: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class SubmitDocumentApplication:
    service_type: str
    site: str
    channel: Channel
    request: DocumentRequest
    documents: tuple[DocumentMeta, ...]
    actor: str
    correlation_id: str
    citizen_ref: str | None = None
    """Set when a citizen applies online for themselves: the form must be about them."""


@dataclass(frozen=True)
class ActOnDocumentApplication:
    application_id: str
    action: str
    roles: frozenset[str]
    actor: str
    correlation_id: str
    reason: str | None = None
    missing: tuple[str, ...] = ()
    citizen_ref: str | None = None
    """Set when a citizen acts (resubmits): only on their own application."""
    agency: str | None = None
    site: str | None = None
    """An officer's scope: applications of other agencies or sites answer like missing ones."""


@dataclass(frozen=True)
class SubmittedDocumentApplication:
    application: DocumentApplication
    missing_requirements: list[str]


def _documents(ports: Ports) -> DocumentCatalogue:
    if ports.documents is None:
        raise RuntimeError("the identity service was built without its document catalogue")
    return ports.documents


async def submit_document_application(
    cmd: SubmitDocumentApplication, uow: IdentityUnitOfWork, ports: Ports
) -> SubmittedDocumentApplication:
    catalogue = _documents(ports)
    service = catalogue.document_service(cmd.service_type)
    kind = SERVICE_KINDS.get(cmd.service_type)
    if service is None or service.workflow is None or kind is None:
        raise UnknownDocumentService(cmd.service_type)
    for i, meta in enumerate(cmd.documents):
        if meta.requirement not in service.requirements:
            raise UnknownRequirement(i, meta.requirement)
    now = ports.clock.now()
    today = ports.calendar.today(cmd.site, now)
    entries = await uow.citizens.registry_entries(niks_of(cmd.request))
    accepted = accept(kind, cmd.request, registry=entries, today=today)
    if cmd.citizen_ref is not None and accepted.applicant_ref != cmd.citizen_ref:
        raise NotOwnApplication()
    workflow, clock = catalogue.rules(service.workflow.code, cmd.site)
    app = DocumentApplication.submit(
        application_id=str(uuid.uuid4()),
        tracking_code=new_tracking_code(),
        service_type=service.code,
        kind=kind,
        agency=service.agency,
        site=cmd.site,
        channel=cmd.channel.value,
        accepted=accepted,
        documents=[d.__dict__ for d in cmd.documents],
        submitted_at=now,
        submitted_by=cmd.actor[:128],
        workflow=workflow,
        clock=clock,
    )
    await uow.documents.add(app)
    uow.publish(*_document_events(app, cmd.correlation_id, None))
    attached = {d.requirement for d in cmd.documents}
    missing = sorted(service.mandatory_requirements - attached)
    return SubmittedDocumentApplication(app, missing)


async def act_on_document_application(
    cmd: ActOnDocumentApplication, uow: IdentityUnitOfWork, ports: Ports
) -> DocumentApplication:
    app = await uow.documents.get(cmd.application_id, for_update=True)
    if app is None or not _in_scope(app, cmd):
        raise DocumentApplicationNotFound()
    now = ports.clock.now()
    action = app.check(cmd.action, cmd.roles, cmd.reason)
    number = ref = None
    if action.emits == DOCUMENT_ISSUED:
        number = await _document_number(app, uow, ports, now)
        ref = "doc_" + uuid.uuid4().hex
    app.act(
        cmd.action,
        cmd.roles,
        now,
        actor=cmd.actor[:64],
        reason=cmd.reason,
        missing=cmd.missing,
        document_number=number,
        document_ref=ref,
    )
    if number is not None and app.kind is DocumentServiceKind.BIRTH_CERTIFICATE:
        await _register_newborn(app, uow, ports, now, actor=cmd.actor)
    await uow.documents.save(app, now)
    uow.publish(*_document_events(app, cmd.correlation_id, app.id))
    return app


@dataclass(frozen=True)
class ReadIssuedDocument:
    application_id: str
    agency: str
    site: str
    officer_ref: str
    correlation_id: str | None


class DocumentNotIssued(IdentityError):
    """The application has not issued its document (yet)."""


async def read_issued_document(
    cmd: ReadIssuedDocument, uow: IdentityUnitOfWork, ports: Ports
) -> DocumentApplication:
    """The issued document of an application in the officer's scope. Its number is personal data (a
    KTP-el's number is the NIK), so the read goes to the citizen's access log like a registry read."""
    app = await uow.documents.get(cmd.application_id)
    if app is None or app.agency != cmd.agency or app.site != cmd.site:
        raise DocumentApplicationNotFound()
    if app.document_number is None:
        raise DocumentNotIssued()
    await uow.access_log.add_many(
        [
            AccessRecord(
                request_id=str(uuid.uuid4()),
                channel=AccessChannel.HTTP,
                requesting_agency=AGENCY,
                requesting_service=PRODUCER,
                officer_ref=cmd.officer_ref[:64],
                case_id=app.id,
                purpose=DOCUMENT_READ_PURPOSE,
                site=cmd.site,
                citizen_ref=app.applicant_ref,
                subject_hash=None,
                outcome=AccessOutcome.READ,
                reason_code=None,
                answered_at=ports.clock.now(),
                correlation_id=cmd.correlation_id,
            )
        ]
    )
    return app


async def _register_newborn(
    app: DocumentApplication, uow: IdentityUnitOfWork, ports: Ports, now: datetime, *, actor: str
) -> None:
    """Register the child of an issued akta kelahiran with a new NIK on the mother's KK, and name the
    child as the application's subject. Serials come from a counter per region and birth date; numbers
    already in the registry (registered before, or elsewhere) are skipped."""
    details = app.details
    if not details.get("register_child", False) or app.subject_ref is not None:
        return
    mother = await uow.citizens.get(app.applicant_ref)
    if mother is None:
        return
    born = date.fromisoformat(str(details["child_birth_date"]))
    sex = Sex(str(details["child_sex"]))
    region = newborn_region(
        mother_nik=mother.nik,
        mother_kabkota=mother.domicile_kabkota,
        site_kabkota=_documents(ports).site_kabkota(app.site),
    )
    while True:
        serial = await uow.documents.next_serial(f"nik:{region}", born)
        if serial > MAX_SERIAL:
            raise SerialsExhausted()
        nik = newborn_nik(region=region, birth_date=born, sex=sex, serial=serial)
        if not await uow.citizens.exists(nik):
            break
    registration = register(
        citizen_ref=ports.pseudonymiser.citizen_ref(nik),
        nik=nik,
        kk_number=mother.kk_number,
        full_name=str(details["child_name"]),
        birth_date=born,
        birth_place=str(details["child_birth_place"]),
        sex=sex,
        domicile_kabkota=mother.domicile_kabkota,
        site=app.site,
        registered_at=now,
        registered_by=actor[:128],
        today=ports.calendar.today(app.site, now),
    )
    await uow.citizens.add(registration.citizen)
    app.subject_ref = registration.citizen.citizen_ref
    details["child_nik"] = nik


def _in_scope(app: DocumentApplication, cmd: ActOnDocumentApplication) -> bool:
    if cmd.citizen_ref is not None:
        return app.applicant_ref == cmd.citizen_ref
    return app.agency == cmd.agency and app.site == cmd.site


async def _document_number(
    app: DocumentApplication, uow: IdentityUnitOfWork, ports: Ports, now: datetime
) -> str:
    """The number of the document being issued: the NIK for a KTP-el, the (new or kept) KK number, or
    the akta's register number. Serials come from a counter row per region and local issue day."""
    today = ports.calendar.today(app.site, now)
    kabkota = _documents(ports).site_kabkota(app.site)
    match app.kind:
        case (
            DocumentServiceKind.KTP_RECORDING
            | DocumentServiceKind.KTP_PRINTING
            | DocumentServiceKind.KTP_REPLACEMENT
        ):
            return str(app.details["nik"])
        case DocumentServiceKind.KK_CHANGE:
            # A change of members reprints the family's card under its existing number.
            return str(app.details["kk_number"])
        case DocumentServiceKind.KK_NEW:
            region = kk_region(site_kabkota=kabkota, head_nik=str(app.details["head_nik"]))
            serial = await uow.documents.next_serial(f"kk:{region}", today)
            if serial > MAX_SERIAL:
                raise SerialsExhausted()
            return kk_number(region=region, issued_on=today, serial=serial)
        case DocumentServiceKind.BIRTH_CERTIFICATE:
            serial = await uow.documents.next_serial(f"akta:{kabkota}", today)
            if serial > MAX_SERIAL:
                raise SerialsExhausted()
            return birth_register_number(kabkota=kabkota, registered_on=today, serial=serial)


def _document_events(
    app: DocumentApplication, correlation_id: str, causation_id: str | None
) -> list[Envelope]:
    """Map the aggregate's domain events to contract events: references and codes, no personal data."""
    payloads: list[EventPayload] = []
    for ev in app.events:
        match ev:
            case DocumentSubmitted(at=at):
                payloads.append(
                    DocumentApplicationSubmittedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        document_kind=app.document_kind,
                        reason=app.reason,
                        applicant_ref=app.applicant_ref,
                        subject_ref=app.subject_ref,
                        channel=Channel(app.channel),
                        tracking_code=app.tracking_code,
                        submitted_at=at,
                        documents=len(app.documents),
                        sla_due_on=app.due_on(),
                    )
                )
            case DocumentReturned(officer=officer, missing=missing, note=note, at=at):
                payloads.append(
                    DocumentApplicationReturnedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        document_kind=app.document_kind,
                        applicant_ref=app.applicant_ref,
                        missing=missing,
                        note=note[:1000],
                        officer_ref=officer,
                        returned_at=at,
                    )
                )
            case DocumentRejected(officer=officer, reason_code=code, reason=reason, at=at):
                payloads.append(
                    DocumentApplicationRejectedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        document_kind=app.document_kind,
                        applicant_ref=app.applicant_ref,
                        officer_ref=officer,
                        reason_code=code,
                        reason=reason[:1000],
                        rejected_at=at,
                    )
                )
            case DocumentGranted(
                document_ref=ref, medium=medium, at=at, working_days_elapsed=used, within_sla=within
            ):
                payloads.append(
                    DocumentIssuedV1(
                        application_id=app.id,
                        service_type=app.service_type,
                        document_kind=app.document_kind,
                        applicant_ref=app.applicant_ref,
                        document_ref=ref,
                        medium=medium,
                        issued_at=at,
                        submitted_at=app.submitted_at,
                        working_days_elapsed=used,
                        within_sla=within,
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


Handler = Callable[[Any, IdentityUnitOfWork, Ports], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    RegisterCitizen: register_citizen,
    ReadCitizen: read_citizen,
    ChangeCitizenStatus: change_citizen_status,
    SubmitDocumentApplication: submit_document_application,
    ActOnDocumentApplication: act_on_document_application,
    ReadIssuedDocument: read_issued_document,
}
