"""Document applications over HTTP (KTP-el, KK, akta kelahiran): translate, dispatch, translate back.

Disdukcapil officers and supervisors of a site submit and work the applications of that site; a citizen
applies online for themselves, follows and resubmits their own. Applications of another agency or site,
or another citizen's, answer exactly like missing ones. No answer repeats a NIK or a name, except the
issued document's number, which only officers read and every read of which goes to the access log.
"""

from __future__ import annotations

import logging
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from mpp.contracts.events.common import Channel, Sex
from mpp.contracts.events.identity import DocumentApplicationReason
from mpp.contracts.workflow import ReasonRequired, RoleRefused, TransitionRefused
from mpp.identity.domain.documents import (
    SERVICE_KINDS,
    BirthRequest,
    DocumentApplication,
    DocumentApplicationError,
    DocumentRequest,
    DocumentServiceKind,
    KkChangeRequest,
    KkNewRequest,
    KtpRequest,
    MemberChange,
    MemberChangeKind,
)
from mpp.identity.handlers import (
    AGENCY,
    HANDLERS,
    ActOnDocumentApplication,
    DocumentApplicationNotFound,
    DocumentMeta,
    DocumentNotIssued,
    NotOwnApplication,
    ReadIssuedDocument,
    SerialsExhausted,
    SubmitDocumentApplication,
    SubmittedDocumentApplication,
    UnknownDocumentService,
    UnknownRequirement,
)
from mpp.identity.persistence.documents import ConcurrentApplicationUpdate
from mpp.kit.auth import ForbiddenError, Principal, Role, require_roles
from mpp.kit.http import DomainError
from mpp.kit.idempotency import IdempotencyKey, canonical, replayed
from mpp.kit.observability import correlation_id
from mpp.kit.text import SINGLE_LINE

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/document-applications", tags=["document applications"])
public = APIRouter(prefix="/v1/document-applications", tags=["public"])

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_PAGE_SIZE = 200
APPLICANT_ROLES = (Role.OFFICER, Role.SUPERVISOR, Role.CITIZEN)
OFFICER_ROLES = (Role.OFFICER, Role.SUPERVISOR)


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Permohonan dokumen tidak ditemukan"


class TrackingNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Kode pelacakan tidak ditemukan"


class NotIssued(DomainError):
    status_code = 404
    code = "not_issued"
    message = "Dokumen untuk permohonan ini belum diterbitkan"


class Unprocessable(DomainError):
    status_code = 422
    code = "validation_error"
    message = "Data permohonan tidak valid"


class Conflict(DomainError):
    status_code = 409
    code = "invalid_transition"
    message = "Tindakan tidak dapat dilakukan pada status permohonan saat ini"


class ActionForbidden(DomainError):
    status_code = 403
    code = "forbidden"
    message = "Peran Anda tidak berwenang melakukan tindakan ini"


class ConcurrentChange(DomainError):
    status_code = 409
    code = "concurrent_update"
    message = "Permohonan sedang diubah oleh petugas lain; muat ulang dan coba lagi"


class NumbersExhausted(DomainError):
    status_code = 409
    code = "serials_exhausted"
    message = "Nomor urut dokumen untuk hari ini sudah habis; hubungi administrator"


Number = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class KtpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nik: Number
    reason: DocumentApplicationReason = DocumentApplicationReason.NEW
    married: bool = Field(
        default=False, description="Sudah atau pernah kawin (perekaman sebelum usia 17 tahun)."
    )


class KkNewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    head_nik: Number
    member_niks: list[Number] = Field(default_factory=list, max_length=20)
    reason: DocumentApplicationReason = DocumentApplicationReason.NEW


class MemberChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    change: MemberChangeKind
    nik: Number


class KkChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applicant_nik: Number
    kk_number: Number
    changes: list[MemberChangeIn] = Field(min_length=1, max_length=20)


class BirthIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mother_nik: Number
    father_nik: Number | None = None
    child_name: Annotated[str, StringConstraints(min_length=1, max_length=400), SINGLE_LINE]
    child_sex: Sex
    child_birth_date: date
    child_birth_place: Annotated[str, StringConstraints(min_length=1, max_length=200), SINGLE_LINE]
    register_child: bool = Field(
        default=True, description="Daftarkan anak sebagai penduduk dengan NIK baru saat akta terbit."
    )


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requirement: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_type: Annotated[str, StringConstraints(pattern=r"^(application/pdf|image/jpeg|image/png)$")]
    size_bytes: int = Field(gt=0, le=MAX_DOCUMENT_BYTES)


