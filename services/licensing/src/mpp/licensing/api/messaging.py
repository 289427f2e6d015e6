"""Licensing's event subscriber: applies identity's answers to its NIK verification requests inside the
consumer's transaction (inbox, consumed offsets, application state and outbox commit together)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.events.identity import CitizenVerificationFailedV1, CitizenVerifiedV1
from mpp.kit.consumer import BatchHandler, ReceivedEvent
from mpp.kit.outbox import write_outbox
from mpp.licensing.handlers import Ignored, Ports, apply_verification_results
from mpp.licensing.persistence.repository import ApplicationRepository
from mpp.licensing.persistence.tables import outbox

VERIFICATION_RESULT_TYPES = frozenset({CitizenVerifiedV1.event_type, CitizenVerificationFailedV1.event_type})

log = logging.getLogger(__name__)


def verification_results(ports: Ports, ignored: Counter | None = None) -> BatchHandler:
    """The batch handler of the ``mpp.licensing.verification-results`` group. ``ignored`` counts answers
    that changed nothing, labelled by a fixed reason (see ``Ignored``)."""

    async def apply(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        outcome = await apply_verification_results(
            [e.envelope for e in events], ApplicationRepository(session, ports.catalogue.rules), ports
        )
        await write_outbox(session, outbox, outcome.published)
        for why, count in outcome.ignored.items():
            if ignored is not None:
                ignored.labels(reason=why.value).inc(count)
            # Answers to other services' requests are the normal traffic of a shared topic: not worth a line.
            if why is not Ignored.NOT_OURS:
                log.info("licensing.verification.ignored", extra={"reason": why.value, "count": count})
        if outcome.started or outcome.rejected or outcome.retries_scheduled or outcome.stalled:
            log.info(
                "licensing.verification.applied",
                extra={
                    "results": len(events),
                    "started": outcome.started,
                    "rejected": outcome.rejected,
                    "retries_scheduled": outcome.retries_scheduled,
                    "stalled": outcome.stalled,
                },
            )

    return apply
