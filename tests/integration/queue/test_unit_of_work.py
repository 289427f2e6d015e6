"""On PostgreSQL the queue's unit of work runs on a pooled connection: the statements sent straight to the
driver and those a repository sends through the session are one transaction, committed together or not
at all, whichever came first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import insert, select

from mpp.kit.db import create_engine, session_factory
from mpp.kit.migrations import upgrade
from mpp.queue.app import MIGRATIONS
from mpp.queue.persistence.tables import outbox, policies
from mpp.queue.persistence.uow import QueueUnitOfWork
from tests.integration.queue.harness import NOW

pytestmark = pytest.mark.integration

DRIVER_INSERT = (
    "INSERT INTO outbox (event_id, topic, key, value, headers, created_at) "
    "VALUES ($1, 'uow.test', '\\x00'::bytea, '\\x00'::bytea, '\\x00'::bytea, now())"
)


def _policy(agency: str) -> dict[str, object]:
    return {"site": "s", "agency": agency, "document": {}, "updated_at": NOW, "updated_by": "t"}


class TestQueueUnitOfWorkOnPostgres:
    async def test_driver_and_session_statements_commit_and_roll_back_together(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        engine = create_engine(await fresh_database())
        try:
            await upgrade(engine, MIGRATIONS)
            sessions = session_factory(engine)

            async with QueueUnitOfWork(sessions, lean=True) as uow:  # the driver alone, committed
                assert uow.sql is not None
                await uow.sql.execute(DRIVER_INSERT, "driver-only")
                await uow.commit()
            async with QueueUnitOfWork(sessions, lean=True) as uow:  # the driver alone, left without a commit
                assert uow.sql is not None
                await uow.sql.execute(DRIVER_INSERT, "driver-abandoned")
            with pytest.raises(RuntimeError):
                async with QueueUnitOfWork(
                    sessions, lean=True
                ) as uow:  # driver first, then the session; fails
                    assert uow.sql is not None
                    await uow.sql.execute(DRIVER_INSERT, "driver-then-session-failed")
                    await uow.session.execute(insert(policies).values(**_policy("failed")))
                    raise RuntimeError
            async with QueueUnitOfWork(
                sessions, lean=True
            ) as uow:  # session first, then the driver, committed
                assert uow.sql is not None
                await uow.session.execute(insert(policies).values(**_policy("committed")))
                await uow.sql.execute(DRIVER_INSERT, "session-then-driver")
                await uow.commit()
            async with QueueUnitOfWork(
                sessions, lean=True
            ) as uow:  # driver first, then the session, committed
                assert uow.sql is not None
                await uow.sql.execute(DRIVER_INSERT, "driver-then-session")
                await uow.session.execute(insert(policies).values(**_policy("second")))
                await uow.commit()

            async with engine.connect() as conn:
                events = set((await conn.execute(select(outbox.c.event_id))).scalars())
                agencies = set((await conn.execute(select(policies.c.agency))).scalars())
            assert events == {"driver-only", "session-then-driver", "driver-then-session"}
            assert agencies == {"committed", "second"}
            # Every connection went back to the pool with nothing left open.
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        finally:
            await engine.dispose()
