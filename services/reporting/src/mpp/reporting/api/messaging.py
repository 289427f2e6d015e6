"""Reporting's event subscriber: folds each consumed batch into the read models (inside the consumer's
transaction, together with the inbox and the consumed offsets, so a batch counts exactly once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.consumer import BatchHandler, ReceivedEvent
from mpp.reporting.domain.facts import SlaCheck, SlaDue, fold_facts, no_due, no_sla
from mpp.reporting.domain.projection import fold
from mpp.reporting.persistence.repository import add_counts, add_facts, add_late


def projector(
    site_tz: Callable[[str], ZoneInfo], sla: SlaCheck = no_sla, due: SlaDue = no_due
) -> BatchHandler:
    async def project(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        envelopes = [e.envelope for e in events]
        await add_counts(session, fold(envelopes, site_tz))
        facts = fold_facts(envelopes, site_tz, sla, due)
        await add_facts(session, facts)
        await add_late(session, facts.late.values())

    return project
