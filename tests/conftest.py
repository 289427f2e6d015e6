"""Shared fixtures: the real Kafka broker and PostgreSQL started by the project's own scripts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.kit.db import create_engine

ROOT = Path(__file__).resolve().parents[1]


def _script(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        ["bash", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of a real broker: ``KAFKA_BOOTSTRAP_SERVERS`` or a local one we start."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        return existing
    env = {"KAFKA_STATE_DIR": str(ROOT / ".local" / "kafka-test")}
    _script("deploy/local/kafka.sh", "start", env=env)
    bootstrap = _script("deploy/local/kafka.sh", "bootstrap", env=env)
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    return bootstrap


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of the test PostgreSQL's ``mpp_test`` database (started by deploy/local/postgres.sh)."""
    url = os.environ.get("MPP_TEST_POSTGRES_URL")
    if url:
        return url
    _script("deploy/local/postgres.sh", "start")
    url = _script("deploy/local/postgres.sh", "url", "mpp_test")
    os.environ["MPP_TEST_POSTGRES_URL"] = url
    return url


@pytest.fixture
async def fresh_database(postgres_admin_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Creates empty PostgreSQL databases for one test and drops them afterwards."""
    created: list[str] = []
    admin = create_engine(postgres_admin_url)

    async def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)

    yield make
    try:
        for name in created:
            await _drop_database(admin, name)
    finally:
        await admin.dispose()


async def _drop_database(admin: AsyncEngine, name: str) -> None:
    # WITH (FORCE) ends the test's own leftover sessions. An autovacuum worker
    # visiting the database can only be ended by a member of pg_signal_backend
    # (granted by deploy/local/postgres.sh); on a server where the role lacks it,
    # the worker finishes within moments, so a few retries are enough.
    for attempt in range(20):
        try:
            async with admin.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError:
            if attempt == 19:
                raise
            await asyncio.sleep(0.25)


def unique_topic(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"
