"""Identity's event subscriber: answers each consumed batch of verification requests inside the
consumer's transaction (inbox, consumed offsets, access log and outbox commit together)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.identity.domain.verification import Refused
from mpp.identity.handlers import Ports, verify_citizens
from mpp.identity.persistence.protection import CitizenKeys
from mpp.identity.persistence.uow import ConsumerBatch
from mpp.kit.consumer import BatchHandler, ReceivedEvent

log = logging.getLogger(__name__)


def verifier(*, keys: CitizenKeys, ports: Ports, answers: Counter, duplicates: Counter) -> BatchHandler:
    """The batch handler of the ``mpp.identity.verifier`` group. ``answers`` is labelled by outcome
    (``verified`` or the failure reason code), a small fixed set."""

    async def verify(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        batch = ConsumerBatch(session, keys)
        outcome = await verify_citizens([e.envelope for e in events], batch, ports)
        await batch.flush()
        refused = 0
        for decision in outcome.decisions:
            if isinstance(decision, Refused):
                refused += 1
                answers.labels(outcome=decision.reason.value).inc()
            else:
                answers.labels(outcome="verified").inc()
        if outcome.duplicates:
            duplicates.inc(outcome.duplicates)
        log.info(
            "identity.verification.answered",
            extra={
                "requests": len(events),
                "verified": len(outcome.decisions) - refused,
                "refused": refused,
                "duplicates": outcome.duplicates,
            },
        )

    return verify
