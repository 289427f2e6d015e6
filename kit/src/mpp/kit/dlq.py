"""Operator tools for dead letters: list them with their reasons, and replay them once fixed.

``python -m mpp.kit.dlq list --group mpp.reporting.projector``
``python -m mpp.kit.dlq replay --group mpp.reporting.projector [--limit N]``

Replay is bounded: it moves the dead letters present when it starts back to their original topic
(without the ``dlq_*`` headers) and records its progress in the consumer group ``<group>.dlq-replay``,
so a dead letter is replayed once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from mpp.contracts.kafka import header_map
from mpp.kit.consumer import DLQ_PREFIX
from mpp.kit.kafka import PLAINTEXT, KafkaSecurity, create_producer, stop_consumer, topic_partitions
from mpp.kit.settings import ServiceSettings


@dataclass(frozen=True)
class DeadLetter:
    dlq_offset: int
    origin_topic: str
    origin_partition: int
    origin_offset: int
    reason: str
    error: str
    attempts: int
    failed_at: str
    event_type: str | None
    event_id: str | None


def _entry(record: Any) -> DeadLetter:
    h = header_map(record.headers or [])
    return DeadLetter(
        dlq_offset=record.offset,
        origin_topic=h.get("dlq_origin_topic", ""),
        origin_partition=int(h.get("dlq_origin_partition", "-1")),
        origin_offset=int(h.get("dlq_origin_offset", "-1")),
        reason=h.get("dlq_reason", ""),
        error=h.get("dlq_error", ""),
        attempts=int(h.get("dlq_attempts", "0")),
        failed_at=h.get("dlq_failed_at", ""),
        event_type=h.get("ce_type"),
        event_id=h.get("ce_id"),
    )


async def _read_until_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> list[Any]:
    records: list[Any] = []
    remaining = {tp: end for tp, end in ends.items() if await consumer.position(tp) < end}
    while remaining:
        batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
        for tp, recs in batch.items():
            records.extend(r for r in recs if r.offset < ends[tp])
        for tp in list(remaining):
            if await consumer.position(tp) >= remaining[tp]:
                del remaining[tp]
    return records


async def list_dead_letters(
    bootstrap: str, group_id: str, limit: int | None = None, *, security: KafkaSecurity = PLAINTEXT
) -> list[DeadLetter]:
    """Every dead letter of the consumer group (oldest first), without consuming them."""
    topic = f"{group_id}.dlq"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **security.options()
    )
    await consumer.start()
    try:
        tps = await topic_partitions(bootstrap, topic, security=security)
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        entries = [_entry(r) for r in await _read_until_end(consumer, ends)]
    finally:
        await stop_consumer(consumer)
    entries.sort(key=lambda e: e.dlq_offset)
    return entries[:limit] if limit is not None else entries


async def replay(
    bootstrap: str, group_id: str, limit: int | None = None, *, security: KafkaSecurity = PLAINTEXT
) -> int:
    """Move dead letters back to their original topics; returns how many were replayed."""
    topic = f"{group_id}.dlq"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{group_id}.dlq-replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **security.options(),
    )
    producer = create_producer(bootstrap, client_id=f"{group_id}.dlq-replay", security=security)
    await consumer.start()
    await producer.start()
    replayed = 0
    try:
        tps = await topic_partitions(bootstrap, topic, security=security)
        if not tps:
            return 0
        consumer.assign(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        for tp, off in committed.items():
            if off is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, off)
        ends = await consumer.end_offsets(tps)
        records = await _read_until_end(consumer, ends)
        records.sort(key=lambda r: (r.partition, r.offset))
        if limit is not None:
            records = records[:limit]
        futures = []
        for record in records:
            h = header_map(record.headers or [])
            headers = [(k, v) for k, v in record.headers or [] if not k.startswith(DLQ_PREFIX)]
            headers.append(("mpp_replayed_from", f"{topic}:{record.partition}:{record.offset}".encode()))
            futures.append(
                await producer.send(
                    h["dlq_origin_topic"], value=record.value, key=record.key, headers=headers
                )
            )
        await asyncio.gather(*futures)
        replayed = len(records)
        done: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            done[tp] = max(done.get(tp, 0), record.offset + 1)
        if done:
            await consumer.commit(done)
    finally:
        await producer.stop()
        await stop_consumer(consumer)
    return replayed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpp.kit.dlq", description="List or replay dead letters.")
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("--group", required=True, help="consumer group, e.g. mpp.reporting.projector")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    security = KafkaSecurity.from_settings(ServiceSettings())
    if args.command == "list":
        entries = asyncio.run(list_dead_letters(args.bootstrap, args.group, args.limit, security=security))
        for e in entries:
            sys.stdout.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")
        sys.stderr.write(f"{len(entries)} dead letter(s) in {args.group}.dlq\n")
    else:
        n = asyncio.run(replay(args.bootstrap, args.group, args.limit, security=security))
        sys.stderr.write(f"replayed {n} dead letter(s) from {args.group}.dlq\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
