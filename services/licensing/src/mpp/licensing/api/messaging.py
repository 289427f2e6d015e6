"""Licensing's event subscriber: applies identity's answers to its NIK verification requests inside the
consumer's transaction (inbox, consumed offsets, application state and outbox commit together)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.events.identity import CitizenVerificationFailedV1, CitizenVerifiedV1
from mpp.kit.consumer import BatchHandler, ReceivedEvent
from mpp.kit.outbox import write_outbox
from mpp.licensing.handlers import apply_verification_results
from mpp.licensing.persistence.repository import ApplicationRepository, Rules
from mpp.licensing.persistence.tables import outbox

VERIFICATION_RESULT_TYPES = frozenset({CitizenVerifiedV1.event_type, CitizenVerificationFailedV1.event_type})

log = logging.getLogger(__name__)


def verification_results(rules: Rules) -> BatchHandler:
    """The batch handler of the ``mpp.licensing.verification-results`` group."""

    async def apply(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        published = await apply_verification_results(
            [e.envelope for e in events], ApplicationRepository(session, rules)
        )
        await write_outbox(session, outbox, published)
        if published:
            log.info(
                "licensing.verification.applied", extra={"results": len(events), "started": len(published)}
            )

    return apply
