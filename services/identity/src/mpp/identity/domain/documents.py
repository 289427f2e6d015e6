"""Civil registry document applications: KTP-el, Kartu Keluarga and akta kelahiran.

Each service type names a workflow in the catalogue; the :class:`DocumentApplication` aggregate follows
it (states, actions, roles, reasons, SLA clock) without knowing any state by name. What is specific to a
document is checked here before an application is accepted: who the applicant is, which citizens must be
in the registry, and which personal details the form must hold. Those details (NIKs, names, birth data)
stay inside the identity service: the aggregate keeps them in ``details`` for the repository to encrypt,
and nothing of them reaches an event or a log line. Messages are in Bahasa Indonesia and never repeat
a number.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from mpp.contracts.calendar import CalendarNotCovered, ClockPaused, DurationUnit, Pause, WorkingClock
from mpp.contracts.events.common import Sex
from mpp.contracts.events.identity import DocumentApplicationReason, DocumentKind, DocumentMedium
from mpp.contracts.nik import FEMALE_DAY_OFFSET, InvalidNik, parse_kk, parse_nik
from mpp.contracts.workflow import TransitionRefused, Workflow, WorkflowAction
from mpp.identity.domain.citizen import (
    EARLIEST_BIRTH_DATE,
    MAX_NAME_LENGTH,
    MAX_PLACE_LENGTH,
    CitizenStatus,
    IdentityError,
    normalise_text,
    number_problem,
)
from mpp.identity.domain.verification import RegistryEntry, age_on

ADULT_AGE = 17
"""Wajib KTP-el: 17 years old, or married (or once married) whatever the age."""
TRACKING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
DOCUMENT_ISSUED = "DocumentIssued"
MAX_MEMBERS = 20


class DocumentServiceKind(StrEnum):
    """What one civil registry service type does; decides the form and the issued number."""

    KTP_RECORDING = "ktp_recording"
    KTP_PRINTING = "ktp_printing"
    KTP_REPLACEMENT = "ktp_replacement"
    KK_NEW = "kk_new"
    KK_CHANGE = "kk_change"
    BIRTH_CERTIFICATE = "birth_certificate"


SERVICE_KINDS: dict[str, DocumentServiceKind] = {
    "disdukcapil.ktp-el-rekam": DocumentServiceKind.KTP_RECORDING,
    "disdukcapil.ktp-el-cetak": DocumentServiceKind.KTP_PRINTING,
    "disdukcapil.ktp-el-ganti": DocumentServiceKind.KTP_REPLACEMENT,
    "disdukcapil.kk": DocumentServiceKind.KK_NEW,
    "disdukcapil.kk-perubahan": DocumentServiceKind.KK_CHANGE,
    "disdukcapil.akta-kelahiran": DocumentServiceKind.BIRTH_CERTIFICATE,
}
"""The catalogue's civil registry service types that take document applications here."""

DOCUMENT_KINDS: dict[DocumentServiceKind, DocumentKind] = {
    DocumentServiceKind.KTP_RECORDING: DocumentKind.KTP_EL,
    DocumentServiceKind.KTP_PRINTING: DocumentKind.KTP_EL,
    DocumentServiceKind.KTP_REPLACEMENT: DocumentKind.KTP_EL,
    DocumentServiceKind.KK_NEW: DocumentKind.KK,
    DocumentServiceKind.KK_CHANGE: DocumentKind.KK,
    DocumentServiceKind.BIRTH_CERTIFICATE: DocumentKind.AKTA_KELAHIRAN,
}

MEDIUMS: dict[DocumentKind, DocumentMedium] = {
    DocumentKind.KTP_EL: DocumentMedium.PRINTED,
    # KK and akta are printed by the applicant from an electronically signed file (cetak mandiri / TTE).
    DocumentKind.KK: DocumentMedium.ELECTRONIC,
    DocumentKind.AKTA_KELAHIRAN: DocumentMedium.ELECTRONIC,
}

REPLACEMENT_REASONS = frozenset(
    {DocumentApplicationReason.LOST, DocumentApplicationReason.DAMAGED, DocumentApplicationReason.DATA_CHANGE}
)


