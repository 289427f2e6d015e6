"""Identity HTTP API: translate requests into commands, dispatch, translate results. Nothing else.

Disdukcapil officers and supervisors register and read citizens of their own site; operators and
supervisors list them (masked); a citizen lists who looked them up. A record of another site answers
exactly like a missing one, and no answer ever repeats a NIK or KK number in full.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy.exc import IntegrityError

from mpp.contracts.events.common import Sex
from mpp.identity.domain.citizen import (
    Citizen,
    CitizenStatus,
    ConsistencyWarning,
    InvalidCitizenData,
    InvalidNumber,
    InvalidStatusChange,
    mask_name,
    mask_number,
)
from mpp.identity.handlers import (
    AGENCY,
    HANDLERS,
    AlreadyRegistered,
    ChangeCitizenStatus,
    CitizenNotFound,
    ReadCitizen,
    RegisterCitizen,
)
from mpp.identity.persistence.repository import ConcurrentUpdate
from mpp.kit.auth import Principal, Role, require_roles
from mpp.kit.http import DomainError
from mpp.kit.idempotency import replayed
from mpp.kit.observability import correlation_id
from mpp.kit.text import SINGLE_LINE

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

REGISTRARS = (Role.OFFICER, Role.SUPERVISOR)
LISTERS = (Role.OPERATOR, Role.SUPERVISOR)
STATUS_EDITORS = (Role.SUPERVISOR,)
MAX_PAGE_SIZE = 100


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Data penduduk tidak ditemukan"


class Unprocessable(DomainError):
    status_code = 422
    code = "validation_error"
    message = "Data yang dikirim tidak valid"


class Duplicate(DomainError):
    status_code = 409
    code = "already_registered"
    message = "NIK sudah terdaftar dalam database kependudukan"


class StatusConflict(DomainError):
    status_code = 409
    code = "invalid_status_change"
    message = "Status data penduduk tidak dapat diubah ke status tersebut"


class ConcurrentChange(DomainError):
    status_code = 409
    code = "concurrent_update"
    message = "Data penduduk sedang diubah oleh petugas lain; muat ulang dan coba lagi"


Name = Annotated[str, StringConstraints(min_length=1, max_length=400), SINGLE_LINE]
Number = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class RegisterCitizenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nik: Number
    kk_number: Number
    full_name: Name
    birth_date: date
    birth_place: Annotated[str, StringConstraints(min_length=1, max_length=200), SINGLE_LINE]
    sex: Sex
    domicile_kabkota: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=8)]
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class ChangeStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CitizenStatus


class WarningOut(BaseModel):
    code: str
    field: str
    message: str


class CitizenOut(BaseModel):
    citizen_ref: str
    nik: str
    kk_number: str
    full_name: str
    birth_date: date
    birth_place: str
    sex: str
    domicile_kabkota: str
    status: str
    site: str
    registered_at: datetime


class CitizenListItemOut(BaseModel):
    citizen_ref: str
    nik: str
    full_name: str
    sex: str
    domicile_kabkota: str
    status: str
    registered_at: datetime


def _out(citizen: Citizen, warnings: list[ConsistencyWarning] | None = None) -> dict[str, Any]:
    body = CitizenOut(
        citizen_ref=citizen.citizen_ref,
        nik=mask_number(citizen.nik),
        kk_number=mask_number(citizen.kk_number),
        full_name=citizen.full_name,
        birth_date=citizen.birth_date,
        birth_place=citizen.birth_place,
        sex=citizen.sex.value,
        domicile_kabkota=citizen.domicile_kabkota,
        status=citizen.status.value,
        site=citizen.site,
        registered_at=citizen.registered_at,
    ).model_dump(mode="json")
    if warnings is not None:
        body["warnings"] = [
            WarningOut(code=w.code, field=w.field, message=w.message).model_dump() for w in warnings
        ]
    return body


def _list_item(citizen: Citizen) -> dict[str, Any]:
    return CitizenListItemOut(
        citizen_ref=citizen.citizen_ref,
        nik=mask_number(citizen.nik),
        full_name=mask_name(citizen.full_name),
        sex=citizen.sex.value,
        domicile_kabkota=citizen.domicile_kabkota,
        status=citizen.status.value,
        registered_at=citizen.registered_at,
    ).model_dump(mode="json")


def _service(request: Request) -> Any:
    return request.app.state.identity


@router.post("/citizens", status_code=201, summary="Register a citizen in the civil registry")
async def register_citizen(
    body: RegisterCitizenIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*REGISTRARS))],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=8, max_length=128)
    ] = None,
) -> JSONResponse:
    svc = _service(request)
    site = body.site or principal.site
    principal.ensure_scope(AGENCY, site)
    assert site is not None  # ensure_scope refuses a caller without a site
    request_hash = svc.keys.request_hash(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    )
    cmd = RegisterCitizen(
        nik=body.nik,
        kk_number=body.kk_number,
        full_name=body.full_name,
        birth_date=body.birth_date,
        birth_place=body.birth_place,
        sex=body.sex,
        domicile_kabkota=body.domicile_kabkota,
        site=site,
        actor=principal.subject,
    )
    try:
        async with svc.uow() as uow:
            if idempotency_key is not None:
                found = await uow.idempotency.find(principal.subject, idempotency_key)
                if found is not None:
                    return _replayed(found, request_hash)
            try:
                registration = await HANDLERS[RegisterCitizen](cmd, uow, svc.ports)
            except InvalidNumber as exc:
                raise Unprocessable(
                    details={"problems": [{"field": exc.field, "problem": exc.message, "type": exc.reason}]}
                ) from None
            except InvalidCitizenData as exc:
                raise Unprocessable(
                    details={"problems": [{"field": exc.field, "problem": exc.message, "type": "invalid"}]}
                ) from None
            except AlreadyRegistered:
                raise Duplicate() from None
            payload = _out(registration.citizen, registration.warnings)
            if idempotency_key is not None:
                await uow.idempotency.remember(
                    principal.subject,
                    idempotency_key,
                    request_hash,
                    201,
                    payload,
                    registration.citizen.registered_at,
                )
            await uow.commit()
    except (IntegrityError, Duplicate):
        # The NIK is registered already. If by a concurrent request with the same key, answer with its
        # result; otherwise it is a conflict.
        if idempotency_key is not None:
            replay = await _replay(svc, principal, idempotency_key, request_hash)
            if replay is not None:
                return replay
        raise Duplicate() from None
    svc.registered.inc()
    log.info("identity.citizen.registered", extra={"site": site, "warnings": len(registration.warnings)})
    return JSONResponse(
        payload, status_code=201, headers={"Location": f"/v1/citizens/{registration.citizen.citizen_ref}"}
    )


async def _replay(svc: Any, principal: Principal, key: str, request_hash: str) -> JSONResponse | None:
    async with svc.uow() as uow:
        found = await uow.idempotency.find(principal.subject, key)
    return None if found is None else _replayed(found, request_hash)


def _replayed(found: tuple[str, int, dict[str, Any]], request_hash: str) -> JSONResponse:
    def location(body: dict[str, Any]) -> str | None:
        return f"/v1/citizens/{body['citizen_ref']}" if "citizen_ref" in body else None

    return replayed(found, request_hash, location)


def _own_site(principal: Principal) -> str:
    """The caller's site, once the caller is known to act for Disdukcapil there (else 403)."""
    principal.ensure_scope(AGENCY, principal.site)
    assert principal.site is not None
    return principal.site


