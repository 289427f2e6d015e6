"""The licensing unit of work: the only place that commits."""

from __future__ import annotations

import asyncio
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.kit.outbox import UnitOfWork
from mpp.licensing.persistence.repository import ApplicationRepository, IdempotencyStore, Rules
from mpp.licensing.persistence.tables import outbox


class LicensingUnitOfWork(UnitOfWork):
    applications: ApplicationRepository
    idempotency: IdempotencyStore

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rules: Rules,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        super().__init__(sessions, outbox, wakeup)
        self._rules = rules

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.applications = ApplicationRepository(self.session, self._rules)
        self.idempotency = IdempotencyStore(self.session)
        return self
