"""The reporting API under schema-driven fuzzing: no request, valid or not, makes it answer 5xx."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.integration.reporting.harness import (
    SITE,
    ReportingApi,
    issued,
    ministry,
    officer,
    operator,
    submitted,
)
from tests.support.fuzz import Budget, fuzz

pytestmark = pytest.mark.integration


async def test_no_generated_request_gets_a_server_error(reporting: ReportingApi) -> None:
    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    await reporting.project([submitted(at), issued(at), submitted(at, service_type="polres.skck")])
    callers = [ministry(), operator(SITE), officer("dpmptsp")]

    sent, failures = await fuzz(reporting.client, callers, budget=Budget(positive=150, negative=60))

    assert not failures, "\n\n".join(failures)
    assert sent > 100
