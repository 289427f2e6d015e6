"""Notification HTTP API: contacts (citizens for themselves, officers at the counter), the operators'
delivery status, failures and resend, and the providers' delivery callbacks."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mpp.contracts.events.common import CitizenRef
from mpp.contracts.events.notification import EmailAddress, NotificationChannel
from mpp.kit.auth import AuthError, ForbiddenError, Principal, Role, require_roles
from mpp.kit.http import DomainError
from mpp.notification.domain.model import Contact
from mpp.notification.domain.phone import InvalidPhone, mask_email, mask_phone, normalise_phone
from mpp.notification.service import NotificationService, NotResendable, StatusUpdate

router = APIRouter(prefix="/v1")
webhooks = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

OPERATOR_ROLES = (Role.OPERATOR, Role.MINISTRY)
COUNTER_ROLES = (Role.OFFICER, Role.SUPERVISOR)
SIGNATURE_HEADER = "X-Hub-Signature-256"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Data tidak ditemukan"


class Unprocessable(DomainError):
    status_code = 422
    code = "unprocessable"
    message = "Data tidak dapat diproses"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    message = "Pesan ini belum selesai diproses sehingga belum dapat dikirim ulang"


def _service(request: Request) -> NotificationService:
    service: NotificationService = request.app.state.notification
    return service


Service = Annotated[NotificationService, Depends(_service)]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    email: EmailAddress | None = None
    whatsapp: bool = False
    preferred_channel: NotificationChannel
    optional_messages_consent: bool = False


class ContactOut(BaseModel):
    citizen_ref: str
    phone: str | None = Field(description="Masked.")
    email: str | None = Field(description="Masked.")
    whatsapp: bool
    preferred_channel: NotificationChannel
    optional_messages_consent: bool
    consent_recorded_at: datetime


def _contact(citizen_ref: str, body: ContactIn, source: str) -> Contact:
    phone = None
    if body.phone is not None:
        try:
            phone = normalise_phone(body.phone)
        except InvalidPhone:
            raise Unprocessable(
                "Nomor telepon tidak valid: gunakan nomor seluler Indonesia, misalnya 0812xxxxxxxx",
                details={"field": "phone"},
            ) from None
    contact = Contact(
        citizen_ref=citizen_ref,
        phone=phone,
        email=body.email,
        whatsapp=body.whatsapp and phone is not None,
        preferred_channel=body.preferred_channel,
        optional_consent=body.optional_messages_consent,
        consent_recorded_at=datetime.now(UTC),
        source=source,
    )
    if not contact.reaches(body.preferred_channel):
        raise Unprocessable(
            "Kanal pilihan tidak memiliki data kontak yang sesuai", details={"field": "preferred_channel"}
        )
    return contact


def _out(contact: Contact) -> ContactOut:
    return ContactOut(
        citizen_ref=contact.citizen_ref,
        phone=mask_phone(contact.phone) if contact.phone else None,
        email=mask_email(contact.email) if contact.email else None,
        whatsapp=contact.whatsapp,
        preferred_channel=contact.preferred_channel,
        optional_messages_consent=contact.optional_consent,
        consent_recorded_at=contact.consent_recorded_at,
    )


@router.put("/contacts/me", response_model=ContactOut, tags=["contacts"])
async def put_my_contact(
    body: ContactIn, service: Service, principal: Annotated[Principal, Depends(require_roles(Role.CITIZEN))]
) -> ContactOut:
    contact = _contact(principal.subject, body, "self")
    await service.save_contact(contact)
    return _out(contact)


@router.get("/contacts/me", response_model=ContactOut, tags=["contacts"])
async def get_my_contact(
    service: Service, principal: Annotated[Principal, Depends(require_roles(Role.CITIZEN))]
) -> ContactOut:
    contact = await service.contact(principal.subject)
    if contact is None:
        raise NotFound("Data kontak belum terdaftar")
    return _out(contact)


@router.delete("/contacts/me", status_code=204, tags=["contacts"])
async def withdraw_my_contact(
    service: Service, principal: Annotated[Principal, Depends(require_roles(Role.CITIZEN))]
) -> Response:
    if not await service.withdraw_contact(principal.subject):
        raise NotFound("Data kontak belum terdaftar")
    return Response(status_code=204)


@router.put("/contacts/{citizen_ref}", response_model=ContactOut, tags=["contacts"])
async def register_contact(
    citizen_ref: Annotated[CitizenRef, Path()],
    body: ContactIn,
    service: Service,
    principal: Annotated[Principal, Depends(require_roles(*COUNTER_ROLES))],
) -> ContactOut:
    """Registration at the counter by an officer of this site (the citizen gives the details in person)."""
    if principal.site != service.runtime.settings.site or principal.agency is None:
        raise ForbiddenError
    contact = _contact(citizen_ref, body, principal.agency)
    await service.save_contact(contact)
    return _out(contact)


DELIVERY_FIELDS = (
    "id",
    "trigger_event_id",
    "trigger_event_type",
    "message_kind",
    "channel",
    "round",
    "site",
    "agency",
    "template",
    "critical",
    "urgent",
    "state",
    "attempts",
    "not_before",
    "provider",
    "provider_message_id",
    "failure_reason",
    "provider_error_code",
    "sent_at",
    "delivered_at",
    "read_at",
    "resend_of",
    "created_at",
    "updated_at",
)


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    """A delivery for operators: no contact details, no citizen reference, no message text."""
    return {k: row[k] for k in DELIVERY_FIELDS}


def _site_scope(principal: Principal) -> str | None:
    """None: every site (the ministry); otherwise the operator's own site."""
    if principal.has_any(Role.MINISTRY):
        return None
    if principal.site is None:
        raise ForbiddenError
    return principal.site


