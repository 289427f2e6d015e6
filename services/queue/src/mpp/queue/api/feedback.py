"""HTTP edge of SKM surveys and complaints: requests to commands, domain errors to answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mpp.contracts.events.common import CitizenRef, ComplaintCategory, ComplaintChannel, ComplaintClass
from mpp.contracts.events.queue import ComplaintOutcome
from mpp.contracts.masterdata import Catalogue
from mpp.kit.auth import ForbiddenError, Principal, Role, require_roles
from mpp.kit.db import retrying_conflicts
from mpp.kit.http import DomainError
from mpp.kit.observability import correlation_id
from mpp.queue.api.http import Code, Unprocessable, WrongStateError
from mpp.queue.api.survey_page import render_survey_page
from mpp.queue.domain.complaints import Complaint, ComplaintState
from mpp.queue.domain.model import WrongState
from mpp.queue.domain.surveys import (
    InvalidAnswers,
    ServiceNotCompleted,
    SurveyAlreadyAnswered,
    SurveyClosed,
    SurveyInvitation,
    parse_answers,
    questionnaire,
)
from mpp.queue.feedback import (
    ReceiveComplaint,
    ResolveComplaint,
    RespondToComplaint,
    SubmitSurvey,
    UnknownAgency,
    receive_complaint,
    resolve_complaint,
    respond_to_complaint,
    submit_survey,
    survey_invitation,
)
from mpp.queue.handlers import NotFound, UnknownServiceType

router = APIRouter(prefix="/v1", tags=["complaints"])
public = APIRouter(prefix="/v1/public", tags=["public"])
pages = APIRouter(tags=["public"])

Key = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


# --- errors -------------------------------------------------------------------------------------


class SurveyNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Survei tidak ditemukan"


class ComplaintNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Pengaduan tidak ditemukan"


class SurveyAnswered(DomainError):
    status_code = 409
    code = "survey_answered"
    message = "Survei untuk layanan ini sudah diisi. Terima kasih."


class SurveyNotOpenYet(DomainError):
    status_code = 409
    code = "service_not_completed"
    message = "Survei dapat diisi setelah layanan Anda selesai"


class SurveyExpired(DomainError):
    status_code = 410
    code = "survey_closed"
    message = "Batas waktu pengisian survei untuk layanan ini sudah lewat"


def _translate(exc: Exception, *, missing: type[DomainError]) -> DomainError:
    match exc:
        case InvalidAnswers(problems=problems):
            return Unprocessable(message="Isian survei tidak valid", details={"problems": problems})
        case SurveyAlreadyAnswered():
            return SurveyAnswered()
        case SurveyClosed(closed_at=closed):
            return SurveyExpired(details={"closed_at": closed.isoformat()})
        case ServiceNotCompleted(state=state):
            return SurveyNotOpenYet(details={"ticket_state": state})
        case WrongState(state=state, action=action):
            label = {"responded": "sudah ditanggapi", "resolved": "sudah selesai"}.get(state, state)
            verb = {"respond": "ditanggapi", "resolve": "diselesaikan"}.get(action, action)
            return WrongStateError(
                message=f"Pengaduan {label}; tidak dapat {verb} lagi",
                details={"current_state": state, "action": action},
            )
        case UnknownServiceType(code=code):
            return Unprocessable(
                message="Jenis layanan tidak dikenal",
                details={"field": "service_type", "problem": f"unknown service type {code!r}"},
            )
        case UnknownAgency(code=code):
            return Unprocessable(
                message="Instansi tidak dikenal",
                details={"field": "agency", "problem": f"unknown agency {code!r}"},
            )
    return missing()


async def _run(svc: Any, handler: Any, cmd: Any, *, missing: type[DomainError]) -> Any:
    async def attempt() -> Any:
        async with svc.uow() as uow:
            result = await handler(cmd, uow, svc.ports)
            await uow.commit()
        return result

    try:
        return await retrying_conflicts(attempt, what=type(cmd).__name__)
    except (
        InvalidAnswers,
        SurveyAlreadyAnswered,
        SurveyClosed,
        ServiceNotCompleted,
        WrongState,
        UnknownServiceType,
        UnknownAgency,
        NotFound,
    ) as exc:
        raise _translate(exc, missing=missing) from exc


def _svc(request: Request) -> Any:
    return request.app.state.queue


def _catalogue(request: Request) -> Catalogue:
    catalogue: Catalogue = request.app.state.queue_catalogue
    return catalogue


def _corr() -> str:
    return correlation_id.get() or ""


def _iso(v: datetime | None) -> str | None:
    return None if v is None else v.isoformat()


# --- surveys ------------------------------------------------------------------------------------


class SurveyIn(BaseModel):
    """One SKM questionnaire: scores by element code (U1..U9, 1..4) and an optional anonymous profile."""

    model_config = ConfigDict(extra="forbid")

    scores: dict[str, Any] = Field(description="Element code to score 1-4, e.g. {'U1': 4, 'U2': 3}.")
    respondent: dict[str, Any] = Field(
        default_factory=dict, description="Optional: sex, age_band, education, occupation."
    )
    channel: str = Field(default="online", description="online, kiosk or paper.")


def survey_link(invitation: SurveyInvitation, now: datetime) -> dict[str, Any]:
    return {
        "token": invitation.token,
        "url": f"/survei/{invitation.token}",
        "state": invitation.state(now),
        "closes_at": invitation.closes_at.isoformat(),
    }


@public.get(
    "/surveys/{key}", summary="The SKM questionnaire of a completed service (survey token or ticket id)"
)
async def get_survey(key: Key, request: Request) -> dict[str, Any]:
    svc = _svc(request)
    try:
        async with svc.uow() as uow:
            invitation = await survey_invitation(uow, key)
    except (ServiceNotCompleted, NotFound) as exc:
        raise _translate(exc, missing=SurveyNotFound) from exc
    catalogue = _catalogue(request)
    names = {s.code: s.name for s in catalogue.service_types}
    agencies = {a.code: a.name for a in catalogue.agencies}
    return {
        **survey_link(invitation, svc.ports.clock.now()),
        "service_type": invitation.service_type,
        "service_name": names.get(invitation.service_type, invitation.service_type),
        "agency": invitation.agency,
        "agency_name": agencies.get(invitation.agency, invitation.agency),
        **questionnaire(),
    }


@public.post("/surveys/{key}", status_code=201, summary="Answer the SKM survey of a completed service, once")
async def post_survey(key: Key, body: SurveyIn, request: Request) -> JSONResponse:
    svc = _svc(request)
    if len(body.scores) > 20 or len(body.respondent) > 10:
        raise Unprocessable(message="Isian survei terlalu banyak", details={"field": "scores"})
    try:
        answers = parse_answers(body.scores, body.respondent, body.channel)
    except InvalidAnswers as exc:
        raise _translate(exc, missing=SurveyNotFound) from exc
    survey_id = await _run(svc, submit_survey, SubmitSurvey(key, answers, _corr()), missing=SurveyNotFound)
    return JSONResponse(
        {"survey_id": survey_id, "message": "Terima kasih atas penilaian Anda"}, status_code=201
    )


@pages.get("/survei/{key}", response_class=HTMLResponse, summary="The SKM survey page (phone or kiosk)")
async def survey_page(key: Key, request: Request) -> HTMLResponse:
    return HTMLResponse(render_survey_page(api=f"/v1/public/surveys/{key}"))


# --- complaints ---------------------------------------------------------------------------------

Contact = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200)]


class StaffComplaintIn(BaseModel):
    """A complaint recorded by staff (at the counter, or from the phone, WhatsApp, e-mail, the box...)."""

    model_config = ConfigDict(extra="forbid")

    channel: ComplaintChannel = ComplaintChannel.COUNTER
    category: ComplaintCategory
    complaint_class: ComplaintClass = ComplaintClass.COMPLAINT
    description: Text
    anonymous: bool = False
    citizen_ref: CitizenRef | None = Field(default=None, description="Pseudonymous reference, if identified.")
    contact: Contact | None = Field(default=None, description="How to answer, only if the citizen gives it.")
    agency: Code | None = Field(
        default=None, description="Agency it is disposed to; the officer's by default."
    )
    service_type: Code | None = None
    lapor_tracking_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


PUBLIC_CHANNELS = (ComplaintChannel.WEBSITE, ComplaintChannel.MPP_DIGITAL)


class PublicComplaintIn(BaseModel):
    """A complaint sent online, without login; anonymous if the citizen asks."""

    model_config = ConfigDict(extra="forbid")

    site: Code | None = None
    channel: ComplaintChannel = ComplaintChannel.WEBSITE
    category: ComplaintCategory
    complaint_class: ComplaintClass = ComplaintClass.COMPLAINT
    description: Text
    anonymous: bool = True
    contact: Contact | None = None
    agency: Code | None = None
    service_type: Code | None = None


class RespondIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response: Text


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: ComplaintOutcome
    resolution: Text


def complaint_view(c: Complaint, now: datetime) -> dict[str, Any]:
    """The staff's view; the contact only as given (it is never published in an event)."""
    return {
        "id": c.id,
        "tracking_code": c.tracking_code,
        "site": c.site,
        "channel": c.channel.value,
        "category": c.category.value,
        "complaint_class": c.complaint_class.value,
        "anonymous": c.anonymous,
        "complainant_ref": c.complainant_ref,
        "contact": c.contact,
        "agency": c.agency,
        "service_type": c.service_type,
        "lapor_tracking_id": c.lapor_tracking_id,
        "description": c.description,
        "state": c.state.value,
        "state_label": c.state_label,
        "received_at": c.received_at.isoformat(),
        "first_response_limit_days": c.first_response_limit_days,
        "resolution_limit_days": c.resolution_limit_days,
        "first_response_due": c.first_response_due.isoformat(),
        "resolution_due": c.resolution_due.isoformat(),
        "responded_at": _iso(c.responded_at),
        "response": c.response,
        "response_within_limit": c.response_within_limit(),
        "resolved_at": _iso(c.resolved_at),
        "outcome": None if c.outcome is None else c.outcome.value,
        "resolution": c.resolution,
        "resolution_within_limit": c.resolution_within_limit(),
        "overdue": c.overdue(now),
    }


