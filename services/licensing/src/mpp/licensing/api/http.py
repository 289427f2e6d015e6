"""Licensing HTTP API: translate requests into commands, dispatch, translate results. Nothing else."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.responses import Response as HttpResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from mpp.contracts.events.common import Channel
from mpp.contracts.nik import ValidNik
from mpp.contracts.workflow import ReasonRequired, RoleRefused, TransitionRefused
from mpp.kit.auth import ForbiddenError, Principal, Role, require_roles
from mpp.kit.http import DomainError, FastJSONResponse
from mpp.kit.idempotency import replayed
from mpp.kit.observability import correlation_id
from mpp.licensing.domain.model import PRE_WORKFLOW_LABELS, Application, mask_name
from mpp.licensing.handlers import (
    HANDLERS,
    ActOnApplication,
    ApplicationNotFound,
    DocumentMeta,
    NoWorkflow,
    SubmitApplication,
    UnknownServiceType,
    VerificationRequestLost,
)
from mpp.licensing.persistence.repository import ConcurrentUpdate

router = APIRouter(prefix="/v1")
public = APIRouter(prefix="/v1", tags=["public"])

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
DOCUMENT_TYPES = ("application/pdf", "image/jpeg", "image/png")


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Permohonan tidak ditemukan"


class Conflict(DomainError):
    status_code = 409
    code = "invalid_transition"
    message = "Tindakan tidak dapat dilakukan pada status permohonan saat ini"


class ActionForbidden(DomainError):
    status_code = 403
    code = "forbidden"
    message = "Peran Anda tidak berwenang melakukan tindakan ini"


class Unprocessable(DomainError):
    status_code = 422
    code = "unprocessable"
    message = "Permintaan tidak dapat diproses"


class ConcurrentChange(DomainError):
    status_code = 409
    code = "concurrent_update"
    message = "Permohonan sedang diubah oleh petugas lain; muat ulang dan coba lagi"


class ApplicantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nik: ValidNik
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requirement: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_type: Annotated[str, StringConstraints(pattern=r"^(application/pdf|image/jpeg|image/png)$")]
    size_bytes: int = Field(gt=0, le=MAX_DOCUMENT_BYTES)


class SubmitApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    channel: Channel = Channel.WALK_IN
    applicant: ApplicantIn
    documents: list[DocumentIn] = Field(default_factory=list, max_length=30)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] | None = None
    missing: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=30
    )


class ApplicationOut(BaseModel):
    id: str
    tracking_code: str
    service_type: str
    agency: str
    site: str
    channel: str
    status: str
    state: str
    state_label: str
    submitted_at: datetime
    approved_at: datetime | None
    issued_at: datetime | None
    permit_number: str | None
    allowed_actions: list[str]
    due_at: datetime | None
    paused: bool
    sla_status: str
    nik_verification: NikVerificationOut | None = None


class NikVerificationOut(BaseModel):
    """While the applicant's NIK is not settled, or why it was not verified."""

    attempts: int
    next_attempt_at: datetime | None
    failure_reason: str | None


def _out(app: Application, principal: Principal, now: datetime) -> dict[str, Any]:
    return ApplicationOut(
        id=app.id,
        tracking_code=app.tracking_code,
        service_type=app.service_type,
        agency=app.agency,
        site=app.site,
        channel=app.channel,
        status=app.state,
        state=app.state,
        state_label=app.state_label,
        submitted_at=app.submitted_at,
        approved_at=app.approved_at,
        issued_at=app.issued_at,
        permit_number=app.permit_number,
        allowed_actions=app.allowed_actions(_roles(principal)),
        due_at=app.due_at.astimezone(UTC) if app.due_at else None,
        paused=app.paused,
        sla_status=app.sla_status(now).value,
        nik_verification=(
            NikVerificationOut(
                attempts=app.verification_attempts,
                next_attempt_at=app.verification_next_at,
                failure_reason=app.nik_failure_reason,
            )
            if app.state in PRE_WORKFLOW_LABELS
            else None
        ),
    ).model_dump(mode="json")


def _roles(principal: Principal) -> frozenset[str]:
    return frozenset(r.value for r in principal.roles)


def _now(svc: Any) -> datetime:
    now: datetime = svc.ports.clock.now()
    return now


def _corr() -> str:
    return correlation_id.get() or ""


COUNTER_ROLES = (Role.OFFICER, Role.SUPERVISOR, Role.CITIZEN)
APPROVER_ROLES = (Role.OFFICER, Role.SUPERVISOR)
READER_ROLES = (Role.OFFICER, Role.SUPERVISOR, Role.OPERATOR, Role.MINISTRY)


