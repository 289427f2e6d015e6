"""Small helpers for tests that read and write topics directly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from mpp.contracts.topics import TopicSpec
from mpp.kit.kafka import ensure_topics, stop_consumer, topic_partitions


async def make_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    await ensure_topics(
        bootstrap,
        [
            TopicSpec(name=n, key="test key", partitions=partitions, owner="tests", retention_ms=3_600_000)
            for n in names
        ],
    )


async def read_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record currently on the topic, in partition then offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(bootstrap, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for recs in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                records.extend(recs)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await stop_consumer(consumer)


async def end_offset_total(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await topic_partitions(bootstrap, topic))
        return sum(ends.values())
    finally:
        await stop_consumer(consumer)


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    interval_s: float = 0.2,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)
