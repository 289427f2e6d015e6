"""Statements sent straight to asyncpg through DriverSql belong to the session's transaction: they commit
and roll back with it, whether or not a SQLAlchemy statement ran first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import func, select

from mpp.kit.db import DriverSql, create_engine, is_transient, session_factory
from tests.support.events import metadata, outbox

pytestmark = pytest.mark.integration

INSERT = (
    "INSERT INTO outbox (event_id, topic, key, value, headers, created_at) "
    "VALUES ($1, 'driver.test', '\\x00'::bytea, '\\x00'::bytea, '\\x00'::bytea, now())"
)


async def test_driver_statements_commit_and_roll_back_with_the_session(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    engine = create_engine(await fresh_database())
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sessions = session_factory(engine)

        async with sessions() as session, session.begin():
            assert DriverSql.available(session)
            sql = DriverSql(session)
            await sql.execute(INSERT, "rolled-back-first")  # the driver's statement comes first
            await session.execute(select(func.count()).select_from(outbox))
            await sql.execute(INSERT, "rolled-back-second")
            await session.rollback()

        async with sessions() as session, session.begin():
            await session.execute(select(func.count()).select_from(outbox))  # SQLAlchemy's comes first
            await DriverSql(session).execute(INSERT, "kept-1")
        async with sessions() as session, session.begin():
            await DriverSql(session).execute(INSERT, "kept-2")

        async with sessions() as session:
            ids = (await session.execute(select(outbox.c.event_id).order_by(outbox.c.seq))).scalars().all()
            assert ids == ["kept-1", "kept-2"]
            rows = await DriverSql(session).fetch("SELECT event_id FROM outbox ORDER BY seq")
            assert [r["event_id"] for r in rows] == ["kept-1", "kept-2"]
    finally:
        await engine.dispose()


async def test_a_driver_error_of_an_unavailable_database_counts_as_transient(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    engine = create_engine(await fresh_database())
    try:
        async with engine.connect() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.commit()
        async with session_factory(engine)() as session, session.begin():
            sql = DriverSql(session)
            with pytest.raises(Exception) as raised:
                # 57014 query_canceled: class 57 (operator intervention), retried like a lost connection
                await sql.execute("SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)")
            assert not raised.type.__module__.startswith("sqlalchemy")
            assert is_transient(raised.value)
            with pytest.raises(Exception) as refused:
                await sql.execute("SELECT 1/0")  # the transaction is aborted
            assert getattr(refused.value, "sqlstate", None) == "25P02"
            assert not is_transient(refused.value)
    finally:
        await engine.dispose()
