"""The identity unit of work (the only place that commits), and the consumer's batch scope.

HTTP use cases open an :class:`IdentityUnitOfWork`. The verification consumer already runs inside the
kit consumer's transaction (inbox, consumed offsets, effects): :class:`ConsumerBatch` offers the same
repositories and ``publish`` on that session and writes the outbox rows, and the consumer commits.
"""

from __future__ import annotations

import asyncio
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.envelope import Envelope
from mpp.contracts.workflow import Workflow
from mpp.identity.persistence.documents import DocumentApplicationRepository, Rules
from mpp.identity.persistence.protection import CitizenKeys
from mpp.identity.persistence.repository import AccessLogRepository, CitizenRepository, IdempotencyStore
from mpp.identity.persistence.tables import outbox
from mpp.kit.outbox import UnitOfWork, write_outbox


class IdentityUnitOfWork(UnitOfWork):
    citizens: CitizenRepository
    access_log: AccessLogRepository
    idempotency: IdempotencyStore
    documents: DocumentApplicationRepository

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: CitizenKeys,
        wakeup: asyncio.Event | None = None,
        rules: Rules | None = None,
    ) -> None:
        super().__init__(sessions, outbox, wakeup)
        self._keys = keys
        self._rules = rules or _no_rules

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.citizens = CitizenRepository(self.session, self._keys)
        self.access_log = AccessLogRepository(self.session)
        self.idempotency = IdempotencyStore(self.session, self._keys)
        self.documents = DocumentApplicationRepository(self.session, self._keys, self._rules)
        return self


def _no_rules(workflow: str, site: str) -> tuple[Workflow, WorkingClock]:
    raise LookupError(f"no workflow rules configured to load workflow {workflow!r}")


class ConsumerBatch:
    """Repositories and an outbox on the consumer's open transaction. Never commits."""

    def __init__(self, session: AsyncSession, keys: CitizenKeys) -> None:
        self.session = session
        self.citizens = CitizenRepository(session, keys)
        self.access_log = AccessLogRepository(session)
        self._pending: list[Envelope] = []

    def publish(self, *envelopes: Envelope) -> None:
        self._pending.extend(envelopes)

    async def flush(self) -> None:
        """Write the staged events to the outbox, in the consumer's transaction."""
        pending, self._pending = self._pending, []
        await write_outbox(self.session, outbox, pending)
