"""The consumer on a real broker and PostgreSQL: inbox deduplication, poison messages and dead letters,
replay, and a database outage under load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mpp.contracts.envelope import Envelope
from mpp.contracts.kafka import to_record
from mpp.kit.consumer import EventConsumer
from mpp.kit.db import create_engine, session_factory
from mpp.kit.dlq import list_dead_letters, replay
from mpp.kit.kafka import create_producer
from tests.conftest import ROOT, unique_topic
from tests.support.events import (
    EffectHandler,
    applied_counts,
    consumer_offsets,
    inbox,
    metadata,
    sequenced,
)
from tests.support.kafka_tools import make_topics, wait_for

pytestmark = pytest.mark.integration


@dataclass
class Harness:
    topic: str
    group: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    handler: EffectHandler
    consumer: EventConsumer
    bootstrap: str

    async def send(self, env: Envelope) -> None:
        key, value, headers = to_record(env)
        await (await self.producer.send(self.topic, value=value, key=key, headers=headers))

    async def send_raw(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await (await self.producer.send(self.topic, value=value, key=key, headers=headers))

    async def applied(self) -> dict[str, int]:
        async with self.sessions() as s:
            return await applied_counts(s)


@contextlib.asynccontextmanager
async def running_harness(url: str, kafka_bootstrap: str) -> AsyncIterator[Harness]:
    topic = unique_topic("consumer")
    group = f"{topic}.group"
    await make_topics(kafka_bootstrap, topic, f"{group}.dlq", partitions=3)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessions = session_factory(engine)
    producer = create_producer(kafka_bootstrap, client_id="test")
    await producer.start()
    handler = EffectHandler()
    consumer = EventConsumer(
        group_id=group,
        topics=[topic],
        bootstrap=kafka_bootstrap,
        sessions=sessions,
        inbox=inbox,
        offsets=consumer_offsets,
        handler=handler,
        producer=producer,
        max_records=200,
        max_backoff_s=1.0,
    )
    await consumer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield Harness(topic, group, engine, sessions, producer, handler, consumer, kafka_bootstrap)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)
        await consumer.stop()
        await producer.stop()
        await engine.dispose()


@pytest.fixture
async def harness(
    kafka_bootstrap: str, fresh_database: Callable[[], Awaitable[str]]
) -> AsyncIterator[Harness]:
    async with running_harness(await fresh_database(), kafka_bootstrap) as h:
        yield h


class TestInbox:
    async def test_the_same_event_delivered_twice_changes_the_read_model_once(self, harness: Harness) -> None:
        env = sequenced("k1", 1)
        other = sequenced("k1", 2)
        await harness.send(env)
        await harness.send(env)
        await harness.send(other)

        async def both_applied() -> bool:
            return len(await harness.applied()) == 2

        await wait_for(both_applied, timeout_s=60, what="two distinct events applied")
        await asyncio.sleep(0.5)
        applied = await harness.applied()
        assert applied == {str(env.id): 1, str(other.id): 1}
        assert harness.consumer.duplicates == 1


class TestPoisonMessages:
    async def test_poison_goes_to_the_dead_letter_topic_and_the_rest_is_processed(
        self, harness: Harness
    ) -> None:
        good_before = [sequenced("p", i) for i in range(5)]
        boom = sequenced("p", 5, boom=True)
        good_after = [sequenced("p", i) for i in range(6, 11)]
        for env in good_before:
            await harness.send(env)
        key, _value, headers = to_record(sequenced("p", 99))
        await harness.send_raw(key, b"{this is not json", headers)
        unknown = [(k, v) if k != "ce_type" else (k, b"NoSuchEvent") for k, v in headers]
        await harness.send_raw(key, b'{"key": "p", "seq": 100}', unknown)
        await harness.send(boom)
        for env in good_after:
            await harness.send(env)

        async def good_applied() -> bool:
            return len(await harness.applied()) == 10

        await wait_for(good_applied, timeout_s=60, what="the ten good events")

        async def three_dead_letters() -> bool:
            return len(await list_dead_letters(harness.bootstrap, harness.group)) == 3

        await wait_for(three_dead_letters, timeout_s=30, what="three dead letters")
        letters = await list_dead_letters(harness.bootstrap, harness.group)
        reasons = {d.reason: d for d in letters}
        assert set(reasons) == {"malformed", "unknown_type", "handler_error"}
        assert "invalid payload" in reasons["malformed"].error
        assert "NoSuchEvent" in reasons["unknown_type"].error
        assert "Exploded" in reasons["handler_error"].error
        assert reasons["handler_error"].attempts == 3
        assert all(d.origin_topic == harness.topic for d in letters)
        assert str(boom.id) not in await harness.applied()

        # The consumer keeps running after poison.
        late = sequenced("p", 200)
        await harness.send(late)

        async def late_applied() -> bool:
            return str(late.id) in await harness.applied()

        await wait_for(late_applied, timeout_s=60, what="an event sent after the poison")

        # Once the handler is fixed, replay moves the dead letters back; the fixed one is applied.
        harness.handler.fail_on_boom = False
        assert await replay(harness.bootstrap, harness.group) == 3

        async def boom_applied() -> bool:
            return str(boom.id) in await harness.applied()

        await wait_for(boom_applied, timeout_s=60, what="the replayed event to be applied")

        async def malformed_back_in_dlq() -> bool:
            return len(await list_dead_letters(harness.bootstrap, harness.group)) == 5

        await wait_for(malformed_back_in_dlq, timeout_s=60, what="still-broken records back in the DLQ")
        # A second replay only moves what arrived since the first one.
        assert await replay(harness.bootstrap, harness.group) == 2
        assert set((await harness.applied()).values()) == {1}


OUTAGE_PG = {"PG_STATE_DIR": str(ROOT / ".local" / "postgres-outage")}


def _postgres(*args: str) -> str:
    """Drive a PostgreSQL instance of this test's own, so stopping it disturbs no other test."""
    out = subprocess.run(
        ["bash", "deploy/local/postgres.sh", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **OUTAGE_PG},
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


@pytest.fixture
async def outage_harness(kafka_bootstrap: str) -> AsyncIterator[Harness]:
    if os.environ.get("POSTGRES_URL"):
        pytest.fail("the outage test needs a local PostgreSQL it may stop; unset POSTGRES_URL")
    _postgres("start")
    try:
        name = f"outage_{uuid.uuid4().hex[:10]}"
        admin = create_engine(_postgres("url", "mpp_test"))
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        async with running_harness(_postgres("url", name), kafka_bootstrap) as h:
            yield h
    finally:
        _postgres("stop")


class TestDatabaseOutage:
    async def test_consumer_pauses_while_postgres_is_down_and_loses_nothing(
        self, outage_harness: Harness
    ) -> None:
        harness = outage_harness
        total = 3000
        sent: list[str] = []

        async def produce() -> None:
            for i in range(total):
                env = sequenced(f"o{i % 20}", i)
                sent.append(str(env.id))
                await harness.send(env)
                if i % 100 == 0:
                    await asyncio.sleep(0.05)

        producing = asyncio.create_task(produce())

        async def some_applied() -> bool:
            return len(await harness.applied()) > 300

        await wait_for(some_applied, timeout_s=60, what="progress before the outage")
        _postgres("stop")
        try:

            async def paused() -> bool:
                return harness.consumer.paused

            await wait_for(paused, timeout_s=30, what="the consumer to pause")
            await asyncio.sleep(3)
            assert harness.consumer.paused
        finally:
            _postgres("start")
        await producing

        async def everything_applied() -> bool:
            try:
                return len(await harness.applied()) == total
            except Exception:
                return False

        await wait_for(everything_applied, timeout_s=120, what="all events applied after the outage")
        assert not harness.consumer.paused
        applied = await harness.applied()
        assert set(applied) == set(sent)
        assert set(applied.values()) == {1}
        assert not await list_dead_letters(harness.bootstrap, harness.group), (
            "outage errors are never dead-lettered"
        )
