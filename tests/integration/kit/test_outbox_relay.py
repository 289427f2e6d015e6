"""The outbox relay survives SIGKILL: every event reaches the topic, in order per key, and a consumer
with an inbox applies each event exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.contracts.kafka import header_map
from mpp.kit.consumer import EventConsumer
from mpp.kit.db import create_engine, session_factory
from mpp.kit.kafka import create_producer
from mpp.kit.outbox import outbox_row
from tests.conftest import ROOT, unique_topic
from tests.support.events import (
    EffectHandler,
    applied_counts,
    consumer_offsets,
    inbox,
    metadata,
    outbox,
    sequenced,
)
from tests.support.kafka_tools import end_offset_total, make_topics, read_all, wait_for

pytestmark = pytest.mark.integration

EVENTS = 10_000
KEYS = 50


class Relays:
    """Relay processes started by a test; all are killed at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, url: str, bootstrap: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.relay_worker", url, bootstrap, "250", "100"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.procs.append(proc)
        return proc


@pytest.fixture
def relays() -> Iterator[Relays]:
    r = Relays()
    yield r
    for proc in r.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def fill_outbox(engine: AsyncEngine, topic: str) -> dict[str, int]:
    """Write EVENTS outbox rows over KEYS keys; returns event id -> global sequence."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    expected: dict[str, int] = {}
    now = datetime.now(UTC)
    rows = []
    for i in range(EVENTS):
        env = sequenced(f"key-{i % KEYS}", i // KEYS)
        row = outbox_row(env, now)
        row["topic"] = topic
        rows.append(row)
        expected[str(env.id)] = i
    async with engine.begin() as conn:
        for start in range(0, EVENTS, 1000):
            await conn.execute(insert(outbox), rows[start : start + 1000])
    return expected


class TestRelayKilledWhilePublishing:
    async def test_every_event_arrives_in_order_and_is_applied_once(
        self, kafka_bootstrap: str, fresh_database: Callable[[], Awaitable[str]], relays: Relays
    ) -> None:
        url = await fresh_database()
        topic = unique_topic("relay")
        await make_topics(kafka_bootstrap, topic, topic + ".dlq", partitions=3)
        engine = create_engine(url)
        expected = await fill_outbox(engine, topic)

        relay = relays.start(url, kafka_bootstrap)

        async def some_published() -> bool:
            return await end_offset_total(kafka_bootstrap, topic) >= EVENTS // 4

        await wait_for(
            some_published, timeout_s=120, interval_s=0.05, what="a quarter of the events published"
        )
        os.kill(relay.pid, signal.SIGKILL)
        relay.wait(timeout=30)
        assert relay.returncode == -signal.SIGKILL
        published_before_restart = await end_offset_total(kafka_bootstrap, topic)
        assert published_before_restart < EVENTS, "the relay was killed before it had published everything"

        relay = relays.start(url, kafka_bootstrap)

        async def outbox_empty() -> bool:
            async with engine.connect() as conn:
                query = select(func.count()).where(outbox.c.sent_at.is_(None))
                return (await conn.execute(query)).scalar_one() == 0

        await wait_for(outbox_empty, timeout_s=180, what="the restarted relay to publish the rest")
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=30)

        records = await read_all(kafka_bootstrap, topic)
        ids_on_topic = [header_map(r.headers)["ce_id"] for r in records]
        assert set(ids_on_topic) == set(expected), "every event is on the topic"

        first_seen: dict[str, list[int]] = defaultdict(list)
        seen: set[str] = set()
        for record, eid in zip(records, ids_on_topic, strict=True):
            if eid not in seen:
                seen.add(eid)
                first_seen[record.key.decode()].append(expected[eid])
        for key, order in first_seen.items():
            assert order == sorted(order), f"events of {key} arrived out of order"

        sessions = session_factory(engine)
        producer = create_producer(kafka_bootstrap, client_id="test")
        await producer.start()
        consumer = EventConsumer(
            group_id=f"{topic}.group",
            topics=[topic],
            bootstrap=kafka_bootstrap,
            sessions=sessions,
            inbox=inbox,
            offsets=consumer_offsets,
            handler=EffectHandler(),
            producer=producer,
            dead_letter_topic=topic + ".dlq",
        )
        await consumer.start()
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))

        async def all_applied() -> bool:
            async with sessions() as s:
                return len(await applied_counts(s)) == EVENTS

        try:
            await wait_for(all_applied, timeout_s=120, what="the consumer to apply every event")
            await asyncio.sleep(1)  # let any late duplicate arrive before counting
        finally:
            stop.set()
            await task
            await consumer.stop()
            await producer.stop()
        async with sessions() as s:
            counts = await applied_counts(s)
        await engine.dispose()
        assert set(counts) == set(expected)
        assert set(counts.values()) == {1}, "no effect applied twice"
        assert consumer.duplicates == len(records) - EVENTS


class TestRelayStoppedGracefully:
    async def test_sigterm_flushes_the_outbox_before_exiting(
        self, kafka_bootstrap: str, fresh_database: Callable[[], Awaitable[str]], relays: Relays
    ) -> None:
        url = await fresh_database()
        topic = unique_topic("relay-term")
        await make_topics(kafka_bootstrap, topic, partitions=3)
        engine = create_engine(url)
        expected = await fill_outbox(engine, topic)
        relay = relays.start(url, kafka_bootstrap)

        async def started_publishing() -> bool:
            return await end_offset_total(kafka_bootstrap, topic) > 0

        await wait_for(
            started_publishing, timeout_s=120, interval_s=0.05, what="the relay to start publishing"
        )
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=60) == 0
        async with engine.connect() as conn:
            unsent = (await conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None)))).scalar_one()
        await engine.dispose()
        assert unsent == 0, "the relay drained the outbox before it exited"
        records = await read_all(kafka_bootstrap, topic)
        assert {header_map(r.headers)["ce_id"] for r in records} == set(expected)
