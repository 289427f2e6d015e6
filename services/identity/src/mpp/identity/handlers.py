"""Identity use cases: (command, unit of work, ports) -> result. A dict routes commands to handlers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Sex
from mpp.contracts.events.identity import (
    CitizenVerificationFailedV1,
    CitizenVerificationRequestedV1,
    CitizenVerifiedV1,
    VerificationFailure,
)
from mpp.identity.domain.citizen import Citizen, CitizenStatus, IdentityError, Registration, register
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
from mpp.identity.ports import AgencyDirectory, Clock, Pseudonymiser, SiteCalendar, VerificationScope

PRODUCER = "mpp.identity"
AGENCY = "disdukcapil"
MAX_SERVICE_NAME = 200


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


Handler = Callable[[Any, IdentityUnitOfWork, Ports], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    RegisterCitizen: register_citizen,
    ReadCitizen: read_citizen,
    ChangeCitizenStatus: change_citizen_status,
}
