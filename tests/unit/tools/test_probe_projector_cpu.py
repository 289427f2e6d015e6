"""The projector CPU probe runs the real consumer and projector over every record it builds."""

from __future__ import annotations

import pytest

from mpp.reporting.domain.facts import FACT_TYPES
from tools.probe_projector_cpu import measure, records

pytestmark = pytest.mark.unit


def test_records_are_the_bench_mix_in_offset_order() -> None:
    made = records(300, 30)

    assert [r.offset for r in made] == list(range(300))
    types = {dict(r.headers)["ce_type"].decode() for r in made}
    assert types <= FACT_TYPES
    assert {"VisitStarted", "TicketIssued", "ServiceCompleted"} <= types


async def test_every_record_is_applied_and_timed() -> None:
    per_event, applied = await measure(batch=400, batches=2, visits_per_day=30)

    assert applied == 800
    assert len(per_event) == 2
    assert all(seconds > 0 for seconds in per_event)
