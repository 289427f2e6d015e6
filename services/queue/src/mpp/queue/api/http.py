"""Queue HTTP API: translate requests into commands, dispatch, translate results. Nothing else."""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.contracts.events.queue import CancelledBy, CounterCloseReason
from mpp.kit.auth import ForbiddenError, Principal, Role, require_roles
from mpp.kit.db import retrying_conflicts
from mpp.kit.http import DomainError, FastJSONResponse
from mpp.kit.idempotency import replayed
from mpp.kit.observability import correlation_id, inject_traceparent
from mpp.queue.api.cycle_batch import CycleBatcher
from mpp.queue.api.visit_batch import VisitAnswer, VisitBatcher, VisitRequest
from mpp.queue.domain.model import (
    Counter,
    RecallLimitReached,
    SequenceExhausted,
    Ticket,
    TicketState,
    Visit,
    WrongState,
)
from mpp.queue.domain.policy import OrderingPolicy, PolicyError
from mpp.queue.domain.surveys import SurveyInvitation
from mpp.queue.handlers import (
    HANDLERS,
    ActOnTicket,
    AddTicket,
    CallNext,
    CloseCounter,
    CounterBusy,
    NotFound,
    OpenCounter,
    PutPolicy,
    ServiceNotAtCounter,
    StartVisit,
    TransferTicket,
    UnknownCounter,
    UnknownServiceType,
    effective_policy,
)
from mpp.queue.persistence.repository import SITE_DEFAULT
from mpp.queue.sweeper import close_site_day

router = APIRouter(prefix="/v1")
public = APIRouter(prefix="/v1/public", tags=["public"])

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length=1, max_length=64)]


# --- errors -------------------------------------------------------------------------------------


class TicketNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Tiket tidak ditemukan"


class VisitNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Kunjungan tidak ditemukan"


class CounterNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Loket tidak ditemukan"


class WrongStateError(DomainError):
    status_code = 409
    code = "invalid_state"
    message = "Tindakan tidak dapat dilakukan pada status saat ini"


class Unprocessable(DomainError):
    status_code = 422
    code = "unprocessable"
    message = "Permintaan tidak dapat diproses"


class ServiceUnavailableToday(DomainError):
    status_code = 409
    code = "numbers_exhausted"
    message = "Nomor antrean untuk layanan ini hari ini sudah habis"


_WHAT = {"ticket": "Tiket", "counter": "Loket", "visit": "Kunjungan"}
_STATE = {
    "open": "sedang dibuka",
    "closed": "sedang ditutup",
    "ended": "sudah selesai",
    **{s.value: f"berstatus '{s.value}'" for s in TicketState},
}
_ACTION = {
    "call": "dipanggil",
    "call_next": "memanggil antrean",
    "recall": "dipanggil ulang",
    "start": "mulai dilayani",
    "complete": "diselesaikan",
    "no_show": "ditandai tidak hadir",
    "cancel": "dibatalkan",
    "transfer": "dialihkan",
    "open": "dibuka",
    "close": "ditutup",
    "add_ticket": "ditambah tiket",
}


def _translate(exc: Exception) -> DomainError:
    """Map a domain error to its HTTP answer (messages in Bahasa Indonesia)."""
    match exc:
        case WrongState(what=what, state=state, action=action):
            return WrongStateError(
                message=f"{_WHAT.get(what, what)} {_STATE.get(state, state)}; tidak dapat "
                f"{_ACTION.get(action, action)}",
                details={"current_state": state, "action": action},
            )
        case RecallLimitReached(max_calls=n):
            return WrongStateError(
                message=f"Tiket sudah dipanggil {n} kali; tandai tidak hadir (no-show)",
                details={"max_calls": n},
            )
        case CounterBusy(ticket=t):
            return WrongStateError(
                message=f"Loket masih menangani tiket {t.number}; selesaikan dahulu",
                details={"ticket_id": t.id, "ticket_number": t.number, "state": t.state.value},
            )
        case UnknownServiceType(code=code):
            return Unprocessable(
                message="Jenis layanan tidak dikenal",
                details={"field": "service_type", "problem": f"unknown service type {code!r}"},
            )
        case ServiceNotAtCounter(codes=codes):
            return Unprocessable(
                message="Loket ini tidak melayani jenis layanan tersebut",
                details={"field": "service_types", "problem": f"not served at this counter: {codes}"},
            )
        case UnknownCounter():
            return CounterNotFound()
        case PolicyError(problems=problems):
            return Unprocessable(
                message="Kebijakan urutan antrean tidak valid", details={"problems": problems}
            )
        case SequenceExhausted():
            return ServiceUnavailableToday()
    return TicketNotFound()