@router.get("/citizens", summary="List the citizens registered at the caller's site (masked)")
async def list_citizens(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*LISTERS))],
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> dict[str, Any]:
    site = _own_site(principal)
    async with _service(request).uow() as uow:
        found, total = await uow.citizens.page(site=site, page=page, size=size)
    return {"items": [_list_item(c) for c in found], "page": page, "size": size, "total": total}


@router.get("/citizens/{citizen_ref}", summary="Read one citizen's record (NIK and KK masked)")
async def get_citizen(
    citizen_ref: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*REGISTRARS))],
) -> dict[str, Any]:
    svc = _service(request)
    cmd = ReadCitizen(
        citizen_ref=citizen_ref,
        site=_own_site(principal),
        officer_ref=principal.subject,
        correlation_id=correlation_id.get(),
    )
    try:
        async with svc.uow() as uow:
            citizen = await HANDLERS[ReadCitizen](cmd, uow, svc.ports)
            await uow.commit()
    except CitizenNotFound:
        raise NotFound() from None
    return _out(citizen)


@router.put("/citizens/{citizen_ref}/status", summary="Change a record's status (e.g. deceased)")
async def change_status(
    citizen_ref: str,
    body: ChangeStatusIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*STATUS_EDITORS))],
) -> dict[str, Any]:
    svc = _service(request)
    site = _own_site(principal)
    cmd = ChangeCitizenStatus(citizen_ref=citizen_ref, status=body.status, site=site, actor=principal.subject)
    try:
        async with svc.uow() as uow:
            citizen = await HANDLERS[ChangeCitizenStatus](cmd, uow, svc.ports)
            await uow.commit()
    except CitizenNotFound:
        raise NotFound() from None
    except InvalidStatusChange as exc:
        raise StatusConflict(
            message=f"Status '{exc.current.value}' tidak dapat diubah menjadi '{exc.target.value}'",
            details={"current_status": exc.current.value, "allowed": exc.allowed},
        ) from None
    except (ConcurrentUpdate, IntegrityError):
        raise ConcurrentChange() from None
    return _out(citizen)


@router.get("/me/access-log", summary="Who looked me up (right of access, UU 27/2022)")
async def my_access_log(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(Role.CITIZEN))],
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> dict[str, Any]:
    # A citizen's token names them by citizen_ref: it reads only its own lines.
    async with _service(request).uow() as uow:
        subject_hash = await uow.citizens.lookup_hash_of(principal.subject)
        rows, total = await uow.access_log.about(
            citizen_ref=principal.subject, subject_hash=subject_hash, page=page, size=size
        )
    items = [
        {
            "at": row["answered_at"].isoformat(),
            "agency": row["requesting_agency"],
            "service": row["requesting_service"],
            "officer_ref": row["officer_ref"],
            "case_id": row["case_id"],
            "purpose": row["purpose"],
            "channel": row["channel"],
            "outcome": row["outcome"],
            "reason_code": row["reason_code"],
        }
        for row in rows
    ]
    return {"items": items, "page": page, "size": size, "total": total}