def public_complaint_view(c: Complaint) -> dict[str, Any]:
    """What the tracking code shows: progress and answers, not the complaint text or any contact."""
    return {
        "tracking_code": c.tracking_code,
        "category": c.category.value,
        "complaint_class": c.complaint_class.value,
        "state": c.state.value,
        "state_label": c.state_label,
        "received_at": c.received_at.isoformat(),
        "first_response_due": c.first_response_due.isoformat(),
        "resolution_due": c.resolution_due.isoformat(),
        "responded_at": _iso(c.responded_at),
        "response": c.response,
        "resolved_at": _iso(c.resolved_at),
        "outcome": None if c.outcome is None else c.outcome.value,
        "resolution": c.resolution,
    }


def _check_identity(anonymous: bool, ref: str | None, contact: str | None) -> None:
    if anonymous and (ref is not None or contact is not None):
        raise Unprocessable(
            message="Pengaduan anonim tidak boleh mencantumkan identitas atau kontak",
            details={"field": "anonymous", "problem": "anonymous with citizen_ref or contact"},
        )


def _check_agency(request: Request, agency: str | None) -> None:
    if agency is not None and agency not in {a.code for a in _catalogue(request).agencies}:
        raise _translate(UnknownAgency(agency), missing=ComplaintNotFound)