async def _run(
    svc: Any, cmd: Any, after: Callable[[Any, Any], Awaitable[Any]] | None = None, *, lean: bool = False
) -> Any:
    """Run one command; ``after(uow, result)`` runs in its transaction before the commit. ``lean`` for the
    counters' cycle (:class:`QueueUnitOfWork`), which the service may commit in groups
    (:mod:`mpp.queue.api.cycle_batch`)."""
    batcher: CycleBatcher | None = getattr(svc, "cycle_batcher", None)
    if lean and batcher is not None:
        return await batcher.submit(cmd, after)
    return await run_alone(svc, cmd, after, lean=lean)


async def run_alone(
    svc: Any, cmd: Any, after: Callable[[Any, Any], Awaitable[Any]] | None = None, *, lean: bool = False
) -> Any:
    """Run one command in its own transaction, its domain errors translated into HTTP answers. A
    transaction PostgreSQL rolls back as a deadlock's victim runs again (:func:`retrying_conflicts`)."""

    async def attempt() -> Any:
        async with svc.uow(lean=lean) as uow:
            result = await HANDLERS[type(cmd)](cmd, uow, svc.ports)
            if after is not None:
                await after(uow, result)
            await uow.commit()
        return result

    try:
        return await retrying_conflicts(attempt, what=type(cmd).__name__)
    except (
        WrongState,
        RecallLimitReached,
        CounterBusy,
        UnknownServiceType,
        ServiceNotAtCounter,
        UnknownCounter,
        PolicyError,
        SequenceExhausted,
        NotFound,
    ) as exc:
        raise _translate(exc) from exc


# --- bodies and views ---------------------------------------------------------------------------


class StartVisitIn(BaseModel):
    """A visit at the kiosk: no NIK, no name, no phone number; only what the queue needs."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel = Channel.WALK_IN
    site: Code | None = None
    service_types: list[Code] = Field(default_factory=list, max_length=10)
    priority_group: PriorityGroup = Field(
        default=PriorityGroup.NONE, description="Declared priority group (no proof or personal data stored)."
    )


class AddTicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_type: Code
    priority_group: PriorityGroup = PriorityGroup.NONE


class OpenCounterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_types: list[Code] = Field(default_factory=list, max_length=100)
    planned: bool = True


class CloseCounterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: CounterCloseReason = CounterCloseReason.END_OF_DAY


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    application_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason_code: Code = "citizen_left"


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_service_type: Code
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


def ticket_view(t: Ticket) -> dict[str, Any]:
    """The officer's view of a ticket."""

    def iso(v: datetime | None) -> str | None:
        return None if v is None else v.isoformat()

    return {
        "id": t.id,
        "visit_id": t.visit_id,
        "number": t.number,
        "site": t.site,
        "agency": t.agency,
        "service_type": t.service_type,
        "priority_group": t.priority_group.value,
        "channel": t.channel.value,
        "state": t.state.value,
        "state_label": t.state_label,
        "issued_at": t.issued_at.isoformat(),
        "queued_at": t.queued_at.isoformat(),
        "call_count": t.call_count,
        "counter": t.counter,
        "first_called_at": iso(t.first_called_at),
        "called_at": iso(t.called_at),
        "started_at": iso(t.started_at),
        "finished_at": iso(t.finished_at),
        "transferred_from": t.transferred_from,
        "transferred_to": t.transferred_to,
    }


def counter_view(c: Counter) -> dict[str, Any]:
    return {
        "code": c.code,
        "site": c.site,
        "agency": c.agency,
        "service_types": list(c.service_types),
        "open": c.open,
        "opened_at": None if c.opened_at is None else c.opened_at.isoformat(),
        "planned": c.planned,
        "tickets_served": c.tickets_served,
    }


def _corr() -> str:
    return correlation_id.get() or ""


def _svc(request: Request) -> Any:
    return request.app.state.queue


# --- scope --------------------------------------------------------------------------------------

