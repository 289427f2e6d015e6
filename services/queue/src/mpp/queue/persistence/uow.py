"""The queue unit of work: the only place that commits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from mpp.kit.db import DriverSql
from mpp.kit.outbox import UnitOfWork, outbox_row
from mpp.queue.persistence import pg
from mpp.queue.persistence.appointments import AppointmentRepository
from mpp.queue.persistence.feedback import ComplaintRepository, SurveyRepository
from mpp.queue.persistence.protection import TextSealer, development_sealer
from mpp.queue.persistence.repository import (
    CounterRepository,
    IdempotencyStore,
    PolicyStore,
    TicketRepository,
    VisitRepository,
)
from mpp.queue.persistence.tables import outbox


class QueueUnitOfWork(UnitOfWork):
    visits: VisitRepository
    tickets: TicketRepository
    counters: CounterRepository
    policies: PolicyStore
    idempotency: IdempotencyStore
    appointments: AppointmentRepository
    surveys: SurveyRepository
    complaints: ComplaintRepository

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        wakeup: asyncio.Event | None = None,
        writer_lock: asyncio.Lock | None = None,
        sealer: TextSealer | None = None,
        *,
        lean: bool = False,
    ) -> None:
        super().__init__(sessions, outbox, wakeup)
        # The service passes the sealer of its configured key; the development key otherwise.
        self._sealer = sealer or development_sealer()
        # SQLite (one process) has no row locks: its transactions take this lock so that two requests
        # never decide on the same rows at once. PostgreSQL passes None and relies on row locks.
        self._writer_lock = writer_lock
        # ``lean`` (the counters' cycle, whose statements go to the driver): on PostgreSQL the unit runs on a
        # pooled connection without SQLAlchemy's transaction bookkeeping (see _open_on_connection). Work
        # done through the repositories' session (kiosk visits) keeps the plain session, which costs less
        # for it than a session joined to a connection.
        bind = sessions.kw.get("bind")
        self._engine: AsyncEngine | None = (
            bind if lean and isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql" else None
        )
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        if self._writer_lock is not None:
            await self._writer_lock.acquire()
        try:
            if self._engine is not None:
                await self._open_on_connection(self._engine)
            else:
                await super().__aenter__()
        except BaseException:
            if self._writer_lock is not None:
                self._writer_lock.release()
            raise
        # PostgreSQL: the statements of the counters' cycle (call-next, start, complete) and the outbox
        # rows go straight to asyncpg, in the same transaction.
        self.sql: DriverSql | None
        if self._connection is not None:
            self.sql = DriverSql(self._connection)
        else:
            self.sql = DriverSql(self.session) if DriverSql.available(self.session) else None
        # The counters' cycle writes a visit it ended with the commit's outbox rows.
        self.visits = VisitRepository(self.session, self.sql, defer=self._connection is not None)
        self.tickets = TicketRepository(self.session, self.sql)
        self.counters = CounterRepository(self.session, self.sql)
        self.policies = PolicyStore(self.session)
        self.idempotency = IdempotencyStore(self.session)
        self.appointments = AppointmentRepository(self.session)
        self.surveys = SurveyRepository(self.session)
        self.complaints = ComplaintRepository(self.session, self._sealer)
        return self

    async def _open_on_connection(self, engine: AsyncEngine) -> None:
        """PostgreSQL: a pooled connection, with a session on it that begins nothing until a repository
        uses it. The hot statements run in the adapter's transaction without SQLAlchemy's transaction
        bookkeeping (about a third of a short transaction's CPU); a repository's statement through the
        session joins that same transaction."""
        connection = await engine.connect()
        self._connection = connection
        self._session = AsyncSession(bind=connection, expire_on_commit=False)
        self._pending = []

    async def commit(self) -> None:
        if self.sql is not None and self._pending:
            # Every outbox row of the transaction in one statement, straight to the driver, with the
            # visits saved meanwhile (see VisitRepository).
            now = datetime.now(UTC)
            rows = [outbox_row(e, now) for e in self._pending]
            self._pending = []
            visits = self.visits.take_saved()
            await self.sql.execute(
                pg.INSERT_OUTBOX if visits is None else pg.INSERT_OUTBOX_SAVING_VISITS,
                [r["event_id"] for r in rows],
                [r["topic"] for r in rows],
                [r["key"] for r in rows],
                [r["value"] for r in rows],
                [r["headers"] for r in rows],
                now,
                *(visits or ()),
            )
        await self.visits.flush()
        if self._connection is None or self.sql is None:
            await super().commit()
            return
        if self.session.in_transaction():
            # A repository's statement began SQLAlchemy's transaction on this connection: its commit
            # covers the driver's statements too (one transaction).
            await self.session.commit()
        await self.sql.commit()
        if self._wakeup is not None:
            self._wakeup.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._connection is None:
                await super().__aexit__(exc_type, exc, tb)
            else:
                session, self._session = self._session, None
                connection, self._connection = self._connection, None
                try:
                    if session is not None:
                        await session.close()
                finally:
                    # Returning the connection rolls back whatever was not committed.
                    await connection.close()
        finally:
            if self._writer_lock is not None:
                self._writer_lock.release()