class DocumentApplicationError(IdentityError):
    """A document application's form is not acceptable. ``message`` is Indonesian and holds no number."""

    def __init__(self, field: str, message: str, code: str = "invalid") -> None:
        super().__init__(f"{field}: {code}")
        self.field = field
        self.message = message
        self.code = code


class DocumentNumberMissing(IdentityError):
    """An action that issues a document was taken without the document's number."""


# The forms, one per kind of service


@dataclass(frozen=True)
class KtpRequest:
    """KTP-el recording, printing or replacement: the citizen's own NIK."""

    nik: str
    reason: DocumentApplicationReason = DocumentApplicationReason.NEW
    married: bool = False
    """Declared married or once married (recording below 17 is then allowed)."""


class MemberChangeKind(StrEnum):
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True)
class MemberChange:
    change: MemberChangeKind
    nik: str


@dataclass(frozen=True)
class KkNewRequest:
    head_nik: str
    member_niks: tuple[str, ...]
    reason: DocumentApplicationReason = DocumentApplicationReason.NEW


@dataclass(frozen=True)
class KkChangeRequest:
    applicant_nik: str
    kk_number: str
    changes: tuple[MemberChange, ...]


@dataclass(frozen=True)
class BirthRequest:
    mother_nik: str
    child_name: str
    child_sex: Sex
    child_birth_date: date
    child_birth_place: str
    father_nik: str | None = None
    register_child: bool = True
    """Register the newborn in the registry with a new NIK when the akta is issued."""


DocumentRequest = KtpRequest | KkNewRequest | KkChangeRequest | BirthRequest


@dataclass(frozen=True)
class AcceptedRequest:
    """A form that passed its rules: who applies, whom it concerns, and the (personal) details to keep."""

    applicant_ref: str
    subject_ref: str | None
    reason: DocumentApplicationReason
    details: dict[str, Any]
    """Personal details for the repository to encrypt: never logged, never in an event."""


def niks_of(request: DocumentRequest) -> list[str]:
    """Every NIK the form names (to look them up in the registry in one query)."""
    match request:
        case KtpRequest(nik=nik):
            return [nik]
        case KkNewRequest(head_nik=head, member_niks=members):
            return [head, *members]
        case KkChangeRequest(applicant_nik=applicant, changes=changes):
            return [applicant, *(c.nik for c in changes)]
        case BirthRequest(mother_nik=mother, father_nik=father):
            return [mother] + ([father] if father else [])


def _nik(nik: str, field: str, today: date, who: str = "NIK") -> date:
    try:
        return parse_nik(nik, today=today).birth_date
    except InvalidNik as exc:
        raise DocumentApplicationError(field, number_problem(who, exc.reason), exc.reason) from None


def _registered(
    nik: str, field: str, registry: Mapping[str, RegistryEntry], today: date, who: str = "NIK"
) -> RegistryEntry:
    _nik(nik, field, today, who)
    entry = registry.get(nik)
    if entry is None:
        raise DocumentApplicationError(
            field, f"{who} tidak terdaftar dalam database kependudukan", "not_registered"
        )
    if entry.status is not CitizenStatus.ACTIVE:
        raise DocumentApplicationError(
            field, f"{who} tidak berstatus aktif dalam database kependudukan", "inactive"
        )
    return entry


def accept(
    kind: DocumentServiceKind,
    request: DocumentRequest,
    *,
    registry: Mapping[str, RegistryEntry],
    today: date,
) -> AcceptedRequest:
    """Check a form against its service's rules and the registry; raises :class:`DocumentApplicationError`."""
    match kind, request:
        case (
            DocumentServiceKind.KTP_RECORDING
            | DocumentServiceKind.KTP_PRINTING
            | DocumentServiceKind.KTP_REPLACEMENT,
            KtpRequest(),
        ):
            return _accept_ktp(kind, request, registry, today)
        case DocumentServiceKind.KK_NEW, KkNewRequest():
            return _accept_kk_new(request, registry, today)
        case DocumentServiceKind.KK_CHANGE, KkChangeRequest():
            return _accept_kk_change(request, registry, today)
        case DocumentServiceKind.BIRTH_CERTIFICATE, BirthRequest():
            return _accept_birth(request, registry, today)
    raise DocumentApplicationError(
        "service_type", "Isian permohonan tidak sesuai dengan jenis layanan yang dipilih", "wrong_form"
    )