@router.post("/applications", status_code=201, summary="Submit a permit application")
async def submit(
    body: SubmitApplicationIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*COUNTER_ROLES))],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=8, max_length=128)
    ] = None,
) -> JSONResponse:
    svc = request.app.state.licensing
    # Officers submit for their own site; a citizen applying online defaults to this deployment's site.
    site = body.site or principal.site or svc.runtime.settings.site
    service = svc.ports.catalogue.licensing_service(body.service_type)
    if service is None:
        raise Unprocessable(
            message="Jenis layanan perizinan tidak dikenal",
            details={"field": "service_type", "problem": f"unknown service type {body.service_type!r}"},
        )
    if service.workflow is None:
        raise Unprocessable(
            message="Jenis layanan ini belum memiliki alur kerja",
            details={
                "field": "service_type",
                "problem": f"service type {body.service_type!r} has no workflow",
            },
        )
    if not principal.has_any(Role.CITIZEN):
        principal.ensure_scope(service.agency, site)
    elif body.channel is Channel.WALK_IN:
        raise ForbiddenError()
    request_hash = hashlib.sha256(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    cmd = SubmitApplication(
        service_type=body.service_type,
        site=site,
        channel=body.channel,
        applicant_nik=body.applicant.nik,
        applicant_name=body.applicant.name,
        documents=tuple(DocumentMeta(**d.model_dump()) for d in body.documents),
        correlation_id=_corr(),
        actor=principal.subject,
        officer=not principal.has_any(Role.CITIZEN),
    )
    try:
        async with svc.uow() as uow:
            if idempotency_key is not None:
                found = await uow.idempotency.find(principal.subject, idempotency_key)
                if found is not None:
                    return _replayed(found, request_hash)
            try:
                app = await HANDLERS[SubmitApplication](cmd, uow, svc.ports)
            except (UnknownServiceType, NoWorkflow) as exc:
                raise Unprocessable(details={"field": "service_type", "problem": str(exc)}) from exc
            payload = _out(app, principal, app.submitted_at)
            if idempotency_key is not None:
                await uow.idempotency.remember(
                    principal.subject, idempotency_key, request_hash, 201, payload, app.submitted_at
                )
            await uow.commit()
    except IntegrityError:
        if idempotency_key is None:
            raise
        # A concurrent request with the same key won the race: answer with its result.
        replay = await _replay(svc, principal, idempotency_key, request_hash)
        if replay is None:
            raise
        return replay
    return FastJSONResponse(payload, status_code=201, headers={"Location": f"/v1/applications/{app.id}"})


async def _replay(svc: Any, principal: Principal, key: str, request_hash: str) -> JSONResponse | None:
    async with svc.uow() as uow:
        found = await uow.idempotency.find(principal.subject, key)
    return None if found is None else _replayed(found, request_hash)


def _replayed(found: tuple[str, int, dict[str, Any]], request_hash: str) -> JSONResponse:
    """The stored answer to an earlier request with the same Idempotency-Key, Location included."""
    return replayed(
        found, request_hash, lambda body: f"/v1/applications/{body['id']}" if "id" in body else None
    )


def _in_scope(principal: Principal, agency: str, site: str) -> bool:
    try:
        principal.ensure_scope(agency, site)
    except ForbiddenError:
        return False
    return True


async def _load_scoped(svc: Any, principal: Principal, application_id: str) -> Application:
    async with svc.uow() as uow:
        app: Application | None = await uow.applications.get(application_id)
    # Out of scope answers exactly like "not found", so the response never reveals that a record exists.
    if app is None:
        raise NotFound()
    try:
        principal.ensure_scope(app.agency, app.site)
    except ForbiddenError:
        raise NotFound() from None
    return app


@router.get("/applications/{application_id}", summary="Read one application")
async def get_application(
    application_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*READER_ROLES))],
) -> dict[str, Any]:
    svc = request.app.state.licensing
    return _out(await _load_scoped(svc, principal, application_id), principal, _now(svc))


@router.post(
    "/applications/{application_id}/actions/{action}",
    summary="Take an action of the application's workflow (verify, return, approve, issue, ...)",
    response_model=ApplicationOut,
)
async def act(
    application_id: str,
    action: Annotated[str, StringConstraints(min_length=1, max_length=64)],
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*APPROVER_ROLES))],
    body: ActionIn | None = None,
) -> HttpResponse:
    svc = request.app.state.licensing
    body = body or ActionIn()
    cmd = ActOnApplication(
        application_id=application_id,
        action=action,
        roles=_roles(principal),
        actor=principal.subject,
        correlation_id=_corr(),
        reason=body.reason,
        missing=tuple(body.missing),
        in_scope=lambda agency, site: _in_scope(principal, agency, site),
    )
    try:
        async with svc.uow() as uow:
            app = await HANDLERS[ActOnApplication](cmd, uow, svc.ports)
            await uow.commit()
    except ApplicationNotFound as exc:
        raise NotFound() from exc
    except TransitionRefused as exc:
        raise Conflict(
            message=f"Permohonan berstatus '{exc.state}'; tindakan '{exc.action}' tidak diizinkan",
            details={"current_state": exc.state, "allowed_actions": exc.allowed},
        ) from exc
    except RoleRefused as exc:
        raise ActionForbidden(
            message=f"Tindakan '{exc.action}' hanya dapat dilakukan oleh: {', '.join(exc.required)}",
            details={"action": exc.action, "required_roles": exc.required},
        ) from exc
    except ReasonRequired as exc:
        raise Unprocessable(
            message=f"Tindakan '{exc.action}' memerlukan alasan",
            details={"field": "reason", "problem": "required"},
        ) from exc
    except (ConcurrentUpdate, IntegrityError) as exc:
        raise ConcurrentChange() from exc
    except VerificationRequestLost as exc:
        raise Conflict(
            message="Permintaan verifikasi NIK tidak dapat diulang; ajukan permohonan baru"
        ) from exc
    return FastJSONResponse(_out(app, principal, app.issued_at or _now(svc)))


class TrackingNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Kode pelacakan tidak ditemukan"


@public.get("/track/{tracking_code}", summary="Follow an application by its tracking code (no login)")
async def track(
    tracking_code: Annotated[str, StringConstraints(min_length=6, max_length=16)], request: Request
) -> dict[str, Any]:
    """What a citizen may see: status and dates, never officer data or personal data."""
    svc = request.app.state.licensing
    async with svc.uow() as uow:
        app: Application | None = await uow.applications.find_by_tracking_code(tracking_code.upper())
    if app is None:
        raise TrackingNotFound()
    return {
        "tracking_code": app.tracking_code,
        "service_type": app.service_type,
        "status": app.state,
        "status_label": app.state_label,
        "submitted_at": app.submitted_at.isoformat(),
        "expected_completion_date": (
            None if app.due_at is None else app.due_at.astimezone(app.clock.tz).date().isoformat()
        ),
        "paused": app.paused,
        "finished": app.finished,
        "permit_issued": app.permit_number is not None,
    }


@public.get("/permits/verification", summary="Check a permit number (the QR code on a permit)")
async def verify_permit(
    request: Request, number: Annotated[str, Query(min_length=5, max_length=64)]
) -> dict[str, Any]:
    """Whether a permit number is valid, for whom in masked form, and since when."""
    async with request.app.state.licensing.uow() as uow:
        found = await uow.applications.permit_holder(number)
    if found is None:
        return {"valid": False, "permit_number": number, "message": "Nomor izin tidak terdaftar"}
    app, holder = found
    return {
        "valid": True,
        "permit_number": app.permit_number,
        "service_type": app.service_type,
        "agency": app.agency,
        "site": app.site,
        "holder": mask_name(holder),
        "issued_at": app.issued_at.isoformat() if app.issued_at else None,
        "valid_until": None,
        "message": "Izin terdaftar dan berlaku",
    }


@router.get("/applications", summary="Work queue: applications in the caller's scope, oldest first")
async def work_queue(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*READER_ROLES))],
    status: Annotated[str | None, Query(max_length=64, description="Workflow state code")] = None,
    service_type: Annotated[str | None, Query(max_length=64)] = None,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    if principal.has_any(Role.MINISTRY):
        scope_agency, scope_site = agency, site
    elif principal.has_any(Role.OPERATOR):
        principal.ensure_scope(agency, site or principal.site)
        scope_agency, scope_site = agency, principal.site
    else:
        principal.ensure_scope(agency or principal.agency, site or principal.site)
        scope_agency, scope_site = principal.agency, principal.site
    async with request.app.state.licensing.uow() as uow:
        items, total = await uow.applications.work_queue(
            agency=scope_agency,
            site=scope_site,
            status=status,
            service_type=service_type,
            offset=(page - 1) * size,
            limit=size,
        )
    now = _now(request.app.state.licensing)
    return {"items": [_out(a, principal, now) for a in items], "page": page, "size": size, "total": total}


SUPERVISION_ROLES = (Role.SUPERVISOR, Role.OPERATOR, Role.MINISTRY)


@router.get(
    "/supervision/sla", summary="Escalation list: applications at risk or past their SLA, most urgent first"
)
async def sla_watch(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*SUPERVISION_ROLES))],
    agency: Annotated[str | None, Query(max_length=64)] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    if principal.has_any(Role.MINISTRY):
        scope_agency, scope_site = agency, site
    elif principal.has_any(Role.OPERATOR):
        principal.ensure_scope(agency, site or principal.site)
        scope_agency, scope_site = agency, principal.site
    else:
        principal.ensure_scope(agency or principal.agency, site or principal.site)
        scope_agency, scope_site = principal.agency, principal.site
    svc = request.app.state.licensing
    now = _now(svc)
    async with svc.uow() as uow:
        items, total = await uow.applications.sla_watch(
            agency=scope_agency, site=scope_site, now=now, offset=(page - 1) * size, limit=size
        )
    return {"items": [_out(a, principal, now) for a in items], "page": page, "size": size, "total": total}
