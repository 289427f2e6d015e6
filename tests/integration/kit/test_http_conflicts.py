"""A request whose transaction PostgreSQL picks as a deadlock's victim is run again at the HTTP edge, on a
real database: the client gets the answer, not a 503, and the rolled-back run left nothing behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import text

from mpp.kit.db import create_engine, session_factory
from mpp.kit.http import create_http_app
from mpp.kit.observability import ServiceMetrics
from mpp.kit.settings import ServiceSettings
from tests.support.locks import until_a_lock_is_awaited

pytestmark = pytest.mark.integration


class Transfer(BaseModel):
    amount: int


async def test_a_deadlock_victim_is_run_again_with_its_body_and_answered(
    fresh_database: Callable[[], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(await fresh_database())
    sessions = session_factory(engine)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE counters (id int PRIMARY KEY, total int NOT NULL)"))
            await conn.execute(text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
        app = create_http_app(
            settings=ServiceSettings(jwt_hs256_secret="x" * 32),
            metrics=ServiceMetrics("conflicts"),
            title="t",
            version="0",
        )
        runs: list[int] = []

        @app.post("/transfers")
        async def transfer(command: Transfer) -> dict[str, int]:
            # Row 1, then row 2: the test's transaction holds row 2 and asks for row 1.
            runs.append(command.amount)
            async with sessions() as session, session.begin():
                await session.execute(
                    text("UPDATE counters SET total = total + :a WHERE id = 1"), {"a": command.amount}
                )
                await session.execute(
                    text("UPDATE counters SET total = total - :a WHERE id = 2"), {"a": command.amount}
                )
            return {"amount": command.amount}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with caplog.at_level(logging.WARNING, logger="mpp.kit.db"):
                async with engine.connect() as other:
                    await other.execute(text("SELECT 1 FROM counters WHERE id = 2 FOR UPDATE"))
                    request = asyncio.create_task(client.post("/transfers", json={"amount": 5}))
                    await until_a_lock_is_awaited(engine)
                    # The request waited first: PostgreSQL rolls it back after deadlock_timeout.
                    await other.execute(text("SELECT 1 FROM counters WHERE id = 1 FOR UPDATE"))
                    await other.rollback()
                response = await request

        assert response.status_code == 200, response.text
        assert response.json() == {"amount": 5}
        assert runs == [5, 5]
        assert [r.getMessage() for r in caplog.records if r.name == "mpp.kit.db"] == [
            "db.transaction.conflict_retried"
        ]
        async with engine.connect() as conn:
            totals = (await conn.execute(text("SELECT id, total FROM counters ORDER BY id"))).all()
        assert [tuple(t) for t in totals] == [(1, 5), (2, -5)]  # once: the victim's run left nothing
    finally:
        await engine.dispose()