class SubmitIn(BaseModel):
    """One application: the service type and the form of that service (exactly one of the four)."""

    model_config = ConfigDict(extra="forbid")

    service_type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    channel: Channel = Channel.WALK_IN
    ktp_el: KtpIn | None = Field(default=None, description="KTP-el recording, printing or replacement.")
    kk_new: KkNewIn | None = Field(default=None, description="A new Kartu Keluarga.")
    kk_change: KkChangeIn | None = Field(default=None, description="A change of a KK's members.")
    birth: BirthIn | None = Field(default=None, description="Akta kelahiran.")
    documents: list[DocumentIn] = Field(default_factory=list, max_length=30)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] | None = None
    missing: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=30
    )


class Form(StrEnum):
    KTP_EL = "ktp_el"
    KK_NEW = "kk_new"
    KK_CHANGE = "kk_change"
    BIRTH = "birth"


FORMS: dict[DocumentServiceKind, Form] = {
    DocumentServiceKind.KTP_RECORDING: Form.KTP_EL,
    DocumentServiceKind.KTP_PRINTING: Form.KTP_EL,
    DocumentServiceKind.KTP_REPLACEMENT: Form.KTP_EL,
    DocumentServiceKind.KK_NEW: Form.KK_NEW,
    DocumentServiceKind.KK_CHANGE: Form.KK_CHANGE,
    DocumentServiceKind.BIRTH_CERTIFICATE: Form.BIRTH,
}


def _request(body: SubmitIn, kind: DocumentServiceKind) -> DocumentRequest:
    expected = FORMS[kind]
    given = [f for f in Form if getattr(body, f.value) is not None]
    if given != [expected]:
        raise Unprocessable(
            message=f"Layanan ini memerlukan isian '{expected.value}' saja",
            details={"problems": [{"field": expected.value, "problem": "required", "type": "wrong_form"}]},
        )
    if body.ktp_el is not None:
        return KtpRequest(nik=body.ktp_el.nik, reason=body.ktp_el.reason, married=body.ktp_el.married)
    if body.kk_new is not None:
        return KkNewRequest(
            head_nik=body.kk_new.head_nik,
            member_niks=tuple(body.kk_new.member_niks),
            reason=body.kk_new.reason,
        )
    if body.kk_change is not None:
        return KkChangeRequest(
            applicant_nik=body.kk_change.applicant_nik,
            kk_number=body.kk_change.kk_number,
            changes=tuple(MemberChange(c.change, c.nik) for c in body.kk_change.changes),
        )
    assert body.birth is not None
    b = body.birth
    return BirthRequest(
        mother_nik=b.mother_nik,
        father_nik=b.father_nik,
        child_name=b.child_name,
        child_sex=b.child_sex,
        child_birth_date=b.child_birth_date,
        child_birth_place=b.child_birth_place,
        register_child=b.register_child,
    )


def _roles(principal: Principal) -> frozenset[str]:
    return frozenset(r.value for r in principal.roles)


def _corr() -> str:
    return correlation_id.get() or ""


def _service(request: Request) -> Any:
    return request.app.state.identity


def _out(app: DocumentApplication, principal: Principal) -> dict[str, Any]:
    """An application as officers and its applicant see it: codes, states, dates; no personal data."""
    return {
        "id": app.id,
        "tracking_code": app.tracking_code,
        "service_type": app.service_type,
        "document_kind": app.document_kind.value,
        "reason": app.reason.value,
        "agency": app.agency,
        "site": app.site,
        "channel": app.channel,
        "applicant_ref": app.applicant_ref,
        "subject_ref": app.subject_ref,
        "state": app.state,
        "state_label": app.state_label,
        "finished": app.finished,
        "paused": app.paused,
        "allowed_actions": app.allowed_actions(_roles(principal)),
        "submitted_at": app.submitted_at.isoformat(),
        "sla_due_on": None if app.due_on() is None else str(app.due_on()),
        "due_at": None if app.due_at is None else app.due_at.isoformat(),
        "missing": list(app.missing),
        "note": app.last_note,
        "documents": [
            {
                "requirement": d["requirement"],
                "content_type": d["content_type"],
                "size_bytes": d["size_bytes"],
            }
            for d in app.documents
        ],
        "issued_at": None if app.issued_at is None else app.issued_at.isoformat(),
        "document_ref": app.document_ref,
        "medium": None if app.medium is None else app.medium.value,
        "working_days_elapsed": app.working_days_elapsed,
        "within_sla": app.within_sla,
    }


def _idempotency_principal(principal: Principal) -> str:
    return ("document-applications:" + principal.subject)[:128]


def _location(body: dict[str, Any]) -> str | None:
    return f"/v1/document-applications/{body['id']}" if "id" in body else None