def _accept_ktp(
    kind: DocumentServiceKind, request: KtpRequest, registry: Mapping[str, RegistryEntry], today: date
) -> AcceptedRequest:
    entry = _registered(request.nik, "nik", registry, today)
    reason = request.reason
    if kind is DocumentServiceKind.KTP_RECORDING:
        born = _nik(request.nik, "nik", today)
        if age_on(born, today) < ADULT_AGE and not request.married:
            raise DocumentApplicationError(
                "nik",
                "Perekaman KTP-el hanya untuk penduduk berusia 17 tahun atau lebih, atau yang sudah/pernah kawin",
                "too_young",
            )
        reason = DocumentApplicationReason.NEW
    elif kind is DocumentServiceKind.KTP_REPLACEMENT:
        if reason not in REPLACEMENT_REASONS:
            raise DocumentApplicationError(
                "reason",
                "Alasan penggantian KTP-el harus hilang (lost), rusak (damaged) atau perubahan data (data_change)",
                "reason_invalid",
            )
    elif reason not in (DocumentApplicationReason.NEW, DocumentApplicationReason.DATA_CHANGE):
        raise DocumentApplicationError(
            "reason",
            "Pencetakan KTP-el untuk KTP-el baru (new) atau perubahan data (data_change); "
            "KTP-el hilang atau rusak diajukan melalui layanan penggantian",
            "reason_invalid",
        )
    return AcceptedRequest(
        applicant_ref=entry.citizen_ref,
        subject_ref=None,
        reason=reason,
        details={"nik": request.nik, "married": request.married},
    )


def _accept_kk_new(
    request: KkNewRequest, registry: Mapping[str, RegistryEntry], today: date
) -> AcceptedRequest:
    head = _registered(request.head_nik, "head_nik", registry, today, "NIK kepala keluarga")
    if len(request.member_niks) > MAX_MEMBERS:
        raise DocumentApplicationError(
            "member_niks", f"Anggota keluarga paling banyak {MAX_MEMBERS} orang", "too_many"
        )
    for i, nik in enumerate(request.member_niks):
        _nik(nik, f"member_niks[{i}]", today, "NIK anggota keluarga")
    everyone = [request.head_nik, *request.member_niks]
    if len(set(everyone)) != len(everyone):
        raise DocumentApplicationError(
            "member_niks",
            "NIK anggota keluarga tidak boleh ganda atau sama dengan NIK kepala keluarga",
            "duplicate",
        )
    return AcceptedRequest(
        applicant_ref=head.citizen_ref,
        subject_ref=None,
        reason=request.reason,
        details={"head_nik": request.head_nik, "member_niks": list(request.member_niks)},
    )


def _accept_kk_change(
    request: KkChangeRequest, registry: Mapping[str, RegistryEntry], today: date
) -> AcceptedRequest:
    applicant = _registered(request.applicant_nik, "applicant_nik", registry, today, "NIK pemohon")
    try:
        parse_kk(request.kk_number, today=today)
    except InvalidNik as exc:
        raise DocumentApplicationError(
            "kk_number", number_problem("nomor KK", exc.reason), exc.reason
        ) from None
    if not request.changes:
        raise DocumentApplicationError(
            "changes", "Sebutkan paling sedikit satu perubahan anggota keluarga", "required"
        )
    if len(request.changes) > MAX_MEMBERS:
        raise DocumentApplicationError(
            "changes", f"Perubahan anggota keluarga paling banyak {MAX_MEMBERS}", "too_many"
        )
    for i, change in enumerate(request.changes):
        _nik(change.nik, f"changes[{i}].nik", today, "NIK anggota keluarga")
    niks = [c.nik for c in request.changes]
    if len(set(niks)) != len(niks):
        raise DocumentApplicationError(
            "changes", "Setiap anggota keluarga hanya boleh diubah satu kali", "duplicate"
        )
    return AcceptedRequest(
        applicant_ref=applicant.citizen_ref,
        subject_ref=None,
        reason=DocumentApplicationReason.DATA_CHANGE,
        details={
            "applicant_nik": request.applicant_nik,
            "kk_number": request.kk_number,
            "changes": [{"change": c.change.value, "nik": c.nik} for c in request.changes],
        },
    )


