"""A consumer that handles some event types skips records of the other known types by their ``ce_type``
header, without parsing them; records of types it handles are still parsed (malformed ones dead-lettered)
and unknown type names are still dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select

from mpp.contracts.events.common import Channel
from mpp.contracts.events.queue import VisitStartedV1
from mpp.contracts.kafka import to_record
from mpp.kit.consumer import EventConsumer
from mpp.kit.db import create_engine, session_factory
from tests.support.events import EffectHandler, applied_counts, consumer_offsets, inbox, metadata, sequenced

pytestmark = pytest.mark.integration


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]]
    key: bytes = b"k"


@dataclass
class Producer:
    sent: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    async def send(self, topic: str, *, value: Any, key: Any, headers: list[tuple[str, bytes]]) -> Any:
        self.sent.append((topic, dict(headers)))

        async def done() -> None:
            return None

        return done()


def _retyped(headers: list[tuple[str, bytes]], name: bytes) -> list[tuple[str, bytes]]:
    return [(k, name if k == "ce_type" else v) for k, v in headers]


async def test_known_types_not_handled_are_skipped_unparsed(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    engine = create_engine(await fresh_database())
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    producer = Producer()
    consumer = EventConsumer(
        group_id="types.group",
        topics=["types"],
        bootstrap="127.0.0.1:1",
        sessions=session_factory(engine),
        inbox=inbox,
        offsets=consumer_offsets,
        handler=EffectHandler(),
        producer=producer,
        event_types=frozenset({"TestSequenced"}),
        offsets_from_database_only=True,
    )
    handled = sequenced("k", 1)
    _k, value, headers = to_record(handled)
    _k, visit_value, visit_headers = to_record(
        sequenced("k", 2).model_copy(
            update={
                "type": "VisitStarted",
                "payload": VisitStartedV1(
                    visit_id="vis-1", channel=Channel.WALK_IN, started_at=datetime.now(UTC)
                ),
            }
        )
    )
    broken = json.dumps({"key": "k", "seq": "not a number"}).encode()
    records = [
        Record("types", 0, 0, value, headers),
        # A known type this consumer does not handle, even malformed: skipped.
        Record("types", 0, 1, b"{not json", _retyped(visit_headers, b"VisitStarted")),
        Record("types", 0, 2, visit_value, _retyped(visit_headers, b"VisitStarted")),
        # A handled type that is malformed, and an unknown type name: dead-lettered with their reasons.
        Record("types", 0, 3, broken, headers),
        Record("types", 0, 4, value, _retyped(headers, b"SomethingNobodyPublishes")),
    ]
    try:
        await consumer.process({TopicPartition("types", 0): records})
        async with session_factory(engine)() as session:
            applied = await applied_counts(session)
            stored = (await session.execute(select(consumer_offsets.c.offset))).scalars().all()
    finally:
        await engine.dispose()
    assert applied == {str(handled.id): 1}
    assert [(topic, h["dlq_reason"]) for topic, h in producer.sent] == [
        ("types.group.dlq", b"malformed"),
        ("types.group.dlq", b"unknown_type"),
    ]
    assert [h["dlq_origin_offset"] for _t, h in producer.sent] == [b"3", b"4"]
    assert stored == [4]
