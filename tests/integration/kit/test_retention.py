"""What the runtime forgets: personal-data outbox rows as soon as they are on Kafka, and inbox entries
once they are older than the deduplication window."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from mpp.kit.consumer import EventConsumer
from mpp.kit.db import create_engine, session_factory
from mpp.kit.kafka import create_producer
from mpp.kit.outbox import outbox_row
from mpp.kit.relay import OutboxRelay
from tests.conftest import unique_topic
from tests.support.events import consumer_offsets, inbox, metadata, outbox, sequenced
from tests.support.kafka_tools import make_topics, read_all

pytestmark = pytest.mark.integration


class TestOutboxRetention:
    @pytest.mark.parametrize("database", ["postgresql", "sqlite"])
    async def test_rows_of_personal_data_topics_are_deleted_once_published(
        self,
        kafka_bootstrap: str,
        fresh_database: Callable[[], Awaitable[str]],
        tmp_path: Path,
        database: str,
    ) -> None:
        personal, ordinary = unique_topic("personal"), unique_topic("ordinary")
        await make_topics(kafka_bootstrap, personal, ordinary)
        url = await fresh_database() if database == "postgresql" else f"sqlite:///{tmp_path / 'outbox.db'}"
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            now = datetime.now(UTC)
            rows = []
            for i in range(10):
                row = outbox_row(sequenced("k", i), now)
                row["topic"] = personal if i % 2 else ordinary
                rows.append(row)
            await conn.execute(insert(outbox), rows)
        producer = create_producer(kafka_bootstrap, client_id="test")
        await producer.start()
        try:
            relay = OutboxRelay(
                engine=engine, outbox=outbox, producer=producer, purge_at_once_topics=frozenset({personal})
            )
            assert await relay.publish_batch() == 10
        finally:
            await producer.stop()
        async with engine.connect() as conn:
            left = (await conn.execute(select(outbox.c.topic, outbox.c.sent_at))).all()
        await engine.dispose()
        assert {topic for topic, _ in left} == {ordinary}
        assert len(left) == 5 and all(sent is not None for _, sent in left)
        assert len(await read_all(kafka_bootstrap, personal)) == 5


OLD, RECENT = "0190c0de-0000-7000-8000-000000000001", "0190c0de-0000-7000-8000-000000000002"


class TestInboxRetention:
    async def test_only_entries_older_than_the_window_are_forgotten(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        engine = create_engine(await fresh_database())
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            now = datetime.now(UTC)
            await conn.execute(
                insert(inbox),
                [
                    {"consumer": "g", "event_id": OLD, "processed_at": now - timedelta(days=31)},
                    {"consumer": "g", "event_id": RECENT, "processed_at": now - timedelta(days=29)},
                    {"consumer": "other", "event_id": OLD, "processed_at": now - timedelta(days=90)},
                ],
            )
        consumer = EventConsumer(
            group_id="g",
            topics=["unused"],
            bootstrap="127.0.0.1:1",
            sessions=session_factory(engine),
            inbox=inbox,
            offsets=consumer_offsets,
            handler=lambda _s, _e: _noop(),
            producer=None,
            inbox_retention=timedelta(days=30),
        )
        assert await consumer.purge_inbox() == 1
        async with engine.connect() as conn:
            kept = set((await conn.execute(select(inbox.c.consumer, inbox.c.event_id))).all())
        await engine.dispose()
        assert kept == {("g", RECENT), ("other", OLD)}


async def _noop() -> None:
    return None