def _accept_birth(
    request: BirthRequest, registry: Mapping[str, RegistryEntry], today: date
) -> AcceptedRequest:
    mother = _registered(request.mother_nik, "mother_nik", registry, today, "NIK ibu")
    father = None
    if request.father_nik:
        father = _registered(request.father_nik, "father_nik", registry, today, "NIK ayah")
        if request.father_nik == request.mother_nik:
            raise DocumentApplicationError(
                "father_nik", "NIK ayah tidak boleh sama dengan NIK ibu", "duplicate"
            )
    name = normalise_text(request.child_name)
    if not 2 <= len(name) <= MAX_NAME_LENGTH or not any(ch.isalpha() for ch in name):
        raise DocumentApplicationError("child_name", "Nama anak harus berisi 2-200 karakter dan memuat huruf")
    place = normalise_text(request.child_birth_place)
    if not 1 <= len(place) <= MAX_PLACE_LENGTH:
        raise DocumentApplicationError("child_birth_place", "Tempat lahir anak harus berisi 1-100 karakter")
    born = request.child_birth_date
    if born > today:
        raise DocumentApplicationError("child_birth_date", "Tanggal lahir anak tidak boleh setelah hari ini")
    if born < EARLIEST_BIRTH_DATE:
        raise DocumentApplicationError(
            "child_birth_date", "Tanggal lahir anak tidak boleh sebelum tahun 1900"
        )
    if born <= mother.birth_date:
        raise DocumentApplicationError(
            "child_birth_date", "Tanggal lahir anak harus setelah tanggal lahir ibu", "before_parent"
        )
    if father is not None and born <= father.birth_date:
        raise DocumentApplicationError(
            "child_birth_date", "Tanggal lahir anak harus setelah tanggal lahir ayah", "before_parent"
        )
    return AcceptedRequest(
        applicant_ref=mother.citizen_ref,
        subject_ref=None,
        reason=DocumentApplicationReason.NEW,
        details={
            "mother_nik": request.mother_nik,
            "father_nik": request.father_nik,
            "child_name": name,
            "child_sex": request.child_sex.value,
            "child_birth_date": born.isoformat(),
            "child_birth_place": place,
            "register_child": request.register_child,
        },
    )


# Document numbers


def kk_number(*, region: str, issued_on: date, serial: int) -> str:
    """A KK number: 6-digit region (province, kab/kota, kecamatan), issue date DDMMYY, 4-digit serial."""
    if not (len(region) == 6 and region.isdigit()) or not 1 <= serial <= 9999:
        raise ValueError("a KK number needs a 6-digit region and a serial from 1 to 9999")
    return f"{region}{issued_on:%d%m%y}{serial:04d}"


def birth_register_number(*, kabkota: str, registered_on: date, serial: int) -> str:
    """Register number of an akta kelahiran, e.g. ``3273-LT-23112026-0001`` (LT: lahir)."""
    return f"{kabkota}-LT-{registered_on:%d%m%Y}-{serial:04d}"


def newborn_nik(*, region: str, birth_date: date, sex: Sex, serial: int) -> str:
    """A new NIK: 6-digit region (province, kab/kota, kecamatan), birth date DDMMYY (women add 40 to
    the day) and a 4-digit serial among the people of that region born that day."""
    if not (len(region) == 6 and region.isdigit()) or not 1 <= serial <= 9999:
        raise ValueError("a NIK needs a 6-digit region and a serial from 1 to 9999")
    day = birth_date.day + (FEMALE_DAY_OFFSET if sex is Sex.FEMALE else 0)
    return f"{region}{day:02d}{birth_date:%m%y}{serial:04d}"


