"""Fixtures: the reporting service on a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.integration.reporting.harness import ReportingApi, running_reporting


@pytest.fixture
async def reporting(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[ReportingApi]:
    async with running_reporting(await fresh_database()) as api:
        yield api
