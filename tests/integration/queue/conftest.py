"""Fixtures: the queue service on a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.integration.queue.harness import QueueApi, running_queue


@pytest.fixture
async def queue(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[QueueApi]:
    async with running_queue(await fresh_database(), pool_size=20) as api:
        yield api
