"""Reporting's event subscriber: folds each consumed batch into the read models (inside the consumer's
transaction, together with the inbox and the consumed offsets, so a batch counts exactly once)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.consumer import BatchHandler, ReceivedEvent
from mpp.reporting.domain.facts import SlaCheck, fold_facts, no_sla
from mpp.reporting.domain.projection import fold
from mpp.reporting.persistence.repository import add_counts, add_facts
from mpp.reporting.projection_metrics import ProjectionMetrics


def projector(
    site_tz: Callable[[str], ZoneInfo], sla: SlaCheck = no_sla, metrics: ProjectionMetrics | None = None
) -> BatchHandler:
    async def project(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        started = time.perf_counter()
        envelopes = [e.envelope for e in events]
        await add_counts(session, fold(envelopes, site_tz))
        await add_facts(session, fold_facts(envelopes, site_tz, sla))
        if metrics is not None:
            # Counted when the batch's statements ran; a batch rolled back later is retried and counted
            # again, so the counter may run slightly ahead of the read models after an outage.
            metrics.applied((env.type for env in envelopes), time.perf_counter() - started)

    return project
