"""The permit application aggregate: permit numbers, tracking codes and the state machine."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp.licensing.domain.model import (
    TRACKING_ALPHABET,
    Application,
    ApplicationStatus,
    Approved,
    InvalidTransition,
    PermitGranted,
    Submitted,
    format_permit_number,
    new_tracking_code,
)

pytestmark = pytest.mark.unit

SUBMITTED_AT = datetime(2026, 11, 3, 1, 15, tzinfo=UTC)
APPROVED_AT = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
PERMIT_NUMBER = re.compile(r"^(\d{4,})/([A-Z0-9-]+)/([A-Z0-9]+)/([IVX]+)/(\d{4})$")


def _submitted() -> Application:
    return Application.submit(
        application_id="app-1",
        tracking_code="ABCDEFGHJK",
        service_type="dpmptsp.pbg",
        agency="dpmptsp",
        site="mpp-kota-sukamaju",
        applicant_ref="c_0123456789abcdef",
        channel="walk_in",
        submitted_at=SUBMITTED_AT,
        documents=3,
    )


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


class TestSubmitApplication:
    def test_starts_submitted_with_approve_as_the_only_action(self) -> None:
        app = _submitted()

        assert app.status is ApplicationStatus.SUBMITTED
        assert app.allowed_actions() == ["approve"]
        assert app.permit_number is None
        assert app.events == [Submitted("app-1")]


class TestApproveApplication:
    def test_approving_a_submitted_application_issues_the_permit(self) -> None:
        app = _submitted()
        app.events.clear()

        app.approve(officer="officer-7", at=APPROVED_AT, permit_number="0001/DPMPTSP/PBG/XI/2026")

        assert app.status is ApplicationStatus.PERMIT_ISSUED
        assert app.permit_number == "0001/DPMPTSP/PBG/XI/2026"
        assert app.approved_by == "officer-7"
        assert app.approved_at == APPROVED_AT
        assert app.allowed_actions() == []
        assert app.events == [
            Approved("app-1", "officer-7", APPROVED_AT),
            PermitGranted("app-1", "0001/DPMPTSP/PBG/XI/2026", APPROVED_AT),
        ]

    def test_approving_twice_is_an_invalid_transition_naming_state_and_allowed_actions(self) -> None:
        app = _submitted()
        app.approve(officer="officer-7", at=APPROVED_AT, permit_number="0001/DPMPTSP/PBG/XI/2026")
        app.events.clear()

        with pytest.raises(InvalidTransition) as raised:
            app.approve(officer="officer-8", at=APPROVED_AT, permit_number="0002/DPMPTSP/PBG/XI/2026")

        assert raised.value.status is ApplicationStatus.PERMIT_ISSUED
        assert raised.value.action == "approve"
        assert raised.value.allowed == []
        assert "permit_issued" in str(raised.value)
        assert "approve" in str(raised.value)

    def test_a_refused_second_approval_changes_nothing(self) -> None:
        app = _submitted()
        app.approve(officer="officer-7", at=APPROVED_AT, permit_number="0001/DPMPTSP/PBG/XI/2026")
        app.events.clear()

        with pytest.raises(InvalidTransition):
            app.approve(officer="officer-8", at=APPROVED_AT, permit_number="0002/DPMPTSP/PBG/XI/2026")

        assert app.permit_number == "0001/DPMPTSP/PBG/XI/2026"
        assert app.approved_by == "officer-7"
        assert app.events == []
