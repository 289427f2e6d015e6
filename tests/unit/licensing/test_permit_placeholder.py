"""The permit number's placeholder serial is replaced in the PermitIssued event, nothing else changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.licensing import ApplicationApprovedV1, PermitIssuedV1
from mpp.licensing.domain.model import format_permit_number
from mpp.licensing.handlers import _with_number

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
TOKEN = "123456789012345678901234567890"
APP_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
REF = "ref-" + "a" * 40


def _wrap(payload: PermitIssuedV1 | ApplicationApprovedV1) -> Envelope:
    return Envelope.wrap(
        payload,
        producer="mpp.licensing",
        agency="dpmptsp",
        site="mpp-kota-sukamaju",
        subject=APP_ID,
        correlation_id="correlation-0001",
        causation_id=None,
    )


def test_the_issued_event_gets_the_drawn_serial() -> None:
    provisional = format_permit_number(
        sequence=int(TOKEN), agency="dpmptsp", service_short="pbg", issued_at=AT
    )
    issued = _wrap(
        PermitIssuedV1(
            application_id=APP_ID,
            permit_number=provisional,
            service_type="dpmptsp.pbg",
            applicant_ref=REF,
            issued_at=AT,
            submitted_at=AT,
            within_sla=True,
        )
    )

    numbered = _with_number(issued, TOKEN, "0042")

    assert isinstance(numbered.payload, PermitIssuedV1)
    assert numbered.payload.permit_number == "0042/DPMPTSP/PBG/XI/2026"
    assert numbered.id == issued.id
    assert TOKEN not in numbered.model_dump_json()


def test_other_events_pass_unchanged() -> None:
    approved = _wrap(
        ApplicationApprovedV1(
            application_id=APP_ID,
            service_type="dpmptsp.pbg",
            applicant_ref=REF,
            officer_ref="officer-0001",
            approved_at=AT,
            submitted_at=AT,
            working_days_elapsed=3,
        )
    )

    assert _with_number(approved, TOKEN, "0042") is approved