def newborn_region(*, mother_nik: str, mother_kabkota: str, site_kabkota: str) -> str:
    """Where a newborn's NIK is numbered: the mother's kecamatan when her NIK is of her domicile's
    kab/kota, otherwise the first kecamatan (01) of her domicile, or of the site when unknown."""
    kabkota = mother_kabkota if len(mother_kabkota) == 4 and mother_kabkota.isdigit() else site_kabkota
    district = mother_nik[4:6] if mother_nik[:4] == kabkota and mother_nik[4:6] != "00" else "01"
    return kabkota + district


def kk_region(*, site_kabkota: str, head_nik: str) -> str:
    """The KK's 6-digit region: the site's kab/kota and the head of family's kecamatan when the NIK is
    of the same kab/kota (else the kab/kota's first kecamatan, 01)."""
    district = head_nik[4:6] if head_nik[:4] == site_kabkota and head_nik[4:6] != "00" else "01"
    return site_kabkota + district


# The aggregate


@dataclass(frozen=True)
class Submitted:
    at: datetime


@dataclass(frozen=True)
class Returned:
    officer: str
    missing: tuple[str, ...]
    note: str
    at: datetime


@dataclass(frozen=True)
class Rejected:
    officer: str
    reason_code: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class Issued:
    document_ref: str
    medium: DocumentMedium
    at: datetime
    working_days_elapsed: int | None
    within_sla: bool | None


DomainEvent = Submitted | Returned | Rejected | Issued


