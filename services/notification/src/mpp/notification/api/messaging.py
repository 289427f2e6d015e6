"""The notification consumer: contacts, recipient links and triggers, applied inside the consumer's
transaction (inbox, consumed offsets, delivery records and outbox commit together)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.consumer import BatchHandler, ReceivedEvent
from mpp.kit.outbox import write_outbox
from mpp.notification.handlers import CONTACT_TYPES, Rules, apply_events
from mpp.notification.persistence.tables import outbox

log = logging.getLogger(__name__)


def event_types(rules: Rules) -> frozenset[str]:
    return CONTACT_TYPES | rules.config.event_types


def dispatcher_handler(rules: Rules, on_applied: Callable[[], None] | None = None) -> BatchHandler:
    """The batch handler of the ``mpp.notification.dispatcher`` group."""

    async def apply(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        published = await apply_events(session, [e.envelope for e in events], rules)
        await write_outbox(session, outbox, published)
        if on_applied is not None:
            # After the commit: a dispatcher woken before it would find the new records not yet visible
            # and wait for its next poll.
            event.listen(session.sync_session, "after_commit", lambda _session: on_applied(), once=True)

    return apply
