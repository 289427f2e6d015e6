"""The demo seed on PostgreSQL: synthetic citizens, the same ones every time, registered once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import func, select

from mpp.identity.app import citizen_keys
from mpp.identity.persistence.repository import CitizenRepository
from mpp.identity.persistence.tables import citizens
from mpp.identity.seed import SeedResult, seed
from mpp.kit.db import create_engine, session_factory
from tests.integration.identity.harness import SITE, settings_for

pytestmark = pytest.mark.integration


class TestSeed:
    async def test_registers_synthetic_citizens_once_however_often_it_runs(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        settings = settings_for(await fresh_database())

        first = await seed(settings, count=12)
        again = await seed(settings, count=15)

        assert first == SeedResult(created=12, existing=0)
        assert again == SeedResult(created=3, existing=12)
        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                total = (await conn.execute(select(func.count()).select_from(citizens))).scalar_one()
            assert total == 15
        finally:
            await engine.dispose()

    async def test_seeded_citizens_are_obviously_fake_consistent_and_some_deceased(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        settings = settings_for(await fresh_database())

        await seed(settings, count=6, start=47)

        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                repository = CitizenRepository(session, citizen_keys(settings))
                records = [
                    await repository.get(ref)
                    for ref in (await session.execute(select(citizens.c.citizen_ref))).scalars()
                ]
        finally:
            await engine.dispose()
        by_name = {c.full_name: c for c in records if c is not None}
        assert sorted(by_name) == [f"Warga Uji {n:04d}" for n in range(47, 53)]
        assert {n: c.status.value for n, c in by_name.items() if c.status.value != "active"} == {
            "Warga Uji 0050": "deceased"
        }
        assert all(c.site == SITE and c.domicile_kabkota == "3298" for c in by_name.values())
        assert all(c.nik.startswith("3298") for c in by_name.values())