OFFICER_ROLES = (Role.OFFICER, Role.SUPERVISOR)
READER_ROLES = (Role.OFFICER, Role.SUPERVISOR, Role.OPERATOR)
SITE_DESKS = (Role.KIOSK, Role.OFFICER, Role.SUPERVISOR, Role.OPERATOR)
"""Who issues walk-in visits at a site: its kiosks and its staff (a token bound to the site)."""
KIOSK_ROLES = (*SITE_DESKS, Role.CITIZEN)
POLICY_WRITERS = (Role.SUPERVISOR, Role.OPERATOR)


def _ensure_officer_of(principal: Principal, agency: str, site: str) -> None:
    """Counter work: an officer or supervisor of ``agency`` at ``site`` (operators and the ministry do not call)."""
    if not (principal.has_any(*OFFICER_ROLES) and principal.agency == agency and principal.site == site):
        raise ForbiddenError


def _desk_site(principal: Principal) -> str | None:
    """The site a kiosk or staff member issues walk-in visits at (their token's), else None."""
    return principal.site if principal.has_any(*SITE_DESKS) else None


def _own_site(principal: Principal) -> str:
    if principal.site is None:
        raise ForbiddenError
    return principal.site


def _visible(principal: Principal, ticket: Ticket) -> bool:
    if principal.has_any(Role.OPERATOR) and principal.site == ticket.site:
        return True
    try:
        _ensure_officer_of(principal, ticket.agency, ticket.site)
    except ForbiddenError:
        return False
    return True


async def _scoped_ticket(svc: Any, principal: Principal, ticket_id: str) -> Ticket:
    async with svc.uow() as uow:
        ticket: Ticket | None = await uow.tickets.get(ticket_id)
    # Out of scope answers exactly like "not found", so the response never reveals that a ticket exists.
    if ticket is None or not _visible(principal, ticket):
        raise TicketNotFound()
    return ticket


def _officer_scope(principal: Principal) -> Callable[[Ticket], None]:
    """The check of counter work on a ticket, run on the locked ticket in the action's own transaction:
    out of sight answers like "not found"; in sight but not the caller's counter work is forbidden."""

    def check(ticket: Ticket) -> None:
        if not _visible(principal, ticket):
            raise TicketNotFound()
        _ensure_officer_of(principal, ticket.agency, ticket.site)

    return check


# --- kiosk --------------------------------------------------------------------------------------


