"""Fixtures: the licensing service on a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.integration.licensing.harness import LicensingApi, running_licensing


@pytest.fixture
async def licensing(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[LicensingApi]:
    async with running_licensing(await fresh_database()) as api:
        yield api
