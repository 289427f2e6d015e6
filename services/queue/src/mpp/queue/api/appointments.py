"""Appointments over HTTP: public slots and booking status, booking, cancelling, check-in, the sweep."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy.exc import IntegrityError

from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.contracts.events.queue import CancelledBy
from mpp.kit.auth import ForbiddenError, Principal, Role, require_roles
from mpp.kit.db import retrying_conflicts
from mpp.kit.http import DomainError
from mpp.kit.idempotency import replayed
from mpp.queue.api.http import (
    Code,
    Unprocessable,
    WrongStateError,
    _corr,
    _svc,
    _translate,
    ticket_view,
)
from mpp.queue.domain.appointments import (
    AlreadyBooked,
    Appointment,
    AppointmentError,
    OutsideCheckinWindow,
    SlotFull,
    SlotInPast,
    SlotTooFarAhead,
    SlotUnavailable,
    checkin_window,
    day_slots,
)
from mpp.queue.domain.model import QueueError, WrongState
from mpp.queue.handlers import (
    HANDLERS,
    BookAppointment,
    CancelAppointment,
    CheckInAppointment,
    NotBookable,
    NotFound,
    SweepMissed,
    UnknownServiceType,
)

router = APIRouter(prefix="/v1/appointments", tags=["appointments"])
public = APIRouter(prefix="/v1/public/appointments", tags=["public"])

MAX_RANGE_DAYS = 31
MAX_DAYS_AHEAD = 366
STAFF_ROLES = (Role.OFFICER, Role.SUPERVISOR, Role.OPERATOR)
BOOKER_ROLES = (Role.CITIZEN, *STAFF_ROLES)

BookingCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{8}$")]
CitizenRefIn = Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


# --- errors -------------------------------------------------------------------------------------


class AppointmentNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Janji temu tidak ditemukan"


class QuotaFull(DomainError):
    status_code = 409
    code = "quota_full"
    message = "Kuota slot ini sudah penuh; pilih slot lain"


class AlreadyBookedError(DomainError):
    status_code = 409
    code = "already_booked"
    message = "Sudah ada janji temu aktif untuk layanan ini pada hari tersebut"


class CheckinClosed(DomainError):
    status_code = 409
    code = "outside_checkin_window"
    message = "Di luar waktu check-in janji temu"


_APPOINTMENT_STATE = {
    "booked": "masih terjadwal",
    "checked_in": "sudah check-in",
    "cancelled": "sudah dibatalkan",
    "missed": "sudah lewat (tidak hadir)",
    "started": "sudah dimulai",
}
_APPOINTMENT_ACTION = {"cancel": "dibatalkan", "check_in": "check-in"}


def _translate_appointment(exc: Exception) -> DomainError:
    match exc:
        case WrongState(what="appointment", state=state, action=action):
            return WrongStateError(
                message=f"Janji temu {_APPOINTMENT_STATE.get(state, state)}; tidak dapat "
                f"{_APPOINTMENT_ACTION.get(action, action)}",
                details={"current_state": state, "action": action},
            )
        case SlotUnavailable():
            return Unprocessable(
                message="Slot tidak tersedia: di luar jam layanan, hari libur, atau bukan awal slot",
                details={"field": "slot_start", "problem": "not a slot of this service type"},
            )
        case SlotInPast():
            return Unprocessable(
                message="Slot sudah dimulai atau sudah lewat",
                details={"field": "slot_start", "problem": "in the past"},
            )
        case SlotTooFarAhead(days=days):
            return Unprocessable(
                message=f"Slot hanya dapat dipesan paling lama {days} hari ke depan",
                details={"field": "slot_start", "problem": f"more than {days} days ahead"},
            )
        case SlotFull(per_day=True):
            return QuotaFull(message="Kuota harian layanan ini sudah penuh; pilih hari lain")
        case SlotFull():
            return QuotaFull()
        case AlreadyBooked():
            return AlreadyBookedError()
        case OutsideCheckinWindow(opens=opens, closes=closes, early=early):
            return CheckinClosed(
                message="Check-in belum dibuka untuk janji temu ini"
                if early
                else "Waktu check-in janji temu ini sudah lewat",
                details={"checkin_opens": opens.isoformat(), "checkin_closes": closes.isoformat()},
            )
        case NotBookable():
            return Unprocessable(
                message="Layanan ini tidak dapat dipesan secara daring",
                details={"field": "service_type", "problem": "not bookable online"},
            )
        case NotFound():
            return AppointmentNotFound()
    return _translate(exc)


async def _run(svc: Any, cmd: Any) -> Any:
    async def attempt() -> Any:
        async with svc.uow() as uow:
            result = await HANDLERS[type(cmd)](cmd, uow, svc.ports)
            await uow.commit()
        return result

    try:
        return await retrying_conflicts(attempt, what=type(cmd).__name__)
    except (AppointmentError, QueueError) as exc:
        raise _translate_appointment(exc) from exc


# --- views --------------------------------------------------------------------------------------


def appointment_view(svc: Any, a: Appointment) -> dict[str, Any]:
    """What the holder of the booking code and staff see: no citizen reference, no booker."""

    def iso(v: datetime | None) -> str | None:
        return None if v is None else v.isoformat()

    opens, closes = checkin_window(a.slot_start, svc.ports.appointments.for_service(a.service_type))
    tz = svc.ports.catalogue.site_zone(a.site)
    return {
        "id": a.id,
        "booking_code": a.booking_code,
        "site": a.site,
        "service_type": a.service_type,
        "agency": a.agency,
        "day": a.day,
        "slot_start": a.slot_start.astimezone(tz).isoformat(),
        "slot_end": a.slot_end.astimezone(tz).isoformat(),
        "channel": a.channel,
        "state": a.state.value,
        "state_label": a.state_label,
        "booked_at": a.booked_at.isoformat(),
        "checkin_opens": opens.astimezone(tz).isoformat(),
        "checkin_closes": closes.astimezone(tz).isoformat(),
        "cancelled_at": iso(a.cancelled_at),
        "checked_in_at": iso(a.checked_in_at),
        "missed_at": iso(a.missed_at),
        "visit_id": a.visit_id,
        "ticket_id": a.ticket_id,
    }


# --- public -------------------------------------------------------------------------------------


@public.get("/slots", summary="Bookable slots of a service type between two dates (no login)")
async def slots(
    request: Request,
    service_type: Annotated[Code, Query()],
    from_: Annotated[date, Query(alias="from")],
    to: Annotated[date | None, Query()] = None,
    site: Annotated[Code | None, Query()] = None,
) -> dict[str, Any]:
    """Each day from ``from`` to ``to`` (both included, at most 31 days) with its slots that have not
    started, their capacity and the seats still free; closed days and holidays have no slots."""
    svc = _svc(request)
    site = site or svc.runtime.settings.site
    to = to or from_
    today = svc.ports.clock.now().astimezone(svc.ports.catalogue.site_zone(site)).date()
    if not today - timedelta(days=1) <= from_ <= today + timedelta(days=MAX_DAYS_AHEAD):
        raise Unprocessable(
            message=f"Tanggal awal harus antara kemarin dan {MAX_DAYS_AHEAD} hari ke depan",
            details={"field": "from", "problem": f"from yesterday to {MAX_DAYS_AHEAD} days ahead"},
        )
    if to < from_ or (to - from_).days >= MAX_RANGE_DAYS:
        raise Unprocessable(
            message=f"Rentang tanggal harus berurutan dan paling lama {MAX_RANGE_DAYS} hari",
            details={"field": "to", "problem": f"after from and at most {MAX_RANGE_DAYS} days"},
        )
    service = svc.ports.catalogue.service(service_type)
    if service is None:
        raise _translate(UnknownServiceType(service_type))
    if not service.online_enabled:
        raise _translate_appointment(NotBookable(service_type))
    rules = svc.ports.appointments.for_service(service.code)
    tz = svc.ports.catalogue.site_zone(site)
    calendar = svc.ports.catalogue.site_calendar(site)
    now = svc.ports.clock.now()
    last_day = now.astimezone(tz).date() + timedelta(days=rules.book_ahead_days)
    days = [from_ + timedelta(days=n) for n in range((to - from_).days + 1)]
    per_day = {d: day_slots(calendar, d, tz, rules) if d <= last_day else [] for d in days}
    start = datetime.combine(from_, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(to + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    async with svc.uow() as uow:
        taken = await uow.appointments.seats_taken(
            site=site, service_type=service.code, slot_from=start, slot_to=end
        )
        day_taken = await uow.appointments.days_taken(
            site=site, service_type=service.code, days=[d.isoformat() for d in days]
        )
    out_days = []
    for d, day_list in per_day.items():
        day_left = (
            None
            if rules.quota_per_day is None
            else max(0, rules.quota_per_day - day_taken.get(d.isoformat(), 0))
        )
        items = []
        for slot in day_list:
            if slot.start <= now:
                continue
            booked = taken.get(slot.start, 0)
            free = max(0, rules.quota_per_slot - booked)
            if day_left is not None:
                free = min(free, day_left)
            items.append(
                {
                    "start": slot.start.isoformat(),
                    "end": slot.end.isoformat(),
                    "capacity": rules.quota_per_slot,
                    "booked": booked,
                    "available": free,
                }
            )
        out_days.append({"date": d.isoformat(), "open": bool(day_list), "slots": items})
    return {
        "site": site,
        "service_type": service.code,
        "slot_minutes": rules.slot_minutes,
        "quota_per_slot": rules.quota_per_slot,
        "quota_per_day": rules.quota_per_day,
        "days": out_days,
    }


@public.get("/{booking_code}", summary="An appointment's status by its booking code (no login)")
async def public_appointment(booking_code: BookingCode, request: Request) -> dict[str, Any]:
    svc = _svc(request)
    async with svc.uow() as uow:
        found: Appointment | None = await uow.appointments.by_code(booking_code.upper())
    if found is None:
        raise AppointmentNotFound()
    return appointment_view(svc, found)


# --- booking ------------------------------------------------------------------------------------


class BookingChannel(StrEnum):
    ONLINE = Channel.ONLINE.value
    MPP_DIGITAL = Channel.MPP_DIGITAL.value


class BookIn(BaseModel):
    """A booking: no NIK, no name, no phone number."""

    model_config = ConfigDict(extra="forbid")

    service_type: Code
    slot_start: AwareDatetime = Field(description="Start of a slot listed by the slots endpoint.")
    site: Code | None = None
    channel: BookingChannel = BookingChannel.ONLINE
    citizen_ref: CitizenRefIn | None = Field(
        default=None,
        description="Staff booking for someone: the identity service's pseudonymous reference "
        "of the citizen, if known. A citizen's own booking takes it from the token.",
    )

    @field_validator("slot_start")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        # Dates at the ends of the calendar overflow once converted; no slot is there anyway.
        try:
            year = value.astimezone(UTC).year
        except OverflowError:
            year = 0
        if not 2000 <= year <= 2999:
            raise ValueError("slot_start di luar rentang tanggal yang dapat dipesan")
        return value


def own_citizen_ref(subject: str, key: bytes) -> str:
    """A stable pseudonymous reference of a citizen's account: a keyed hash of the token subject (which
    may identify the citizen), so that nobody without the key can tell whose it is."""
    return "c" + hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()[:39]


def _citizen_ref_key(svc: Any) -> bytes:
    settings = svc.runtime.settings
    secret = getattr(settings, "citizen_ref_key", None) or settings.jwt_hs256_secret
    return (secret.get_secret_value() if secret is not None else "mpp.queue.citizen").encode()


def _booking_scope(svc: Any, principal: Principal, body: BookIn) -> tuple[str, str]:
    """The site and the citizen reference of a booking by this caller."""
    if principal.site is not None and principal.has_any(*STAFF_ROLES):
        # Staff of the site booking for someone (a citizen's token with a site claim books for itself).
        if body.site is not None and body.site != principal.site:
            raise ForbiddenError
        return principal.site, body.citizen_ref or f"anon-{uuid.uuid4().hex}"
    if not principal.has_any(Role.CITIZEN):
        raise ForbiddenError
    if body.citizen_ref is not None:
        raise Unprocessable(
            message="citizen_ref hanya diisi petugas yang memesan untuk orang lain",
            details={"field": "citizen_ref", "problem": "taken from the token for a citizen's own booking"},
        )
    return body.site or svc.runtime.settings.site, own_citizen_ref(principal.subject, _citizen_ref_key(svc))


@router.post("", status_code=201, summary="Book a slot (a citizen online, or staff for someone)")
async def book(
    body: BookIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*BOOKER_ROLES))],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=8, max_length=128)
    ] = None,
) -> JSONResponse:
    svc = _svc(request)
    site, citizen_ref = _booking_scope(svc, principal, body)
    request_hash = hashlib.sha256(
        orjson.dumps({**body.model_dump(mode="json"), "site": site}, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    cmd = BookAppointment(
        site=site,
        service_type=body.service_type,
        slot_start=body.slot_start,
        channel=Channel(body.channel.value),
        citizen_ref=citizen_ref,
        booker=principal.subject,
        correlation_id=_corr(),
    )
    try:
        async with svc.uow() as uow:
            if idempotency_key is not None:
                found = await uow.idempotency.find(principal.subject, idempotency_key)
                if found is not None:
                    return replayed(found, request_hash)
            try:
                appointment = await HANDLERS[BookAppointment](cmd, uow, svc.ports)
            except (AppointmentError, QueueError) as exc:
                raise _translate_appointment(exc) from exc
            payload = appointment_view(svc, appointment)
            if idempotency_key is not None:
                await uow.idempotency.remember(
                    principal.subject, idempotency_key, request_hash, 201, payload, appointment.booked_at
                )
            await uow.commit()
    except IntegrityError:
        if idempotency_key is None:
            raise
        async with svc.uow() as uow:
            found = await uow.idempotency.find(principal.subject, idempotency_key)
        if found is None:
            raise
        return replayed(found, request_hash)
    return JSONResponse(payload, status_code=201, headers={"Location": f"/v1/appointments/{appointment.id}"})


# --- staff and the booker -----------------------------------------------------------------------


def _is_staff_of(principal: Principal, a: Appointment) -> bool:
    if principal.site != a.site:
        return False
    if principal.has_any(Role.OPERATOR):
        return True
    return principal.has_any(Role.OFFICER, Role.SUPERVISOR) and principal.agency == a.agency


async def _scoped(svc: Any, principal: Principal, appointment_id: str) -> Appointment:
    """The appointment, for its booker or the staff of its agency (the operator: the whole site); any
    other caller gets the answer of a missing one."""
    async with svc.uow() as uow:
        found: Appointment | None = await uow.appointments.get(appointment_id)
    if found is None or not (principal.subject == found.booker or _is_staff_of(principal, found)):
        raise AppointmentNotFound()
    return found


AppointmentId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


@router.get("", summary="The appointments of a day at the caller's site (staff; paged, slot order)")
async def list_appointments(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*STAFF_ROLES))],
    day: Annotated[date, Query()],
    service_type: Annotated[Code | None, Query()] = None,
    agency: Annotated[Code | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    svc = _svc(request)
    if principal.site is None:
        raise ForbiddenError
    if not principal.has_any(Role.OPERATOR):
        if agency is not None and agency != principal.agency:
            raise ForbiddenError
        agency = principal.agency
    async with svc.uow() as uow:
        items, total = await uow.appointments.of_day(
            site=principal.site,
            day=day.isoformat(),
            agency=agency,
            service_type=service_type,
            offset=(page - 1) * size,
            limit=size,
        )
    return {
        "items": [appointment_view(svc, a) for a in items],
        "page": page,
        "size": size,
        "total": total,
    }


@router.get("/{appointment_id}", summary="One appointment (its booker, or staff of its agency)")
async def get_appointment(
    appointment_id: AppointmentId,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*BOOKER_ROLES))],
) -> dict[str, Any]:
    svc = _svc(request)
    return appointment_view(svc, await _scoped(svc, principal, appointment_id))


class CancelAppointmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason_code: Code = "citizen_request"


@router.post("/{appointment_id}/cancel", summary="Cancel before the slot starts (the booker or staff)")
async def cancel_appointment(
    appointment_id: AppointmentId,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*BOOKER_ROLES))],
    body: Annotated[CancelAppointmentIn | None, Body()] = None,
) -> dict[str, Any]:
    svc = _svc(request)
    found = await _scoped(svc, principal, appointment_id)
    by = CancelledBy.OFFICER if _is_staff_of(principal, found) else CancelledBy.CITIZEN
    if principal.has_any(Role.CITIZEN) and principal.subject == found.booker:
        by = CancelledBy.CITIZEN
    body = body or CancelAppointmentIn()
    appointment = await _run(svc, CancelAppointment(found.id, by, body.reason_code, _corr()))
    return appointment_view(svc, appointment)


class CheckInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    booking_code: BookingCode
    priority_group: PriorityGroup = Field(
        default=PriorityGroup.NONE, description="Declared priority group (no proof or personal data stored)."
    )


@router.post(
    "/check-in", status_code=201, summary="Check in at the kiosk or reception: the ticket joins the queue"
)
async def check_in(
    body: CheckInIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(Role.KIOSK, *STAFF_ROLES))],
) -> dict[str, Any]:
    """Only a kiosk or staff member of the site checks in (the citizen is in the building)."""
    svc = _svc(request)
    if principal.site is None:
        raise ForbiddenError
    cmd = CheckInAppointment(body.booking_code.upper(), principal.site, body.priority_group, _corr())
    appointment, visit, ticket = await _run(svc, cmd)
    return {
        "appointment": appointment_view(svc, appointment),
        "visit_id": visit.id,
        "ticket": ticket_view(ticket),
    }


@router.post("/missed-sweep", summary="Mark appointments whose check-in window passed as missed (operator)")
async def missed_sweep(
    request: Request, principal: Annotated[Principal, Depends(require_roles(Role.OPERATOR))]
) -> dict[str, Any]:
    """The service does this periodically by itself; the operator of a site may run it at once."""
    svc = _svc(request)
    if principal.site is None:
        raise ForbiddenError
    missed: list[Appointment] = await _run(svc, SweepMissed(_corr(), site=principal.site))
    return {"missed": [a.id for a in missed], "count": len(missed)}