@router.post("", status_code=201, summary="Submit a KTP-el, KK or akta kelahiran application")
async def submit(
    body: SubmitIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*APPLICANT_ROLES))],
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    svc = _service(request)
    kind = SERVICE_KINDS.get(body.service_type)
    service = svc.ports.documents.document_service(body.service_type)
    if kind is None or service is None or service.workflow is None:
        raise Unprocessable(
            message="Jenis layanan dokumen kependudukan tidak dikenal",
            details={"problems": [{"field": "service_type", "problem": "unknown", "type": "unknown"}]},
        )
    is_citizen = principal.has_any(Role.CITIZEN) and not principal.has_any(*OFFICER_ROLES)
    if is_citizen:
        if body.channel is Channel.WALK_IN:
            raise ForbiddenError("Pengajuan di loket dilakukan oleh petugas")
        site = body.site or principal.site or svc.runtime.settings.site
    else:
        site = body.site or principal.site
        principal.ensure_scope(service.agency, site)
    document_request = _request(body, kind)
    request_hash = svc.keys.request_hash(canonical(body.model_dump(mode="json") | {"site": site}))
    cmd = SubmitDocumentApplication(
        service_type=body.service_type,
        site=site,
        channel=body.channel,
        request=document_request,
        documents=tuple(DocumentMeta(**d.model_dump()) for d in body.documents),
        actor=principal.subject,
        correlation_id=_corr(),
        citizen_ref=principal.subject if is_citizen else None,
    )
    key_owner = _idempotency_principal(principal)
    try:
        async with svc.uow() as uow:
            found = await uow.idempotency.find(key_owner, idempotency_key)
            if found is not None:
                return replayed(found, request_hash, _location)
            try:
                result: SubmittedDocumentApplication = await HANDLERS[SubmitDocumentApplication](
                    cmd, uow, svc.ports
                )
            except UnknownDocumentService:
                raise Unprocessable(message="Jenis layanan dokumen kependudukan tidak dikenal") from None
            except UnknownRequirement as exc:
                raise Unprocessable(
                    message="Dokumen persyaratan tidak dikenal untuk layanan ini",
                    details={
                        "problems": [
                            {
                                "field": f"documents[{exc.index}].requirement",
                                "problem": "unknown",
                                "type": "unknown",
                            }
                        ]
                    },
                ) from None
            except DocumentApplicationError as exc:
                raise Unprocessable(
                    message=exc.message,
                    details={"problems": [{"field": exc.field, "problem": exc.message, "type": exc.code}]},
                ) from None
            except NotOwnApplication:
                raise ForbiddenError("Permohonan daring hanya dapat diajukan untuk diri sendiri") from None
            app = result.application
            payload = _out(app, principal) | {"missing_requirements": result.missing_requirements}
            await uow.idempotency.remember(
                key_owner, idempotency_key, request_hash, 201, payload, app.submitted_at
            )
            await uow.commit()
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its result.
        async with svc.uow() as uow:
            found = await uow.idempotency.find(key_owner, idempotency_key)
        if found is None:
            raise
        return replayed(found, request_hash, _location)
    log.info(
        "identity.document_application.submitted",
        extra={"service_type": app.service_type, "site": app.site, "channel": app.channel},
    )
    return JSONResponse(payload, status_code=201, headers={"Location": f"/v1/document-applications/{app.id}"})


@public.get("/track/{tracking_code}", summary="Follow a document application by its tracking code (no login)")
async def track(
    tracking_code: Annotated[str, StringConstraints(min_length=6, max_length=16)], request: Request
) -> dict[str, Any]:
    """Status and dates only: never the applicant, an officer, a number or a note."""
    async with _service(request).uow() as uow:
        app = await uow.documents.find_by_tracking_code(tracking_code.strip().upper())
    if app is None:
        raise TrackingNotFound()
    due = app.due_on()
    return {
        "tracking_code": app.tracking_code,
        "service_type": app.service_type,
        "document_kind": app.document_kind.value,
        "status": app.state,
        "status_label": app.state_label,
        "submitted_at": app.submitted_at.isoformat(),
        "expected_completion_date": None if due is None else due.isoformat(),
        "paused": app.paused,
        "finished": app.finished,
        "issued": app.issued_at is not None,
        "missing": list(app.missing) if app.paused else [],
    }


async def _load_scoped(svc: Any, principal: Principal, application_id: str) -> DocumentApplication:
    async with svc.uow() as uow:
        app: DocumentApplication | None = await uow.documents.get(application_id)
    # Out of scope answers exactly like "not found": the response never reveals that a record exists.
    if app is None or not _may_see(principal, app):
        raise NotFound()
    return app


def _may_see(principal: Principal, app: DocumentApplication) -> bool:
    if principal.has_any(*OFFICER_ROLES):
        return principal.agency == app.agency and principal.site == app.site
    return principal.has_any(Role.CITIZEN) and principal.subject == app.applicant_ref