@router.post(
    "/visits",
    status_code=201,
    response_model=dict[str, Any],
    summary="Start a visit and take tickets (kiosk or reception)",
)
async def start_visit(
    body: StartVisitIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*KIOSK_ROLES))],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=8, max_length=128)
    ] = None,
) -> JSONResponse:
    """A kiosk or reception desk holds a token of its site and issues walk-in visits there; a citizen's own
    token (no site) may only book online, at the site named in the body or this deployment's site."""
    svc = _svc(request)
    desk = _desk_site(principal)
    if desk is not None:
        if body.site is not None and body.site != desk:
            raise ForbiddenError
        site = desk
    else:
        if not principal.has_any(Role.CITIZEN) or body.channel is Channel.WALK_IN:
            raise ForbiddenError
        site = body.site or svc.runtime.settings.site
    if len(set(body.service_types)) != len(body.service_types):
        raise Unprocessable(
            message="Jenis layanan tidak boleh berulang dalam satu kunjungan",
            details={"field": "service_types", "problem": "duplicates"},
        )
    request_hash = hashlib.sha256(
        orjson.dumps({**body.model_dump(mode="json"), "site": site}, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    cmd = StartVisit(
        site=site,
        channel=body.channel,
        service_types=tuple(body.service_types),
        priority_group=body.priority_group,
        correlation_id=_corr(),
        traceparent=inject_traceparent(),
    )
    ask = VisitRequest(cmd, principal.subject, idempotency_key, request_hash, contextvars.copy_context())
    batcher: VisitBatcher | None = getattr(svc, "visit_batcher", None)
    answer = await (batcher.submit(ask) if batcher is not None else one_visit(svc, ask))
    if answer.stored is not None:
        return replayed(answer.stored, request_hash)
    payload = answer.body
    assert payload is not None
    return FastJSONResponse(
        payload, status_code=201, headers={"Location": f"/v1/visits/{payload['visit_id']}"}
    )


def visit_body(visit: Visit, tickets: list[Ticket]) -> dict[str, Any]:
    """The kiosk's answer for a new visit (also stored under its Idempotency-Key)."""
    return {
        "visit_id": visit.id,
        "site": visit.site,
        "channel": visit.channel.value,
        "started_at": visit.started_at.isoformat(),
        "tickets": [ticket_view(t) for t in tickets],
    }


async def one_visit(svc: Any, ask: VisitRequest) -> VisitAnswer:
    """One visit in its own transaction (a batch of one, or a visit of a batch that failed)."""
    try:
        async with svc.uow() as uow:
            if ask.key is not None:
                found = await uow.idempotency.find(ask.subject, ask.key)
                if found is not None:
                    return VisitAnswer(stored=found)
            try:
                visit, tickets = await HANDLERS[StartVisit](ask.cmd, uow, svc.ports)
            except (UnknownServiceType, SequenceExhausted) as exc:
                raise _translate(exc) from exc
            payload = visit_body(visit, tickets)
            if ask.key is not None:
                await uow.idempotency.remember(
                    ask.subject, ask.key, ask.request_hash, 201, payload, visit.started_at
                )
            await uow.commit()
    except IntegrityError:
        if ask.key is None:
            raise
        async with svc.uow() as uow:
            found = await uow.idempotency.find(ask.subject, ask.key)
        if found is None:
            raise
        return VisitAnswer(stored=found)
    return VisitAnswer(body=payload)


@router.post("/visits/{visit_id}/tickets", status_code=201, summary="Take one more ticket in an open visit")
async def add_ticket(
    visit_id: str,
    body: AddTicketIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*KIOSK_ROLES))],
) -> dict[str, Any]:
    svc = _svc(request)
    desk = _desk_site(principal)
    if desk is None and not principal.has_any(Role.CITIZEN):
        raise ForbiddenError  # a kiosk or staff token without a site
    async with svc.uow() as uow:
        visit = await uow.visits.get(visit_id)
    if visit is None or (desk is not None and visit.site != desk):
        raise VisitNotFound()
    # Off site, only a citizen's own online visit takes more tickets (as only such a visit can start).
    if desk is None and visit.channel is Channel.WALK_IN:
        raise ForbiddenError
    try:
        ticket = await _run(
            svc, AddTicket(visit_id, body.service_type, body.priority_group, correlation_id=_corr())
        )
    except TicketNotFound:
        raise VisitNotFound() from None
    return ticket_view(ticket)


# --- public (the citizen's phone) ---------------------------------------------------------------


async def _public_view(svc: Any, ticket: Ticket) -> dict[str, Any]:
    """What anyone holding the ticket may see: no officer, no other ticket, no personal data."""
    ahead = None
    if ticket.state is TicketState.WAITING:
        async with svc.uow() as uow:
            ahead = await uow.tickets.ahead_of(ticket)
    return {
        "ticket_id": ticket.id,
        "number": ticket.number,
        "service_type": ticket.service_type,
        "agency": ticket.agency,
        "site": ticket.site,
        "state": ticket.state.value,
        "state_label": ticket.state_label,
        "issued_at": ticket.issued_at.isoformat(),
        "waiting_ahead": ahead,
        "counter": ticket.counter if ticket.state in (TicketState.CALLED, TicketState.SERVING) else None,
        "call_count": ticket.call_count,
        "transferred_to": ticket.transferred_to,
        "survey": await _survey_link(svc, ticket.id) if ticket.state is TicketState.COMPLETED else None,
    }


async def _survey_link(svc: Any, ticket_id: str) -> dict[str, Any] | None:
    """The SKM survey of a completed ticket: its token, page and whether it can still be answered."""
    async with svc.uow() as uow:
        invitation = await uow.surveys.of_ticket(ticket_id)
    return _link_view(svc, invitation)


def _link_view(svc: Any, invitation: SurveyInvitation | None) -> dict[str, Any] | None:
    if invitation is None:
        return None
    return {
        "token": invitation.token,
        "url": f"/survei/{invitation.token}",
        "state": invitation.state(svc.ports.clock.now()),
        "closes_at": invitation.closes_at.isoformat(),
    }