STAFF = (Role.OFFICER, Role.SUPERVISOR, Role.OPERATOR)
OFFICERS = (Role.OFFICER, Role.SUPERVISOR)


def _own_site(principal: Principal) -> str:
    if principal.site is None:
        raise ForbiddenError
    return principal.site


@router.post("/complaints", status_code=201, summary="Record a complaint (counter, phone, box...)")
async def receive_at_counter(
    body: StaffComplaintIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*STAFF))],
) -> dict[str, Any]:
    svc = _svc(request)
    site = _own_site(principal)
    _check_identity(body.anonymous, body.citizen_ref, body.contact)
    _check_agency(request, body.agency)
    agency = body.agency
    if agency is None and body.service_type is None and principal.has_any(*OFFICERS):
        agency = principal.agency
    cmd = ReceiveComplaint(
        site=site,
        channel=body.channel,
        category=body.category,
        complaint_class=body.complaint_class,
        description=body.description,
        anonymous=body.anonymous,
        received_by=principal.subject,
        correlation_id=_corr(),
        complainant_ref=body.citizen_ref,
        contact=body.contact,
        agency=agency,
        service_type=body.service_type,
        lapor_tracking_id=body.lapor_tracking_id,
    )
    complaint = await _run(svc, receive_complaint, cmd, missing=ComplaintNotFound)
    return complaint_view(complaint, svc.ports.clock.now())


@public.post("/complaints", status_code=201, summary="Send a complaint online (no login; anonymous if asked)")
async def receive_online(body: PublicComplaintIn, request: Request) -> dict[str, Any]:
    svc = _svc(request)
    if body.channel not in PUBLIC_CHANNELS:
        raise Unprocessable(
            message="Saluran pengaduan daring tidak dikenal",
            details={"field": "channel", "problem": f"one of {[c.value for c in PUBLIC_CHANNELS]}"},
        )
    _check_identity(body.anonymous, None, body.contact)
    _check_agency(request, body.agency)
    site = body.site or svc.runtime.settings.site
    if site not in {s.code for s in _catalogue(request).sites} | {svc.runtime.settings.site}:
        raise Unprocessable(message="MPP tidak dikenal", details={"field": "site"})
    cmd = ReceiveComplaint(
        site=site,
        channel=body.channel,
        category=body.category,
        complaint_class=body.complaint_class,
        description=body.description,
        anonymous=body.anonymous,
        received_by="public",
        correlation_id=_corr(),
        contact=body.contact,
        agency=body.agency,
        service_type=body.service_type,
    )
    complaint: Complaint = await _run(svc, receive_complaint, cmd, missing=ComplaintNotFound)
    return {
        **public_complaint_view(complaint),
        "message": f"Pengaduan Anda diterima. Simpan kode pelacakan {complaint.tracking_code}.",
    }