@router.get("", summary="Work queue: the document applications of the caller's agency and site")
async def work_queue(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*OFFICER_ROLES))],
    state: Annotated[str | None, Query(max_length=64, description="Workflow state code")] = None,
    service_type: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> dict[str, Any]:
    principal.ensure_scope(AGENCY, principal.site)
    assert principal.agency is not None and principal.site is not None
    async with _service(request).uow() as uow:
        items, total = await uow.documents.work_queue(
            agency=principal.agency,
            site=principal.site,
            status=state,
            service_type=service_type,
            offset=(page - 1) * size,
            limit=size,
        )
    return {"items": [_out(a, principal) for a in items], "page": page, "size": size, "total": total}


@router.get("/{application_id}", summary="Read one document application")
async def get_application(
    application_id: Annotated[str, StringConstraints(max_length=64)],
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*APPLICANT_ROLES))],
) -> dict[str, Any]:
    return _out(await _load_scoped(_service(request), principal, application_id), principal)


@router.post(
    "/{application_id}/actions/{action}",
    summary="Take an action of the application's workflow (verify, return, resubmit, print, issue, sign, ...)",
)
async def act(
    application_id: Annotated[str, StringConstraints(max_length=64)],
    action: Annotated[str, StringConstraints(min_length=1, max_length=64)],
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*APPLICANT_ROLES))],
    body: ActionIn | None = None,
) -> dict[str, Any]:
    svc = _service(request)
    loaded = await _load_scoped(svc, principal, application_id)
    body = body or ActionIn()
    service = svc.ports.documents.document_service(loaded.service_type)
    unknown = [code for code in body.missing if service is None or code not in service.requirements]
    if unknown:
        raise Unprocessable(
            message="Kode persyaratan yang dikembalikan tidak dikenal untuk layanan ini",
            details={"problems": [{"field": "missing", "problem": "unknown", "type": "unknown"}]},
        )
    officer = principal.has_any(*OFFICER_ROLES)
    cmd = ActOnDocumentApplication(
        application_id=application_id,
        action=action,
        roles=_roles(principal),
        actor=principal.subject,
        correlation_id=_corr(),
        reason=body.reason,
        missing=tuple(body.missing),
        citizen_ref=None if officer else principal.subject,
        agency=principal.agency if officer else None,
        site=principal.site if officer else None,
    )
    try:
        async with svc.uow() as uow:
            app = await HANDLERS[ActOnDocumentApplication](cmd, uow, svc.ports)
            await uow.commit()
    except DocumentApplicationNotFound:
        raise NotFound() from None
    except TransitionRefused as exc:
        raise Conflict(
            message=f"Permohonan berstatus '{exc.state}'; tindakan '{exc.action}' tidak diizinkan",
            details={"current_state": exc.state, "allowed_actions": exc.allowed},
        ) from None
    except RoleRefused as exc:
        raise ActionForbidden(
            message=f"Tindakan '{exc.action}' hanya dapat dilakukan oleh: {', '.join(exc.required)}",
            details={"action": exc.action, "required_roles": exc.required},
        ) from None
    except ReasonRequired as exc:
        raise Unprocessable(
            message=f"Tindakan '{exc.action}' memerlukan alasan",
            details={"problems": [{"field": "reason", "problem": "required", "type": "missing"}]},
        ) from None
    except SerialsExhausted:
        raise NumbersExhausted() from None
    except (ConcurrentApplicationUpdate, IntegrityError):
        raise ConcurrentChange() from None
    log.info(
        "identity.document_application.acted",
        extra={"service_type": app.service_type, "action": action, "state": app.state, "site": app.site},
    )
    return _out(app, principal)


@router.get("/{application_id}/document", summary="The issued document's number and medium (officers)")
async def issued_document(
    application_id: Annotated[str, StringConstraints(max_length=64)],
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*OFFICER_ROLES))],
) -> dict[str, Any]:
    svc = _service(request)
    principal.ensure_scope(AGENCY, principal.site)
    assert principal.agency is not None and principal.site is not None
    cmd = ReadIssuedDocument(
        application_id=application_id,
        agency=principal.agency,
        site=principal.site,
        officer_ref=principal.subject,
        correlation_id=correlation_id.get(),
    )
    try:
        async with svc.uow() as uow:
            app: DocumentApplication = await HANDLERS[ReadIssuedDocument](cmd, uow, svc.ports)
            await uow.commit()
    except DocumentApplicationNotFound:
        raise NotFound() from None
    except DocumentNotIssued:
        raise NotIssued() from None
    assert app.issued_at is not None and app.medium is not None
    return {
        "application_id": app.id,
        "document_kind": app.document_kind.value,
        "document_ref": app.document_ref,
        "document_number": app.document_number,
        "medium": app.medium.value,
        "issued_at": app.issued_at.isoformat(),
    }


__all__ = ["public", "router"]
