"""Records handed out before the rebalance listener has sought to the database's offsets are never
applied again: the consumer reads its stored offsets before applying the first batch of a partition."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from sqlalchemy import insert

from mpp.contracts.kafka import header_map, to_record
from mpp.kit.consumer import EventConsumer
from mpp.kit.db import create_engine, session_factory
from tests.support.events import EffectHandler, applied_counts, consumer_offsets, inbox, metadata, sequenced

pytestmark = pytest.mark.integration

TOPIC = "test.floor"


def record(offset: int, key: str = "k") -> SimpleNamespace:
    envelope = sequenced(key, offset)
    k, value, headers = to_record(envelope)
    return SimpleNamespace(topic=TOPIC, partition=0, offset=offset, key=k, value=value, headers=headers)


class TestStoredOffsetsAreAFloor:
    async def test_a_batch_from_before_the_seek_applies_only_what_lies_beyond_the_stored_offset(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        engine = create_engine(await fresh_database())
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            # The database says offsets up to 5 were applied; their inbox entries are long forgotten.
            await conn.execute(
                insert(consumer_offsets), [{"consumer": "g", "topic": TOPIC, "partition": 0, "offset": 5}]
            )
        sessions = session_factory(engine)
        consumer = EventConsumer(
            group_id="g",
            topics=[TOPIC],
            bootstrap="127.0.0.1:1",
            sessions=sessions,
            inbox=inbox,
            offsets=consumer_offsets,
            handler=EffectHandler(),
            producer=None,
            offsets_from_database_only=True,
        )
        records = [record(i) for i in range(10)]

        await consumer.process({TopicPartition(TOPIC, 0): records})

        async with sessions() as s:
            applied = await applied_counts(s)
        await engine.dispose()
        assert set(applied) == {header_map(r.headers)["ce_id"] for r in records[6:]}
        assert consumer.processed == 4