@public.get("/tickets/{ticket_id}", summary="A ticket's status by its id (the QR code on the printed ticket)")
async def public_ticket(
    ticket_id: Annotated[str, StringConstraints(max_length=64)], request: Request
) -> dict[str, Any]:
    svc = _svc(request)
    async with svc.uow() as uow:
        ticket = await uow.tickets.get(ticket_id)
    if ticket is None:
        raise TicketNotFound()
    return await _public_view(svc, ticket)


@public.get("/sites/{site}/tickets/{number}", summary="Today's ticket with this number at the site")
async def public_ticket_by_number(
    site: Code,
    number: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,3}-[0-9]{3,4}$")],
    request: Request,
) -> dict[str, Any]:
    svc = _svc(request)
    day = svc.ports.clock.now().astimezone(svc.ports.catalogue.site_zone(site)).date().isoformat()
    async with svc.uow() as uow:
        ticket = await uow.tickets.find_by_number(site, day, number.upper())
    if ticket is None:
        raise TicketNotFound()
    return await _public_view(svc, ticket)


@public.post("/tickets/{ticket_id}/cancel", summary="The citizen gives up a ticket (by its id)")
async def public_cancel(
    ticket_id: Annotated[str, StringConstraints(max_length=64)], request: Request
) -> dict[str, Any]:
    svc = _svc(request)
    cmd = ActOnTicket(
        ticket_id, "cancel", actor="citizen", correlation_id=_corr(), cancelled_by=CancelledBy.CITIZEN
    )
    ticket = await _run(svc, cmd)
    return await _public_view(svc, ticket)


# --- counters -----------------------------------------------------------------------------------


def _counter_scope(svc: Any, principal: Principal, code: str) -> str:
    site = _own_site(principal)
    info = svc.ports.catalogue.counter(site, code)
    if info is None:
        raise CounterNotFound()
    _ensure_officer_of(principal, info.agency, site)
    return site


@router.get(
    "/counters", summary="Counters of the caller's agency at the caller's site and whether they are open"
)
async def list_counters(
    request: Request, principal: Annotated[Principal, Depends(require_roles(*READER_ROLES))]
) -> dict[str, Any]:
    svc = _svc(request)
    site = _own_site(principal)
    agency = None if principal.has_any(Role.OPERATOR) else principal.agency
    known = {c.code: c for c in svc.ports.catalogue.counters_at(site) if agency is None or c.agency == agency}
    async with svc.uow() as uow:
        stored = {c.code: c for c in await uow.counters.at_site(site, agency)}
    items = [
        counter_view(
            stored.get(code)
            or Counter(code=code, site=site, agency=info.agency, service_types=info.service_types)
        )
        for code, info in sorted(known.items())
    ]
    return {"items": items}


@router.post("/counters/{code}/open", summary="Open a counter for calling")
async def open_counter(
    code: Code,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*OFFICER_ROLES))],
    body: Annotated[OpenCounterIn | None, Body()] = None,
) -> dict[str, Any]:
    svc = _svc(request)
    site = _counter_scope(svc, principal, code)
    body = body or OpenCounterIn()
    cmd = OpenCounter(site, code, principal.subject, tuple(body.service_types), body.planned, _corr())
    return counter_view(await _run(svc, cmd))


@router.post("/counters/{code}/close", summary="Close a counter")
async def close_counter(
    code: Code,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*OFFICER_ROLES))],
    body: Annotated[CloseCounterIn | None, Body()] = None,
) -> dict[str, Any]:
    svc = _svc(request)
    site = _counter_scope(svc, principal, code)
    body = body or CloseCounterIn()
    return counter_view(await _run(svc, CloseCounter(site, code, principal.subject, body.reason, _corr())))


@router.post(
    "/counters/{code}/call-next",
    response_model=dict[str, Any],
    summary="Call the next ticket to this counter, as the policy orders",
)
async def call_next(
    code: Code, request: Request, principal: Annotated[Principal, Depends(require_roles(*OFFICER_ROLES))]
) -> FastJSONResponse:
    return FastJSONResponse(await call_next_answer(_svc(request), principal, code))


async def call_next_answer(svc: Any, principal: Principal, code: str) -> dict[str, Any]:
    """call-next for an officer (role checked already): the answer's JSON-ready body."""
    site = _counter_scope(svc, principal, code)
    ticket: Ticket | None = await _run(svc, CallNext(site, code, principal.subject, _corr()), lean=True)
    if ticket is None:
        return {"ticket": None, "message": "Tidak ada antrean yang menunggu untuk loket ini"}
    return {"ticket": ticket_view(ticket), "decision": ticket.decision}