def _orjson(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


@router.get("/deliveries", tags=["operator"])
async def deliveries_of_trigger(
    trigger_event_id: Annotated[uuid.UUID, Query(description="Id of the event that caused the messages.")],
    service: Service,
    principal: Annotated[Principal, Depends(require_roles(*OPERATOR_ROLES))],
) -> Response:
    site = _site_scope(principal)
    rows = [
        r for r in await service.deliveries_for(str(trigger_event_id)) if site is None or r["site"] == site
    ]
    return _orjson({"items": [_delivery(r) for r in rows]})


@router.get("/deliveries/failures", tags=["operator"])
async def failed_deliveries(
    service: Service,
    principal: Annotated[Principal, Depends(require_roles(*OPERATOR_ROLES))],
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    rows, total = await service.failures(_site_scope(principal), page, size)
    return _orjson({"items": [_delivery(r) for r in rows], "page": page, "size": size, "total": total})


@router.post("/deliveries/{delivery_id}/resend", status_code=202, tags=["operator"])
async def resend_delivery(
    delivery_id: uuid.UUID,
    service: Service,
    principal: Annotated[Principal, Depends(require_roles(Role.OPERATOR))],
) -> Response:
    """A new attempt at the trigger's message (recorded as a new round); the ministry reads only."""
    row = await service.delivery(str(delivery_id))
    if row is None or principal.site is None or row["site"] != principal.site:
        raise NotFound("Pengiriman tidak ditemukan")
    try:
        created = await service.resend(row, principal.subject)
    except NotResendable:
        raise Conflict from None
    return _orjson(_delivery(created), status_code=202)


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    status: Annotated[str, StringConstraints(max_length=32)]
    timestamp: Annotated[str, StringConstraints(max_length=40)] | None = None
    error_code: Annotated[str, StringConstraints(max_length=64)] | None = None


class _StatusBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    statuses: list[_Status] = Field(max_length=1000)


def _when(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except ValueError:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def signature(secret: str, body: bytes) -> str:
    """The value of the signature header for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@webhooks.post("/{provider}/status")
async def provider_status(
    provider: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")],
    request: Request,
    service: Service,
) -> Response:
    """Delivery reports from a provider, signed with the shared secret (``X-Hub-Signature-256``)."""
    body = await request.body()
    given = request.headers.get(SIGNATURE_HEADER, "")
    secret = service.runtime.settings.webhook_secret.get_secret_value()  # type: ignore[attr-defined]
    if not hmac.compare_digest(given, signature(secret, body)):
        raise AuthError("Tanda tangan callback tidak valid")
    try:
        batch = _StatusBatch.model_validate_json(body)
        updates = [
            StatusUpdate(s.id, s.status.lower(), _when(s.timestamp), s.error_code) for s in batch.statuses
        ]
    except ValueError:
        raise Unprocessable("Isi callback tidak sesuai format") from None
    known = 0
    for update in updates:
        known += await service.apply_status(provider, update)
    return _orjson({"received": len(updates), "matched": known})
