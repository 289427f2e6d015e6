"""Fixtures: loopback provider servers and a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.integration.notification.fakes import FakeGateway, serving


@pytest.fixture
async def database_url(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


@pytest.fixture
async def whatsapp() -> AsyncIterator[FakeGateway]:
    async with serving(FakeGateway("whatsapp")) as gateway:
        yield gateway


@pytest.fixture
async def sms() -> AsyncIterator[FakeGateway]:
    async with serving(FakeGateway("sms")) as gateway:
        yield gateway