@public.get("/complaints/{tracking_code}", summary="Follow a complaint by its tracking code")
async def track(
    tracking_code: Annotated[str, StringConstraints(max_length=16)], request: Request
) -> dict[str, Any]:
    async with _svc(request).uow() as uow:
        complaint = await uow.complaints.by_tracking_code(tracking_code.upper())
    if complaint is None:
        raise ComplaintNotFound()
    return public_complaint_view(complaint)


def _may_handle(principal: Principal, c: Complaint, *, resolve: bool = False) -> bool:
    """The site's operator handles every complaint of the site; the agency's officers (respond) and
    supervisors (respond, resolve) handle those disposed to their agency."""
    if principal.site != c.site:
        return False
    if principal.has_any(Role.OPERATOR):
        return True
    roles = (Role.SUPERVISOR,) if resolve else OFFICERS
    return principal.has_any(*roles) and c.agency is not None and principal.agency == c.agency


async def _scoped(request: Request, principal: Principal, complaint_id: str, **kw: bool) -> Complaint:
    async with _svc(request).uow() as uow:
        complaint: Complaint | None = await uow.complaints.get(complaint_id)
    # Out of scope answers like a missing complaint.
    if complaint is None or not _may_handle(principal, complaint, **kw):
        raise ComplaintNotFound()
    return complaint


@router.get("/complaints", summary="Complaints of the agency (the operator: the site), soonest due first")
async def list_complaints(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*STAFF))],
    state: ComplaintState | None = None,
    overdue: bool = False,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    svc = _svc(request)
    site = _own_site(principal)
    if not principal.has_any(Role.OPERATOR):
        if agency is not None and agency != principal.agency:
            raise ForbiddenError
        agency = principal.agency
    now = svc.ports.clock.now()
    async with svc.uow() as uow:
        items = await uow.complaints.listed(
            site=site,
            agency=agency,
            state=state,
            overdue_at=now if overdue else None,
            offset=(page - 1) * size,
            limit=size,
        )
    return {"items": [complaint_view(c, now) for c in items], "page": page, "size": size}


@router.get("/complaints/overdue", summary="Complaints past a SP4N-LAPOR limit (supervisors, operator)")
async def overdue_complaints(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.OPERATOR))],
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    svc = _svc(request)
    site = _own_site(principal)
    agency = None if principal.has_any(Role.OPERATOR) else principal.agency
    now = svc.ports.clock.now()
    async with svc.uow() as uow:
        items = await uow.complaints.listed(
            site=site, agency=agency, state=None, overdue_at=now, offset=(page - 1) * size, limit=size
        )
    return {
        "items": [complaint_view(c, now) for c in items],
        "page": page,
        "size": size,
        "as_of": now.isoformat(),
    }


@router.get("/complaints/{complaint_id}", summary="One complaint (staff view)")
async def get_complaint(
    complaint_id: Key, request: Request, principal: Annotated[Principal, Depends(require_roles(*STAFF))]
) -> dict[str, Any]:
    complaint = await _scoped(request, principal, complaint_id)
    return complaint_view(complaint, _svc(request).ports.clock.now())


@router.post("/complaints/{complaint_id}/respond", summary="Send the first response to a complaint")
async def respond(
    complaint_id: Key,
    body: RespondIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*STAFF))],
) -> dict[str, Any]:
    svc = _svc(request)
    await _scoped(request, principal, complaint_id)
    cmd = RespondToComplaint(complaint_id, principal.subject, body.response, _corr())
    complaint = await _run(svc, respond_to_complaint, cmd, missing=ComplaintNotFound)
    return complaint_view(complaint, svc.ports.clock.now())


@router.post("/complaints/{complaint_id}/resolve", summary="Resolve a complaint (supervisors, operator)")
async def resolve(
    complaint_id: Key,
    body: ResolveIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.OPERATOR))],
) -> dict[str, Any]:
    svc = _svc(request)
    await _scoped(request, principal, complaint_id, resolve=True)
    cmd = ResolveComplaint(complaint_id, principal.subject, body.outcome, body.resolution, _corr())
    complaint = await _run(svc, resolve_complaint, cmd, missing=ComplaintNotFound)
    return complaint_view(complaint, svc.ports.clock.now())
