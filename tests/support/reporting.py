"""Helpers for tests that feed the reporting projector through the real broker: start a database at the
topics' current ends, publish envelopes, wait until they are projected, and read every figure back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.contracts.envelope import Envelope
from mpp.contracts.kafka import to_record
from mpp.contracts.topics import consumer_group
from mpp.kit.db import create_engine
from mpp.kit.kafka import stop_consumer, topic_partitions
from mpp.kit.migrations import upgrade
from mpp.reporting.app import MIGRATIONS, PROJECTOR_GROUP
from mpp.reporting.domain.metrics import METRICS
from mpp.reporting.persistence.tables import consumer_offsets
from mpp.reporting.rebuild import ORIGIN_SUFFIX

TOPICS = tuple(consumer_group(PROJECTOR_GROUP).topics)


async def topic_ends(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of every partition the projector reads."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [tp for topic in TOPICS for tp in await topic_partitions(bootstrap, topic)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await stop_consumer(consumer)


async def start_at_the_end(database_url: str, group: str, bootstrap: str) -> dict[TopicPartition, int]:
    """Migrate the database and record the topics' current ends as consumed by ``group`` and as the
    origin a rebuild starts from: other runs' events already on the shared topics stay out."""
    ends = await topic_ends(bootstrap)
    engine = create_engine(database_url)
    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.begin() as conn:
            for consumer in (group, group + ORIGIN_SUFFIX):
                await conn.execute(
                    insert(consumer_offsets),
                    [
                        {
                            "consumer": consumer,
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "offset": end - 1,
                        }
                        for tp, end in ends.items()
                    ],
                )
    finally:
        await engine.dispose()
    return ends


async def publish(producer: AIOKafkaProducer, envelopes: Iterable[Envelope]) -> None:
    futures = []
    for envelope in envelopes:
        key, value, headers = to_record(envelope)
        futures.append(await producer.send(envelope.topic, value=value, key=key, headers=headers))
    for future in futures:
        await future


async def stored_offsets(engine: AsyncEngine, group: str) -> dict[TopicPartition, int]:
    t = consumer_offsets
    async with engine.connect() as conn:
        rows = (await conn.execute(select(t).where(t.c.consumer == group))).all()
    return {TopicPartition(r.topic, r.partition): int(r.offset) for r in rows}


async def projected_up_to(engine: AsyncEngine, group: str, ends: dict[TopicPartition, int]) -> bool:
    """Whether ``group`` has stored every offset before ``ends``."""
    stored = await stored_offsets(engine, group)
    return all(stored.get(tp, -1) >= end - 1 for tp, end in ends.items())


QUERIES: tuple[tuple[str, str | None], ...] = (
    ("day", None),
    ("day", "site"),
    ("week", "agency"),
    ("month", "service_type"),
    ("month", "hour"),
    ("all", None),
    ("all", "site"),
    ("all", "agency"),
    ("all", "service_type"),
    ("all", "kabkota"),
    ("all", "weekday"),
    ("all", "hour"),
)
"""(period, group_by) pairs read for every metric and scope."""
HOURLY = frozenset({"M3", "M4", "D1", "D2"})


async def every_figure(
    client: httpx.AsyncClient, headers: dict[str, str], scopes: Sequence[dict[str, str]]
) -> dict[str, Any]:
    """Every metric for every scope (query filters) and each of :data:`QUERIES`: the rows the API answers."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        for scope in scopes:
            for period, group in QUERIES:
                if group == "hour" and metric.id not in HOURLY:
                    continue
                params = {**scope, "period": period}
                if group is not None:
                    params["group_by"] = group
                response = await client.get(f"/v1/metrics/{metric.id}", params=params, headers=headers)
                assert response.status_code == 200, response.text
                out[f"{metric.id} {sorted(params.items())}"] = response.json()["rows"]
    return out
