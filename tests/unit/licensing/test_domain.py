"""The permit application aggregate: permit numbers, tracking codes, workflows and the SLA clock."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.contracts.workflow import ReasonRequired, RoleRefused, TransitionRefused
from mpp.licensing.domain.model import (
    TRACKING_ALPHABET,
    Application,
    Approved,
    PermitGranted,
    PermitNumberMissing,
    PermitRevoked,
    Rejected,
    Resubmitted,
    Returned,
    SlaBreached,
    SlaStatus,
    Submitted,
    Verified,
    format_permit_number,
    new_tracking_code,
)

pytestmark = pytest.mark.unit

SUBMITTED_AT = datetime(2026, 11, 3, 1, 15, tzinfo=UTC)
APPROVED_AT = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
PERMIT_NUMBER = re.compile(r"^(\d{4,})/([A-Z0-9-]+)/([A-Z0-9]+)/([IVX]+)/(\d{4})$")


CATALOGUE = load_demo_catalogue()
CLOCK = WorkingClock.for_site(CATALOGUE, "mpp-kota-sukamaju")
WIB = CLOCK.tz
OFFICER = {"officer"}
SUPERVISOR = {"supervisor"}
CITIZEN = {"citizen"}
NUMBER = "0001/DPMPTSP/PBG/XI/2026"


def _submitted(workflow: str = "izin-usaha-sektor", at: datetime = SUBMITTED_AT) -> Application:
    """Submitted Tuesday 3 November 2026, 08:15 WIB, its NIK verified at once."""
    app = Application.submit(
        application_id="app-1",
        tracking_code="ABCDEFGHJK",
        service_type="dpmptsp.pbg",
        agency="dpmptsp",
        site="mpp-kota-sukamaju",
        channel="walk_in",
        submitted_at=at,
        documents=3,
        workflow=CATALOGUE.workflow(workflow),
        clock=CLOCK,
        verification_request_id="req-1",
    )
    assert app.nik_verified("c_0123456789abcdef")
    return app


def _wib(day: int, hour: int = 10, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=WIB)


class TestFormatPermitNumber:
    def test_follows_the_regional_decree_style(self) -> None:
        number = format_permit_number(
            sequence=42, agency="dpmptsp", service_short="pbg", issued_at=datetime(2026, 11, 5, tzinfo=UTC)
        )

        assert number == "0042/DPMPTSP/PBG/XI/2026"

    @pytest.mark.parametrize(("month", "roman"), list(enumerate(ROMAN, start=1)))
    def test_writes_the_month_in_roman_numerals(self, month: int, roman: str) -> None:
        number = format_permit_number(
            sequence=7, agency="dpmptsp", service_short="nib", issued_at=datetime(2027, month, 28, tzinfo=UTC)
        )

        assert number == f"0007/DPMPTSP/NIB/{roman}/2027"

    def test_sequence_beyond_four_digits_is_not_truncated(self) -> None:
        number = format_permit_number(
            sequence=12345, agency="dpmptsp", service_short="pbg", issued_at=datetime(2026, 1, 2, tzinfo=UTC)
        )

        assert number == "12345/DPMPTSP/PBG/I/2026"

    @given(
        sequence=st.integers(min_value=1, max_value=99_999),
        issued_at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    )
    def test_number_holds_sequence_month_and_year_of_issue(self, sequence: int, issued_at: datetime) -> None:
        number = format_permit_number(
            sequence=sequence, agency="dpmptsp", service_short="pbg", issued_at=issued_at
        )

        match = PERMIT_NUMBER.fullmatch(number)
        assert match is not None
        assert int(match.group(1)) == sequence
        assert match.group(4) == ROMAN[issued_at.month - 1]
        assert int(match.group(5)) == issued_at.year


class TestNewTrackingCode:
    def test_has_ten_characters_from_the_tracking_alphabet(self) -> None:
        code = new_tracking_code()

        assert len(code) == 10
        assert set(code) <= set(TRACKING_ALPHABET)

    def test_alphabet_has_no_look_alike_characters(self) -> None:
        assert set(TRACKING_ALPHABET) == set(string.ascii_uppercase + string.digits) - set("0O1I")
        assert len(TRACKING_ALPHABET) == 32

    def test_many_draws_are_unique_and_use_only_the_alphabet(self) -> None:
        codes = [new_tracking_code() for _ in range(20_000)]

        assert len(set(codes)) == len(codes)
        assert set("".join(codes)) == set(TRACKING_ALPHABET)


class TestSubmit:
    def test_starts_in_the_workflows_initial_state_with_a_due_date(self) -> None:
        app = _submitted()

        assert app.state == "submitted"
        assert app.state_label == "Permohonan diterima"
        assert app.allowed_actions(OFFICER) == ["verify", "return"]
        assert app.allowed_actions(SUPERVISOR) == ["reject"]
        assert app.due_at == _wib(17, 16)
        assert not app.paused
        assert app.events == [Submitted("app-1")]


# Every path of the demo licensing workflows: (workflow, [(action, roles)], final state, contract events).
PATHS = {
    "usaha: verify, approve, issue, revoke": (
        "izin-usaha-sektor",
        [("verify", OFFICER), ("approve", SUPERVISOR), ("issue", OFFICER), ("revoke", SUPERVISOR)],
        "revoked",
        [Verified, Approved, PermitGranted, PermitRevoked],
    ),
    "usaha: return, resubmit, verify, return, resubmit, verify, approve, issue": (
        "izin-usaha-sektor",
        [
            ("return", OFFICER),
            ("resubmit", CITIZEN),
            ("verify", OFFICER),
            ("return", OFFICER),
            ("resubmit", OFFICER),
            ("verify", OFFICER),
            ("approve", SUPERVISOR),
            ("issue", SUPERVISOR),
        ],
        "permit_issued",
        [Returned, Resubmitted, Verified, Returned, Resubmitted, Verified, Approved, PermitGranted],
    ),
    "usaha: reject while returned": (
        "izin-usaha-sektor",
        [("return", OFFICER), ("reject", SUPERVISOR)],
        "rejected",
        [Returned, Rejected],
    ),
    "usaha: reject after verification": (
        "izin-usaha-sektor",
        [("verify", OFFICER), ("reject", SUPERVISOR)],
        "rejected",
        [Verified, Rejected],
    ),
    "pbg: verify, approve, payment, issue, revoke": (
        "pbg",
        [
            ("verify", OFFICER),
            ("approve", SUPERVISOR),
            ("confirm_payment", OFFICER),
            ("issue", SUPERVISOR),
            ("revoke", SUPERVISOR),
        ],
        "revoked",
        [Verified, Approved, PermitGranted, PermitRevoked],
    ),
    "pbg: return from technical review, resubmit, reject awaiting payment": (
        "pbg",
        [
            ("verify", OFFICER),
            ("return", OFFICER),
            ("resubmit", CITIZEN),
            ("verify", OFFICER),
            ("approve", SUPERVISOR),
            ("reject", SUPERVISOR),
        ],
        "rejected",
        [Verified, Returned, Resubmitted, Verified, Approved, Rejected],
    ),
    "penelitian: verify, issue": (
        "izin-penelitian",
        [("verify", OFFICER), ("issue", SUPERVISOR)],
        "issued",
        [Verified, PermitGranted],
    ),
    "penelitian: return, resubmit, verify, return, reject": (
        "izin-penelitian",
        [
            ("return", OFFICER),
            ("resubmit", CITIZEN),
            ("verify", OFFICER),
            ("return", OFFICER),
            ("reject", SUPERVISOR),
        ],
        "rejected",
        [Returned, Resubmitted, Verified, Returned, Rejected],
    ),
    "surat keterangan: return, resubmit, verify, issue": (
        "surat-keterangan",
        [("return", OFFICER), ("resubmit", CITIZEN), ("verify", OFFICER), ("issue", OFFICER)],
        "issued",
        [Returned, Resubmitted, Verified, PermitGranted],
    ),
    "surat keterangan: reject after verification": (
        "surat-keterangan",
        [("verify", OFFICER), ("reject", SUPERVISOR)],
        "rejected",
        [Verified, Rejected],
    ),
}


class TestAct:
    @pytest.mark.parametrize(("workflow", "steps", "final", "events"), PATHS.values(), ids=PATHS.keys())
    def test_follows_the_workflow_path(
        self, workflow: str, steps: list[tuple[str, set[str]]], final: str, events: list[type]
    ) -> None:
        app = _submitted(workflow)
        app.events.clear()

        for n, (action, roles) in enumerate(steps):
            app.act(
                action,
                roles,
                SUBMITTED_AT + timedelta(minutes=10 * (n + 1)),
                reason="Dokumen tidak lengkap",
                missing=("gambar-teknis",),
                actor="petugas-1",
                permit_number=NUMBER,
            )

        assert app.state == final
        assert [type(e) for e in app.events] == events
        assert app.finished
        assert not app.paused

    def test_issuing_records_the_permit_number_and_time(self) -> None:
        app = _submitted()
        app.act("verify", OFFICER, _wib(4), actor="petugas-1")
        app.act("approve", SUPERVISOR, _wib(5), actor="kepala-1")
        approved = app.events[-1]
        app.events.clear()

        app.act("issue", OFFICER, _wib(6), actor="petugas-1", permit_number=NUMBER)

        assert app.permit_number == NUMBER
        assert app.issued_at == _wib(6)
        assert app.approved_by == "kepala-1"
        assert app.events[0] == PermitGranted(NUMBER, _wib(6), True)
        assert approved == Approved("kepala-1", _wib(5), working_days_elapsed=2)
        assert app.allowed_actions(SUPERVISOR) == ["revoke"]

    def test_issuing_needs_a_permit_number(self) -> None:
        app = _submitted("izin-penelitian")
        app.act("verify", OFFICER, _wib(4))

        with pytest.raises(PermitNumberMissing):
            app.act("issue", SUPERVISOR, _wib(4, 11))

        assert app.state == "verified"

    def test_an_action_not_allowed_in_the_state_names_the_allowed_ones(self) -> None:
        app = _submitted()

        with pytest.raises(TransitionRefused) as raised:
            app.act("approve", SUPERVISOR, _wib(4))

        assert raised.value.state == "submitted"
        assert raised.value.allowed == ["reject"]
        assert app.state == "submitted"

    def test_a_role_the_workflow_does_not_allow_is_refused(self) -> None:
        app = _submitted()
        app.act("verify", OFFICER, _wib(4))

        with pytest.raises(RoleRefused):
            app.act("approve", OFFICER, _wib(4, 11))

        assert app.state == "verified"

    def test_rejecting_needs_a_reason(self) -> None:
        app = _submitted()

        with pytest.raises(ReasonRequired):
            app.act("reject", SUPERVISOR, _wib(4), reason="  ")

        assert app.state == "submitted"

    def test_return_records_missing_requirements_and_the_note(self) -> None:
        app = _submitted()
        app.events.clear()

        app.act("return", OFFICER, _wib(4), reason="Lengkapi NIB", missing=("nib",))

        assert app.events == [Returned(("nib",), "Lengkapi NIB", _wib(4))]


class TestSlaClock:
    def test_return_on_day_3_and_resubmit_on_day_6_moves_the_due_date_by_the_paused_working_days(
        self,
    ) -> None:
        app = _submitted()  # Tuesday 3 November: due Tuesday 17 November 16:00 (10 working days)

        app.act("return", OFFICER, _wib(5), reason="Lengkapi dokumen")  # Thursday, day 3
        paused_due = app.due_at
        app.act("resubmit", CITIZEN, _wib(10))  # Tuesday 10 November, day 6

        assert paused_due is None
        assert app.pauses == [(_wib(5), _wib(10))]
        # 2 working days used before the pause, 8 counted after the day of resubmission.
        assert app.due_at == _wib(20, 16)
        assert not app.paused

    def test_while_returned_the_clock_is_paused_and_the_due_date_unknown(self) -> None:
        app = _submitted()

        app.act("return", OFFICER, _wib(5), reason="Lengkapi dokumen")

        assert app.paused
        assert app.due_at is None

    def test_pbg_pauses_while_awaiting_payment(self) -> None:
        app = _submitted("pbg")  # 28 working days: due Friday 11 December
        app.act("verify", OFFICER, _wib(4))
        app.act("approve", SUPERVISOR, _wib(5))

        assert app.paused
        app.act("confirm_payment", OFFICER, _wib(12))

        assert app.due_at is not None
        assert app.due_at > _wib(11, 16, month=12)

    def test_issued_within_the_limit_is_within_sla(self) -> None:
        app = _submitted()
        app.act("verify", OFFICER, _wib(4))
        app.act("approve", SUPERVISOR, _wib(16))

        app.act("issue", OFFICER, _wib(17, 16), permit_number=NUMBER)

        assert app.within_sla is True
        assert app.sla_status(_wib(30)) is SlaStatus.ON_TRACK

    def test_issued_after_the_limit_is_not_within_sla(self) -> None:
        app = _submitted()
        app.act("verify", OFFICER, _wib(4))
        app.act("approve", SUPERVISOR, _wib(16))

        app.act("issue", OFFICER, _wib(18, 9), permit_number=NUMBER)

        assert app.within_sla is False
        assert app.events[-1] == PermitGranted(NUMBER, _wib(18, 9), False)

    def test_issued_after_a_pause_counts_the_moved_due_date(self) -> None:
        app = _submitted()
        app.act("return", OFFICER, _wib(5), reason="Lengkapi dokumen")
        app.act("resubmit", CITIZEN, _wib(10))
        app.act("verify", OFFICER, _wib(11))
        app.act("approve", SUPERVISOR, _wib(18))

        app.act("issue", OFFICER, _wib(19), permit_number=NUMBER)

        assert app.within_sla is True

    @pytest.mark.parametrize(
        ("now", "status"),
        [
            (_wib(4), SlaStatus.ON_TRACK),
            (_wib(13, 15), SlaStatus.ON_TRACK),  # day 8 of 10
            (_wib(16, 9), SlaStatus.AT_RISK),  # day 9: under 20% left
            (_wib(17, 16), SlaStatus.AT_RISK),
            (_wib(18, 9), SlaStatus.BREACHED),
        ],
    )
    def test_sla_status_over_time(self, now: datetime, status: SlaStatus) -> None:
        assert _submitted().sla_status(now) is status

    def test_a_paused_application_keeps_the_status_it_had_when_the_clock_stopped(self) -> None:
        app = _submitted()
        app.act("return", OFFICER, _wib(16, 9), reason="Lengkapi dokumen")

        assert app.sla_status(_wib(30)) is SlaStatus.AT_RISK

    def test_hours_limit_of_a_same_day_letter(self) -> None:
        app = _submitted("surat-keterangan")  # 4 working hours from 08:15 with a lunch break

        assert app.due_at == datetime(2026, 11, 3, 13, 15, tzinfo=WIB)


class TestBreach:
    def test_breaches_once_after_the_due_instant(self) -> None:
        app = _submitted()
        app.events.clear()

        assert not app.breach(_wib(17, 16))
        assert app.breach(_wib(18, 9))
        assert not app.breach(_wib(19, 9))

        assert app.events == [SlaBreached(_wib(17, 16), _wib(18, 9))]
        assert app.sla_status(_wib(18, 9)) is SlaStatus.BREACHED

    def test_a_finished_or_paused_application_does_not_breach(self) -> None:
        returned = _submitted()
        returned.act("return", OFFICER, _wib(5), reason="Lengkapi dokumen")
        rejected = _submitted()
        rejected.act("reject", SUPERVISOR, _wib(5), reason="Tidak memenuhi syarat")

        assert not returned.breach(_wib(30))
        assert not rejected.breach(_wib(30))
