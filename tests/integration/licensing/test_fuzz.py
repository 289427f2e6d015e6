"""The licensing API under schema-driven fuzzing: no request, valid or not, makes it answer 5xx."""

from __future__ import annotations

import pytest

from mpp.kit.auth import Role
from tests.integration.licensing.harness import (
    LicensingApi,
    bearer,
    carry_to_permit,
    officer,
    submission,
    supervisor,
)
from tests.support.fuzz import Budget, fuzz

pytestmark = pytest.mark.integration


async def test_no_generated_request_gets_a_server_error(licensing: LicensingApi) -> None:
    waiting = await licensing.submit(submission(seed=1), officer())
    issued = await licensing.submit(submission(seed=2), officer())
    permit = (await carry_to_permit(licensing, issued)).json()
    # Counter staff, the site's operator, the ministry and a citizen applying online take turns on the
    # operations that let them through.
    callers = [
        officer(),
        supervisor(),
        bearer(roles=[Role.OPERATOR], agency=None, subject="operator-1"),
        bearer(roles=[Role.MINISTRY], agency=None, site=None, subject="ministry-1"),
        bearer(roles=[Role.CITIZEN], agency=None, site=None, subject="citizen-1"),
    ]
    known = {
        "application_id": [waiting, issued],
        "action": ["verify", "return", "reject"],
        "tracking_code": [permit["tracking_code"]],
    }

    sent, failures = await fuzz(licensing.client, callers, budget=Budget(), known=known)

    assert not failures, "\n\n".join(failures)
    assert sent > 150
