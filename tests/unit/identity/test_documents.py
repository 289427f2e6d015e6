"""Document applications in the domain: the form rules of each kind, the six catalogue workflows driven
to their end, the SLA clock (paused while returned) and the document numbers."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.events.common import Sex
from mpp.contracts.events.identity import DocumentApplicationReason, DocumentMedium
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.contracts.nik import generate_test_nik, parse_kk, parse_nik
from mpp.contracts.workflow import ReasonRequired, RoleRefused, TransitionRefused
from mpp.identity.domain.citizen import CitizenStatus
from mpp.identity.domain.documents import (
    SERVICE_KINDS,
    AcceptedRequest,
    BirthRequest,
    DocumentApplication,
    DocumentApplicationError,
    DocumentNumberMissing,
    DocumentServiceKind,
    Issued,
    KkChangeRequest,
    KkNewRequest,
    KtpRequest,
    MemberChange,
    MemberChangeKind,
    Rejected,
    Returned,
    Submitted,
    accept,
    birth_register_number,
    kk_number,
    kk_region,
    newborn_nik,
    newborn_region,
)
from mpp.identity.domain.verification import RegistryEntry

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 3)
SUBMITTED_AT = datetime(2026, 11, 3, 2, 15, tzinfo=UTC)  # Tuesday 09:15 WIB
CATALOGUE = load_demo_catalogue()
CLOCK = WorkingClock.for_site(CATALOGUE, CATALOGUE.sites[0].code)


def _nik(seed: int, born: date = date(1985, 7, 5), sex: Sex = Sex.FEMALE) -> str:
    return generate_test_nik(
        random.Random(seed), province_code="32", regency=98, birth_date=born, sex=sex, today=TODAY
    )


def _entry(nik: str, born: date, status: CitizenStatus = CitizenStatus.ACTIVE) -> RegistryEntry:
    return RegistryEntry(
        citizen_ref=f"c_{nik[-8:]}ref00000", birth_date=born, status=status, domicile_kabkota="3298"
    )


ADULT = _nik(1)
TEEN_BORN = date(2010, 1, 1)
TEEN = _nik(2, TEEN_BORN)
HEAD = _nik(3, date(1980, 2, 2), Sex.MALE)
REGISTRY = {
    ADULT: _entry(ADULT, date(1985, 7, 5)),
    TEEN: _entry(TEEN, TEEN_BORN),
    HEAD: _entry(HEAD, date(1980, 2, 2)),
}


def _problem(kind: DocumentServiceKind, request: object) -> DocumentApplicationError:
    with pytest.raises(DocumentApplicationError) as caught:
        accept(kind, request, registry=REGISTRY, today=TODAY)  # type: ignore[arg-type]
    return caught.value


class TestKtpRules:
    def test_recording_accepts_an_adult_and_names_them_applicant(self) -> None:
        accepted = accept(
            DocumentServiceKind.KTP_RECORDING, KtpRequest(ADULT), registry=REGISTRY, today=TODAY
        )

        assert accepted.applicant_ref == REGISTRY[ADULT].citizen_ref
        assert accepted.details["nik"] == ADULT

    def test_recording_refuses_a_16_year_old(self) -> None:
        error = _problem(DocumentServiceKind.KTP_RECORDING, KtpRequest(TEEN))

        assert error.code == "too_young"
        assert "17 tahun" in error.message
        assert TEEN not in error.message

    def test_recording_accepts_a_married_16_year_old(self) -> None:
        accepted = accept(
            DocumentServiceKind.KTP_RECORDING, KtpRequest(TEEN, married=True), registry=REGISTRY, today=TODAY
        )

        assert accepted.details["married"] is True

    def test_printing_needs_a_registered_citizen(self) -> None:
        error = _problem(DocumentServiceKind.KTP_PRINTING, KtpRequest(_nik(99)))

        assert error.code == "not_registered"
        assert error.message == "NIK tidak terdaftar dalam database kependudukan"

    def test_a_deceased_citizen_is_refused(self) -> None:
        dead = _nik(98)
        registry = {dead: _entry(dead, date(1985, 7, 5), CitizenStatus.DECEASED)}

        with pytest.raises(DocumentApplicationError) as caught:
            accept(DocumentServiceKind.KTP_PRINTING, KtpRequest(dead), registry=registry, today=TODAY)

        assert caught.value.code == "inactive"

    def test_a_malformed_nik_names_the_failing_part(self) -> None:
        error = _problem(DocumentServiceKind.KTP_PRINTING, KtpRequest("12345"))

        assert error.code == "length"
        assert error.message == "NIK harus terdiri dari 16 digit angka"

    @pytest.mark.parametrize(
        "reason",
        [
            DocumentApplicationReason.LOST,
            DocumentApplicationReason.DAMAGED,
            DocumentApplicationReason.DATA_CHANGE,
        ],
    )
    def test_replacement_accepts_lost_damaged_or_data_change(self, reason: DocumentApplicationReason) -> None:
        accepted = accept(
            DocumentServiceKind.KTP_REPLACEMENT,
            KtpRequest(ADULT, reason=reason),
            registry=REGISTRY,
            today=TODAY,
        )

        assert accepted.reason is reason

    def test_replacement_without_a_replacement_reason_is_refused(self) -> None:
        error = _problem(DocumentServiceKind.KTP_REPLACEMENT, KtpRequest(ADULT))

        assert error.field == "reason"

    def test_printing_a_lost_card_points_to_the_replacement_service(self) -> None:
        error = _problem(
            DocumentServiceKind.KTP_PRINTING, KtpRequest(ADULT, reason=DocumentApplicationReason.LOST)
        )

        assert "penggantian" in error.message


class TestKkRules:
    def test_a_new_kk_needs_a_registered_head(self) -> None:
        error = _problem(DocumentServiceKind.KK_NEW, KkNewRequest(_nik(97), (ADULT,)))

        assert error.field == "head_nik"
        assert error.message == "NIK kepala keluarga tidak terdaftar dalam database kependudukan"

    def test_a_new_kk_refuses_the_head_twice(self) -> None:
        error = _problem(DocumentServiceKind.KK_NEW, KkNewRequest(HEAD, (ADULT, HEAD)))

        assert error.code == "duplicate"

    def test_a_new_kk_checks_member_niks(self) -> None:
        error = _problem(DocumentServiceKind.KK_NEW, KkNewRequest(HEAD, (ADULT, "32980")))

        assert error.field == "member_niks[1]"

    def test_a_kk_change_checks_the_kk_structure(self) -> None:
        bad_date = "3298013213250001"  # day 32
        error = _problem(
            DocumentServiceKind.KK_CHANGE,
            KkChangeRequest(HEAD, bad_date, (MemberChange(MemberChangeKind.ADD, ADULT),)),
        )

        assert error.field == "kk_number"
        assert error.code == "issue_date_invalid"

    def test_a_kk_change_needs_a_change(self) -> None:
        error = _problem(DocumentServiceKind.KK_CHANGE, KkChangeRequest(HEAD, "3298010203150001", ()))

        assert error.field == "changes"

    def test_a_valid_kk_change_is_a_data_change(self) -> None:
        accepted = accept(
            DocumentServiceKind.KK_CHANGE,
            KkChangeRequest(HEAD, "3298010203150001", (MemberChange(MemberChangeKind.REMOVE, ADULT),)),
            registry=REGISTRY,
            today=TODAY,
        )

        assert accepted.reason is DocumentApplicationReason.DATA_CHANGE
        assert accepted.details["changes"] == [{"change": "remove", "nik": ADULT}]


def _birth(**overrides: object) -> BirthRequest:
    values: dict[str, object] = {
        "mother_nik": ADULT,
        "child_name": "  Bayi   Uji ",
        "child_sex": Sex.MALE,
        "child_birth_date": date(2026, 10, 30),
        "child_birth_place": "Kota Sukamaju",
    }
    return BirthRequest(**(values | overrides))  # type: ignore[arg-type]


class TestBirthRules:
    def test_a_valid_birth_names_the_mother_applicant_and_normalises_the_name(self) -> None:
        accepted = accept(DocumentServiceKind.BIRTH_CERTIFICATE, _birth(), registry=REGISTRY, today=TODAY)

        assert accepted.applicant_ref == REGISTRY[ADULT].citizen_ref
        assert accepted.details["child_name"] == "Bayi Uji"

    def test_a_birth_in_the_future_is_refused(self) -> None:
        error = _problem(
            DocumentServiceKind.BIRTH_CERTIFICATE, _birth(child_birth_date=TODAY + timedelta(days=1))
        )

        assert error.field == "child_birth_date"

    def test_a_birth_before_the_father_is_refused(self) -> None:
        young_father = _nik(5, date(2000, 1, 1), Sex.MALE)
        registry = REGISTRY | {young_father: _entry(young_father, date(2000, 1, 1))}

        with pytest.raises(DocumentApplicationError) as caught:
            accept(
                DocumentServiceKind.BIRTH_CERTIFICATE,
                _birth(father_nik=young_father, child_birth_date=date(1999, 5, 5)),
                registry=registry,
                today=TODAY,
            )

        assert caught.value.message == "Tanggal lahir anak harus setelah tanggal lahir ayah"

    def test_an_unregistered_father_is_refused(self) -> None:
        error = _problem(DocumentServiceKind.BIRTH_CERTIFICATE, _birth(father_nik=_nik(96, sex=Sex.MALE)))

        assert error.field == "father_nik"

    def test_a_name_without_letters_is_refused(self) -> None:
        error = _problem(DocumentServiceKind.BIRTH_CERTIFICATE, _birth(child_name="1234"))

        assert error.field == "child_name"

    def test_the_wrong_form_for_the_service_is_refused(self) -> None:
        error = _problem(DocumentServiceKind.BIRTH_CERTIFICATE, KtpRequest(ADULT))

        assert error.code == "wrong_form"


def _application(service_type: str) -> DocumentApplication:
    kind = SERVICE_KINDS[service_type]
    workflow = CATALOGUE.service_workflow(service_type)
    assert workflow is not None
    return DocumentApplication.submit(
        application_id="app-1",
        tracking_code="ABCDEFGHJK",
        service_type=service_type,
        kind=kind,
        agency="disdukcapil",
        site="mpp-kota-sukamaju",
        channel="walk_in",
        accepted=AcceptedRequest("c_ref0000001", None, DocumentApplicationReason.NEW, {"nik": ADULT}),
        documents=[],
        submitted_at=SUBMITTED_AT,
        submitted_by="officer-1",
        workflow=workflow,
        clock=CLOCK,
    )


OFFICER = frozenset({"officer"})
SUPERVISOR = frozenset({"supervisor"})
CITIZEN = frozenset({"citizen"})

PATHS = [
    ("disdukcapil.ktp-el-rekam", [("record", OFFICER)], "recorded", False),
    ("disdukcapil.ktp-el-cetak", [("verify", OFFICER), ("print", OFFICER)], "issued", True),
    ("disdukcapil.ktp-el-ganti", [("verify", OFFICER), ("print", OFFICER)], "issued", True),
    ("disdukcapil.kk", [("verify", OFFICER), ("issue", OFFICER)], "issued", True),
    (
        "disdukcapil.kk-perubahan",
        [("verify", OFFICER), ("update_members", OFFICER), ("issue", OFFICER)],
        "issued",
        True,
    ),
    (
        "disdukcapil.akta-kelahiran",
        [("verify", OFFICER), ("register", OFFICER), ("sign", SUPERVISOR)],
        "issued",
        True,
    ),
]


class TestWorkflows:
    @pytest.mark.parametrize(("service_type", "path", "end", "issues"), PATHS)
    def test_each_service_reaches_its_end(
        self, service_type: str, path: list[tuple[str, frozenset[str]]], end: str, issues: bool
    ) -> None:
        app = _application(service_type)
        at = SUBMITTED_AT
        for action, roles in path:
            at += timedelta(minutes=5)
            kwargs = {"document_number": ADULT, "document_ref": "doc_1"} if app.issuing_action(action) else {}
            app.act(action, roles, at, actor="o-1", **kwargs)

        assert app.state == end
        assert app.finished
        assert isinstance(app.events[0], Submitted)
        issued = [e for e in app.events if isinstance(e, Issued)]
        assert len(issued) == (1 if issues else 0)
        if issues:
            assert issued[0].within_sla is True
            assert issued[0].working_days_elapsed == 0

    @pytest.mark.parametrize("service_type", sorted(SERVICE_KINDS))
    def test_every_service_can_be_returned_resubmitted_and_rejected(self, service_type: str) -> None:
        app = _application(service_type)

        app.act(
            "return",
            OFFICER,
            SUBMITTED_AT + timedelta(minutes=1),
            actor="o-1",
            reason="Lengkapi",
            missing=["kk"],
        )
        assert app.paused
        app.act("resubmit", CITIZEN, SUBMITTED_AT + timedelta(minutes=2), actor="c")
        assert not app.paused
        app.act(
            "reject",
            SUPERVISOR,
            SUBMITTED_AT + timedelta(minutes=3),
            actor="s-1",
            reason="Tidak memenuhi syarat",
        )

        assert app.state == "rejected"
        kinds = [type(e) for e in app.events]
        assert kinds == [Submitted, Returned, Rejected]
        rejected = app.events[-1]
        assert isinstance(rejected, Rejected) and rejected.reason_code == "reject"

    def test_issuing_without_a_number_is_refused(self) -> None:
        app = _application("disdukcapil.kk")
        app.act("verify", OFFICER, SUBMITTED_AT, actor="o-1")

        with pytest.raises(DocumentNumberMissing):
            app.act("issue", OFFICER, SUBMITTED_AT, actor="o-1")

    def test_refusals_name_state_role_and_reason(self) -> None:
        app = _application("disdukcapil.ktp-el-cetak")

        with pytest.raises(TransitionRefused) as wrong_state:
            app.act("print", OFFICER, SUBMITTED_AT, actor="o-1")
        with pytest.raises(RoleRefused):
            app.act("reject", OFFICER, SUBMITTED_AT, actor="o-1", reason="x")
        with pytest.raises(ReasonRequired):
            app.act("return", OFFICER, SUBMITTED_AT, actor="o-1")

        assert wrong_state.value.allowed == ["verify", "return"]

    def test_the_medium_follows_the_document(self) -> None:
        ktp = _application("disdukcapil.ktp-el-cetak")
        ktp.act("verify", OFFICER, SUBMITTED_AT, actor="o")
        ktp.act("print", OFFICER, SUBMITTED_AT, actor="o", document_number=ADULT, document_ref="doc_1")
        kk = _application("disdukcapil.kk")
        kk.act("verify", OFFICER, SUBMITTED_AT, actor="o")
        kk.act("issue", OFFICER, SUBMITTED_AT, actor="o", document_number="x", document_ref="doc_2")

        assert ktp.medium is DocumentMedium.PRINTED
        assert kk.medium is DocumentMedium.ELECTRONIC


class TestSlaClock:
    def test_due_the_next_working_day_at_closing(self) -> None:
        app = _application("disdukcapil.kk")

        assert app.due_on() == date(2026, 11, 4)

    def test_a_return_stops_the_clock_and_pushes_the_due_date(self) -> None:
        app = _application("disdukcapil.kk")
        app.act("return", OFFICER, SUBMITTED_AT + timedelta(hours=1), actor="o", reason="Lengkapi")
        assert app.due_on() is None

        app.act("resubmit", CITIZEN, SUBMITTED_AT + timedelta(days=7), actor="c")  # Tuesday 10 Nov
        app.act("verify", OFFICER, SUBMITTED_AT + timedelta(days=8), actor="o")
        app.act(
            "issue",
            OFFICER,
            SUBMITTED_AT + timedelta(days=8),
            actor="o",
            document_number="x",
            document_ref="d",
        )

        assert app.events and isinstance(app.events[-1], Issued)
        assert app.due_on() == date(2026, 11, 11)
        assert app.within_sla is True
        assert app.working_days_elapsed == 1

    def test_late_issue_is_outside_the_sla(self) -> None:
        app = _application("disdukcapil.kk")
        app.act("verify", OFFICER, SUBMITTED_AT, actor="o")
        app.act(
            "issue",
            OFFICER,
            SUBMITTED_AT + timedelta(days=6),
            actor="o",
            document_number="x",
            document_ref="d",
        )

        assert app.within_sla is False
        assert app.working_days_elapsed == 4

    def test_recording_has_a_minutes_sla_and_no_working_days(self) -> None:
        app = _application("disdukcapil.ktp-el-rekam")

        assert app.due_at == SUBMITTED_AT + timedelta(minutes=30)


class TestNumbers:
    def test_a_kk_number_passes_the_structure_check(self) -> None:
        number = kk_number(region="329801", issued_on=TODAY, serial=7)

        assert number == "3298010311260007"
        assert parse_kk(number, today=TODAY).issued_on == TODAY

    def test_the_kk_region_takes_the_heads_kecamatan_in_the_sites_kabkota(self) -> None:
        assert kk_region(site_kabkota="3298", head_nik="3298050101800001") == "329805"
        assert kk_region(site_kabkota="3298", head_nik="3273050101800001") == "329801"

    def test_a_birth_register_number(self) -> None:
        assert birth_register_number(kabkota="3273", registered_on=date(2026, 11, 23), serial=1) == (
            "3273-LT-23112026-0001"
        )

    def test_a_serial_beyond_9999_is_refused(self) -> None:
        with pytest.raises(ValueError):
            kk_number(region="329801", issued_on=TODAY, serial=10_000)


class TestNewbornNik:
    def test_a_girls_nik_adds_40_to_the_day_and_parses_back(self) -> None:
        nik = newborn_nik(region="329805", birth_date=date(2026, 10, 30), sex=Sex.FEMALE, serial=3)

        assert nik == "3298057010260003"
        parsed = parse_nik(nik, today=TODAY)
        assert parsed.birth_date == date(2026, 10, 30)
        assert parsed.sex is Sex.FEMALE

    def test_a_boys_nik_keeps_the_day(self) -> None:
        assert newborn_nik(region="329805", birth_date=date(2026, 10, 3), sex=Sex.MALE, serial=12) == (
            "3298050310260012"
        )

    def test_the_region_is_the_mothers_kecamatan_in_her_domicile(self) -> None:
        assert (
            newborn_region(mother_nik="3298074505850001", mother_kabkota="3298", site_kabkota="3273")
            == "329807"
        )
        assert (
            newborn_region(mother_nik="3173074505850001", mother_kabkota="3298", site_kabkota="3273")
            == "329801"
        )
