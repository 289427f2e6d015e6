"""Async SQLAlchemy engines for PostgreSQL (asyncpg) and SQLite (aiosqlite), and the runtime's own tables.

Every service's metadata gets the runtime tables (outbox, inbox, consumer offsets) through
:func:`add_runtime_tables`, so state changes, outbox rows, processed event ids and consumed offsets
live in the service's own database and commit in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    event,
    exc,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

T = TypeVar("T")
_logger = logging.getLogger(__name__)

Id = BigInteger().with_variant(Integer(), "sqlite")


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite://`` URLs and pick the async drivers."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine; SQLite gets WAL mode and a busy timeout so readers never block the writer."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping (a round trip per checkout): a connection broken by a database restart fails once
        # with a transient error, which consumers retry and the HTTP edge answers with 503.
        pool_recycle=1800,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_insert(
    session_or_engine: AsyncSession | AsyncEngine, table: Table
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with the dialect's ON CONFLICT support (PostgreSQL and SQLite both have it)."""
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, AsyncSession) else session_or_engine
    name = bind.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name}")


class RetryLater(Exception):
    """A condition that passes by itself (another process holds what this one needs for a while): the
    consumer keeps the batch and retries it with backoff, as it does when the database is unavailable."""


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying: the database or the network is unavailable, a deadlock, a timeout.

    Anything else (a constraint violation, a bug, a bad value) is deterministic: retrying gives the
    same result, so the message goes to the dead-letter topic instead.
    """
    if isinstance(error, RetryLater):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error, exc.OperationalError | exc.InterfaceError):
            return True
        orig = error.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code and str(code)[:2] in {"08", "40", "53", "57"}:
            return True
        return isinstance(orig, sqlite3.OperationalError)
    if isinstance(error, exc.TimeoutError | exc.DisconnectionError):
        return True
    # asyncpg's own errors, from statements sent straight to the driver (:class:`DriverSql`).
    code = getattr(error, "sqlstate", None)
    if isinstance(code, str) and code[:2] in {"08", "40", "53", "57"}:
        return True
    if isinstance(error, ConnectionError | OSError | asyncio.TimeoutError):
        return True
    name = type(error).__name__
    # asyncpg raises its own connection errors when PostgreSQL goes away mid-query.
    return name in {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "ConnectionFailureError",
        "InterfaceError",
        "KafkaConnectionError",
        "KafkaTimeoutError",
        "NodeNotReadyError",
        "RequestTimedOutError",
        "NotLeaderForPartitionError",
        "LeaderNotAvailableError",
    }


CONFLICT_ATTEMPTS = 4
"""How many times :func:`retrying_conflicts` runs a transaction that PostgreSQL keeps rolling back."""

_CONFLICT_CODES = frozenset({"40P01", "40001"})


def is_conflict(error: BaseException) -> bool:
    """A transaction PostgreSQL rolled back because of other transactions, not because of its own input:
    a deadlock it broke (SQLSTATE 40P01) or a serialization failure (40001). Running the same work again
    from the start is the documented answer; another error is answered as it is."""
    orig = error.orig if isinstance(error, exc.DBAPIError) else error
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return isinstance(code, str) and code in _CONFLICT_CODES


async def retrying_conflicts(
    attempt: Callable[[], Awaitable[T]],
    *,
    attempts: int = CONFLICT_ATTEMPTS,
    what: str = "transaction",
    rerunnable: Callable[[], bool] | None = None,
) -> T:
    """Run ``attempt`` (one whole transaction, from its start to its commit) and run it again, after a
    short random pause, when PostgreSQL rolled it back as a deadlock's victim or for a serialization
    failure. ``attempt`` must do nothing outside its transaction that a rerun would repeat (events go
    through the outbox, so they do not). The last conflict is raised when every attempt had one, or as
    soon as ``rerunnable`` says the failed attempt cannot run again (it has answered already)."""
    for n in range(1, attempts):
        try:
            return await attempt()
        except Exception as error:
            if not is_conflict(error) or (rerunnable is not None and not rerunnable()):
                raise
            _logger.warning(
                "db.transaction.conflict_retried",
                extra={"what": what, "attempt": n, "error": type(error).__name__},
            )
            # Apart, so that the two sides of a deadlock do not meet again in the same order.
            await asyncio.sleep(random.uniform(0.0, 0.005 * 2**n))
    return await attempt()


EVENT_ID = String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
"""An event id column: PostgreSQL's ``uuid``, text of the canonical form elsewhere; read as text."""


def add_runtime_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    """Define the outbox, inbox and consumer-offset tables on a service's metadata."""
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", Id, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("key", LargeBinary, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("headers", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
    )
    Index(
        "ix_outbox_unsent",
        outbox.c.seq,
        postgresql_where=outbox.c.sent_at.is_(None),
        sqlite_where=outbox.c.sent_at.is_(None),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(200), primary_key=True),
        # Text in the API (the id's canonical form), 16 bytes in a PostgreSQL index (see
        # :func:`mpp.kit.migrations.inbox_ids_as_uuid`).
        Column("event_id", EVENT_ID, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    offsets = Table(
        "consumer_offsets",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("topic", String(249), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("offset", BigInteger, nullable=False),
    )
    return outbox, inbox, offsets


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


StatementHook = Callable[[str], object]
"""A callable taking the SQL text, called once per statement sent straight to the driver."""

statement_hook: list[StatementHook] = []
"""Hooks told of every statement a :class:`DriverSql` sends (benchmarks and tests count or read statements
with it; the engine's ``before_cursor_execute`` event never sees them)."""


class DriverSql:
    """Hand-written SQL sent straight to asyncpg, inside a session's current transaction (PostgreSQL only).

    A statement sent through the session costs about four times what asyncpg alone costs (compiling the
    cache key, binding, result processing); the few statements a service runs on every request can skip
    that. The first use joins the session's transaction: the connection is checked out and, if no statement
    ran yet, the adapter begins its transaction, so the session's commit or rollback covers these
    statements too. asyncpg prepares each distinct SQL text once per connection and caches it. JSON columns
    use the codec SQLAlchemy installs on the connection: parameters are JSON text, values come back decoded.

    Given an :class:`AsyncConnection` instead of a session, the statements run in the adapter's transaction
    on that connection without SQLAlchemy's transaction bookkeeping: :meth:`commit` commits it when nothing
    else began a SQLAlchemy transaction there, and closing the connection rolls back what was not committed.
    """

    def __init__(self, source: AsyncSession | AsyncConnection) -> None:
        self._source = source
        self._connection: Any = None
        self._adapted: Any = None

    @staticmethod
    def available(session: AsyncSession) -> bool:
        return session.get_bind().dialect.name == "postgresql"

    async def _driver(self) -> Any:
        if self._connection is None:
            source = self._source
            connection = await source.connection() if isinstance(source, AsyncSession) else source
            pooled = await connection.get_raw_connection()
            adapted: Any = pooled.dbapi_connection
            if adapted._transaction is None:
                await adapted._start_transaction()
            self._adapted = adapted
            self._connection = pooled.driver_connection
        return self._connection

    async def commit(self) -> None:
        """Commit the adapter's transaction these statements run in, if one is open."""
        adapted = self._adapted
        if adapted is not None and adapted._transaction is not None:
            await adapted._call_and_discard(adapted._transaction.commit)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        for hook in statement_hook:
            hook(sql)
        rows: list[Any] = await (await self._driver()).fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        for hook in statement_hook:
            hook(sql)
        return await (await self._driver()).fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        for hook in statement_hook:
            hook(sql)
        status: str = await (await self._driver()).execute(sql, *args)
        return status