# --- tickets ------------------------------------------------------------------------------------


@router.get("/tickets/{ticket_id}", summary="One ticket (officer view)")
async def get_ticket(
    ticket_id: str, request: Request, principal: Annotated[Principal, Depends(require_roles(*READER_ROLES))]
) -> dict[str, Any]:
    return ticket_view(await _scoped_ticket(_svc(request), principal, ticket_id))


@router.get("/tickets/{ticket_id}/decision", summary="Why call-next chose this ticket")
async def get_decision(
    ticket_id: str, request: Request, principal: Annotated[Principal, Depends(require_roles(*READER_ROLES))]
) -> dict[str, Any]:
    ticket = await _scoped_ticket(_svc(request), principal, ticket_id)
    if ticket.decision is None:
        raise WrongStateError(
            message="Tiket ini belum dipanggil lewat panggilan berikutnya",
            details={"state": ticket.state.value},
        )
    return {"ticket_id": ticket.id, "number": ticket.number, "decision": ticket.decision}


async def act_answer(
    svc: Any,
    principal: Principal,
    ticket_id: str,
    action: str,
    after: Callable[[Any, Any], Awaitable[Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An officer's action on a ticket (role checked already): the ticket's view after it."""
    cmd = ActOnTicket(
        ticket_id,
        action,
        actor=principal.subject,
        correlation_id=_corr(),
        authorize=_officer_scope(principal),
        **extra,
    )
    return ticket_view(await _run(svc, cmd, after, lean=True))


OfficerDep = Annotated[Principal, Depends(require_roles(*OFFICER_ROLES))]


@router.post(
    "/tickets/{ticket_id}/recall",
    summary="Call the ticket again (up to the policy's max_calls)",
    response_model=dict[str, Any],
)
async def recall(ticket_id: str, request: Request, principal: OfficerDep) -> FastJSONResponse:
    return FastJSONResponse(await act_answer(_svc(request), principal, ticket_id, "recall"))


@router.post(
    "/tickets/{ticket_id}/start",
    summary="The citizen arrived at the counter: start serving",
    response_model=dict[str, Any],
)
async def start(ticket_id: str, request: Request, principal: OfficerDep) -> FastJSONResponse:
    return FastJSONResponse(await act_answer(_svc(request), principal, ticket_id, "start"))


@router.post("/tickets/{ticket_id}/complete", response_model=dict[str, Any], summary="Service finished")
async def complete(
    ticket_id: str, request: Request, principal: OfficerDep, body: Annotated[CompleteIn | None, Body()] = None
) -> FastJSONResponse:
    body = body or CompleteIn()
    return FastJSONResponse(await complete_answer(_svc(request), principal, ticket_id, body.application_id))


async def complete_answer(
    svc: Any, principal: Principal, ticket_id: str, application_id: str | None
) -> dict[str, Any]:
    """An officer completes a ticket (role checked already): its view and its SKM survey link."""
    survey: dict[str, Any] = {}

    async def link(uow: Any, ticket: Ticket) -> None:
        # Read in the completing transaction: no second transaction for the link.
        survey["link"] = _link_view(svc, await uow.surveys.of_ticket(ticket.id))

    view = await act_answer(svc, principal, ticket_id, "complete", after=link, application_id=application_id)
    return {**view, "survey": survey.get("link")}


@router.post(
    "/tickets/{ticket_id}/no-show", summary="The called citizen did not come", response_model=dict[str, Any]
)
async def no_show(ticket_id: str, request: Request, principal: OfficerDep) -> FastJSONResponse:
    return FastJSONResponse(await act_answer(_svc(request), principal, ticket_id, "no_show"))


@router.post("/tickets/{ticket_id}/cancel", summary="Cancel a waiting or called ticket")
async def cancel(
    ticket_id: str, request: Request, principal: OfficerDep, body: Annotated[CancelIn | None, Body()] = None
) -> dict[str, Any]:
    body = body or CancelIn()
    return await act_answer(_svc(request), principal, ticket_id, "cancel", reason_code=body.reason_code)


@router.post("/tickets/{ticket_id}/transfer", summary="Refer the citizen to another service (any agency)")
async def transfer(
    ticket_id: str, body: TransferIn, request: Request, principal: OfficerDep
) -> dict[str, Any]:
    svc = _svc(request)
    ticket = await _scoped_ticket(svc, principal, ticket_id)
    _ensure_officer_of(principal, ticket.agency, ticket.site)
    cmd = TransferTicket(ticket_id, body.to_service_type, principal.subject, body.reason, _corr())
    old, new = await _run(svc, cmd)
    return {"ticket": ticket_view(old), "new_ticket": ticket_view(new)}


@router.get("/queues/waiting", summary="Waiting tickets in call order (paged)")
async def waiting(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*READER_ROLES))],
    agency: Annotated[str | None, Query(max_length=64)] = None,
    service_type: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    site = _own_site(principal)
    if not principal.has_any(Role.OPERATOR):
        if agency is not None and agency != principal.agency:
            raise ForbiddenError
        agency = principal.agency
    async with _svc(request).uow() as uow:
        items, total = await uow.tickets.waiting(
            site=site, agency=agency, service_type=service_type, offset=(page - 1) * size, limit=size
        )
    return {"items": [ticket_view(t) for t in items], "page": page, "size": size, "total": total}


# --- ordering policies --------------------------------------------------------------------------


def _policy_scope(principal: Principal, agency: str | None, *, write: bool) -> str:
    site = _own_site(principal)
    if principal.has_any(Role.OPERATOR):
        return site
    if agency is None or principal.agency != agency:
        raise ForbiddenError
    if write and not principal.has_any(Role.SUPERVISOR):
        raise ForbiddenError
    if not write and not principal.has_any(*OFFICER_ROLES):
        raise ForbiddenError
    return site


async def _policy_out(svc: Any, site: str, agency: str | None) -> dict[str, Any]:
    async with svc.uow() as uow:
        own = await uow.policies.find(site, agency or SITE_DEFAULT)
        policy: OrderingPolicy = (
            await effective_policy(uow, site, agency)
            if agency is not None
            else OrderingPolicy.model_validate(own or {})
        )
    return {
        "site": site,
        "agency": agency,
        "source": "own" if own is not None else "inherited",
        "policy": policy.model_dump(mode="json"),
    }


@router.get("/policies/site", summary="The site's default queue ordering policy")
async def get_site_policy(
    request: Request, principal: Annotated[Principal, Depends(require_roles(*READER_ROLES))]
) -> dict[str, Any]:
    return await _policy_out(_svc(request), _own_site(principal), None)


@router.put("/policies/site", summary="Set the site's default queue ordering policy (operator)")
async def put_site_policy(
    request: Request,
    document: Annotated[dict[str, Any], Body()],
    principal: Annotated[Principal, Depends(require_roles(Role.OPERATOR))],
) -> dict[str, Any]:
    svc = _svc(request)
    site = _own_site(principal)
    await _run(svc, PutPolicy(site, None, document, principal.subject, _corr()))
    return await _policy_out(svc, site, None)


@router.get("/policies/agencies/{agency}", summary="An agency's queue ordering policy at the caller's site")
async def get_agency_policy(
    agency: Code, request: Request, principal: Annotated[Principal, Depends(require_roles(*READER_ROLES))]
) -> dict[str, Any]:
    return await _policy_out(_svc(request), _policy_scope(principal, agency, write=False), agency)


@router.put(
    "/policies/agencies/{agency}", summary="Set an agency's queue ordering policy (supervisor, operator)"
)
async def put_agency_policy(
    agency: Code,
    request: Request,
    document: Annotated[dict[str, Any], Body()],
    principal: Annotated[Principal, Depends(require_roles(*POLICY_WRITERS))],
) -> dict[str, Any]:
    svc = _svc(request)
    site = _policy_scope(principal, agency, write=True)
    await _run(svc, PutPolicy(site, agency, document, principal.subject, _corr()))
    return await _policy_out(svc, site, agency)


# --- day close ----------------------------------------------------------------------------------


@router.post("/day-close", summary="Close what is left open of the site's days that are over (operator)")
async def day_close(
    request: Request, principal: Annotated[Principal, Depends(require_roles(Role.OPERATOR))]
) -> dict[str, Any]:
    """The service does this by itself after closing time; the operator of a site may run it at once.
    Only days past their closing time (plus the grace period) are closed."""
    report = await close_site_day(_svc(request), _own_site(principal), _corr())
    return dict(report.__dict__)