@dataclass
class DocumentApplication:
    id: str
    tracking_code: str
    service_type: str
    kind: DocumentServiceKind
    agency: str
    site: str
    channel: str
    applicant_ref: str
    subject_ref: str | None
    reason: DocumentApplicationReason
    submitted_at: datetime
    submitted_by: str
    documents: list[dict[str, Any]]
    details: dict[str, Any] = field(repr=False)
    workflow: Workflow = field(compare=False, repr=False)
    clock: WorkingClock = field(compare=False, repr=False)
    state: str = ""
    pauses: list[Pause] = field(default_factory=list)
    due_at: datetime | None = None
    last_note: str | None = None
    missing: tuple[str, ...] = ()
    issued_at: datetime | None = None
    document_ref: str | None = None
    document_number: str | None = field(default=None, repr=False)
    medium: DocumentMedium | None = None
    working_days_elapsed: int | None = None
    within_sla: bool | None = None
    version: int = 0
    events: list[DomainEvent] = field(default_factory=list, compare=False, repr=False)

    @property
    def document_kind(self) -> DocumentKind:
        return DOCUMENT_KINDS[self.kind]

    @classmethod
    def submit(
        cls,
        *,
        application_id: str,
        tracking_code: str,
        service_type: str,
        kind: DocumentServiceKind,
        agency: str,
        site: str,
        channel: str,
        accepted: AcceptedRequest,
        documents: Sequence[Mapping[str, Any]],
        submitted_at: datetime,
        submitted_by: str,
        workflow: Workflow,
        clock: WorkingClock,
    ) -> DocumentApplication:
        app = cls(
            id=application_id,
            tracking_code=tracking_code,
            service_type=service_type,
            kind=kind,
            agency=agency,
            site=site,
            channel=channel,
            applicant_ref=accepted.applicant_ref,
            subject_ref=accepted.subject_ref,
            reason=accepted.reason,
            submitted_at=submitted_at,
            submitted_by=submitted_by,
            documents=[dict(d) for d in documents],
            details=dict(accepted.details),
            workflow=workflow,
            clock=clock,
            state=workflow.initial_state.code,
        )
        app._recompute_due()
        app.events.append(Submitted(submitted_at))
        return app

    # Workflow

    def check(self, action_code: str, roles: Collection[str], reason: str | None = None) -> WorkflowAction:
        """The action if someone with ``roles`` may take it now; raises the workflow's refusals."""
        return self.workflow.apply(self.state, action_code, roles, reason=reason)

    def act(
        self,
        action_code: str,
        roles: Collection[str],
        at: datetime,
        *,
        actor: str,
        reason: str | None = None,
        missing: Sequence[str] = (),
        document_number: str | None = None,
        document_ref: str | None = None,
    ) -> WorkflowAction:
        """Take an action of the workflow, moving the SLA clock and recording what happened."""
        action = self.check(action_code, roles, reason)
        if action.emits == DOCUMENT_ISSUED and not (document_number and document_ref):
            raise DocumentNumberMissing(action_code)
        before = self.state
        self.state = action.to_state
        self._move_clock(before, at)
        note = (reason or "").strip()
        match action.emits:
            case "DocumentApplicationReturned":
                self.last_note, self.missing = note, tuple(missing)
                self.events.append(Returned(actor, tuple(missing), note, at))
            case "DocumentApplicationRejected":
                self.last_note = note
                self.events.append(Rejected(actor, action.code, note, at))
            case "DocumentIssued":
                assert document_number is not None and document_ref is not None
                self.document_number, self.document_ref = document_number, document_ref
                self.medium = MEDIUMS[self.document_kind]
                self.issued_at = at
                self.working_days_elapsed = self._working_days_used(at)
                self.within_sla = None if self.due_at is None else at <= self.due_at
                self.events.append(
                    Issued(document_ref, self.medium, at, self.working_days_elapsed, self.within_sla)
                )
        return action

    def allowed_actions(self, roles: Collection[str]) -> list[str]:
        return [a.code for a in self.workflow.allowed_actions(self.state, roles)]

    def issuing_action(self, action_code: str) -> bool:
        """Whether ``action_code`` from the current state would issue the document."""
        found = next((a for a in self.workflow.actions_from(self.state) if a.code == action_code), None)
        return found is not None and found.emits == DOCUMENT_ISSUED

    @property
    def finished(self) -> bool:
        return self.workflow.is_finished(self.state)

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    @property
    def state_label(self) -> str:
        return self.workflow.state(self.state).label

    def due_on(self) -> date | None:
        """The local date the application is due (``sla_due_on``), if known."""
        return None if self.due_at is None else self.due_at.astimezone(self.clock.tz).date()

    # SLA clock

    def _move_clock(self, before: str, at: datetime) -> None:
        runs_before = self.workflow.clock_runs_in(before) and not self.workflow.is_finished(before)
        runs_now = self.workflow.clock_runs_in(self.state)
        if runs_before and not runs_now and not self.finished:
            self.pauses.append((at, None))
        elif self.paused and (runs_now or self.finished):
            self.pauses[-1] = (self.pauses[-1][0], at)
        if not self.workflow.is_finished(before):
            self._recompute_due()

    def _working_days_used(self, at: datetime) -> int | None:
        if self.workflow.total_sla.unit != DurationUnit.WORKING_DAYS:
            return None
        try:
            return self.clock.elapsed(self.submitted_at, at, DurationUnit.WORKING_DAYS, self.pauses)
        except CalendarNotCovered:
            return None

    def _recompute_due(self) -> None:
        try:
            self.due_at = self.clock.due(self.submitted_at, self.workflow.total_sla, self.pauses)
        except (ClockPaused, CalendarNotCovered):
            # Paused: unknown until the clock runs again; a year the calendar does not list: unknown.
            self.due_at = None


def new_tracking_code() -> str:
    """A short code a citizen can type: 10 characters without look-alikes (0/O, 1/I)."""
    return "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(10))


__all__ = [
    "DOCUMENT_ISSUED",
    "SERVICE_KINDS",
    "AcceptedRequest",
    "BirthRequest",
    "DocumentApplication",
    "DocumentApplicationError",
    "DocumentServiceKind",
    "KkChangeRequest",
    "KkNewRequest",
    "KtpRequest",
    "MemberChange",
    "MemberChangeKind",
    "TransitionRefused",
    "accept",
    "birth_register_number",
    "kk_number",
    "kk_region",
    "newborn_nik",
    "newborn_region",
    "niks_of",
]
