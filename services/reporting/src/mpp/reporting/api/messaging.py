"""Reporting's event subscriber: folds each consumed batch into the read model (inside the consumer's
transaction, together with the inbox and the consumed offsets)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.consumer import BatchHandler, ReceivedEvent
from mpp.reporting.domain.projection import fold
from mpp.reporting.persistence.repository import add_counts


def projector(site_tz: Callable[[str], ZoneInfo]) -> BatchHandler:
    async def project(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        await add_counts(session, fold((e.envelope for e in events), site_tz))

    return project
