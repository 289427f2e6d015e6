"""Fixtures: the identity service on a fresh PostgreSQL database per test (HTTP only, no Kafka)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.integration.identity.harness import IdentityApi, running_identity


@pytest.fixture
async def identity(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[IdentityApi]:
    async with running_identity(await fresh_database()) as api:
        yield api
