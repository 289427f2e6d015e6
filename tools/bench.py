"""``make bench``: throughput and latency of the platform's hot paths on a real broker and PostgreSQL.

One run, one broker, measured in this order:

1. ``raw``: the aiokafka producer with the platform's settings (``create_producer``: acks=all,
   idempotent), pipelined sends; then the aiokafka consumer (``getmany``) over the same topic.
2. ``relay``: ``OutboxRelay.publish_batch()`` in a loop until the outbox is empty, on a fresh database
   with the licensing migrations, for several batch sizes.
3. ``projection``: the kit ``EventConsumer`` with the reporting projector on a fresh database, from
   offset 0 of a topic of real ApplicationSubmitted/PermitIssued records, for several ``max_records``.
   ``reporting-rebuild`` and ``reporting-pages`` (tools/bench_reporting.py): the reporting projector over
   a realistic event mix from the beginning (``--rebuild-events``, 200,000 by default, 1,000,000 for the
   issue's figure; smaller runs print the 1,000,000-event time as a linear extrapolation), and p50/p99 of
   the ministry's pages over read models of ``--pages-sites`` MPPs x a year generated in PostgreSQL.
4. ``submit``: ``POST /v1/applications`` against the licensing service run by uvicorn in a subprocess,
   driven from this process with httpx (HTTP/1.1 keep-alive, closed loop).
5. ``lifecycle``: applications carried from submit through NIK verification to PermitIssued across the
   identity and licensing processes, open loop at fixed offered rates (tools/bench_lifecycle.py). It
   publishes to the registry topics of the broker it is given, under a site code and consumer groups of
   its own. ``--only raw,lifecycle`` runs it with its raw baseline.
6. ``queue``: kiosk ticket issue and 50 counters calling the next ticket against the queue service run as
   a process (tools/bench_queue.py).

Prints a table and writes ``artifacts/bench.json``. Targets are printed as information: a benchmark
measures, it never fails on a target. It fails (exit 1) only when what it measures misbehaves: an HTTP
error, a lost or dead-lettered event, a phase that could not run.

The relay and projection loops are timed per batch (SQL statements by kind, fetch, parse, apply,
offset commit), never per event, so the breakdown costs nothing measurable. ``--profile`` adds cProfile
passes (CPU time) of the relay loop, the projection loop and the licensing server after the measured
runs: artifacts/bench_profile_{relay,projection,submit}.txt, own time grouped by package first; and of
identity and licensing under the lifecycle load: artifacts/bench_profile_lifecycle_{identity,licensing}.txt.

Environment (set by tools/bench.sh): ``KAFKA_BOOTSTRAP_SERVERS``; ``MPP_BENCH_POSTGRES_URL`` (a database
on a server where the role may create databases); ``MPP_BENCH_LOCAL_KAFKA=1`` when bench.sh started the
broker; ``MPP_BENCH_KAFKA_PID`` and ``MPP_BENCH_POSTGRES_PID`` to report the broker's and the database
server's CPU (without them, a broker or server on this machine is found by its listening port). The
submit phase runs the licensing relay as in production, so it publishes its applications to
``mpp.licensing.applications`` on that broker: use ``--no-submit-relay`` on a shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel
from mpp.contracts.events.licensing import ApplicationSubmittedV1, PermitIssuedV1
from mpp.contracts.kafka import Headers, to_record
from mpp.contracts.masterdata import ServiceType, load_demo_catalogue
from mpp.contracts.nik import generate_test_nik
from mpp.contracts.topics import LICENSING_APPLICATIONS, TopicSpec
from mpp.contracts.topics import topic as registry_topic
from mpp.kit.auth import issue_token
from mpp.kit.consumer import EventConsumer
from mpp.kit.db import create_engine, session_factory
from mpp.kit.kafka import create_producer, ensure_topics, stop_consumer, topic_partitions
from mpp.kit.migrations import upgrade
from mpp.kit.outbox import outbox_row
from mpp.kit.relay import OutboxRelay
from mpp.licensing.app import MIGRATIONS as LICENSING_MIGRATIONS
from mpp.licensing.persistence.tables import outbox as licensing_outbox
from mpp.reporting.api.messaging import projector
from mpp.reporting.app import MIGRATIONS as REPORTING_MIGRATIONS
from mpp.reporting.domain.projection import DEFAULT_TZ, PROJECTED_TYPES
from mpp.reporting.persistence.tables import consumer_offsets, daily_counts, inbox
from tools import bench_queue, bench_reporting
from tools.bench_lifecycle import LifecycleConfig, run_lifecycle
from tools.bench_notification import TARGET_PER_S as NOTIFICATION_TARGET_PER_S
from tools.bench_notification import run_notification
from tools.bench_support import (
    WATCHED_PIDS,
    Meter,
    PhaseTimer,
    SqlTimer,
    listening_pid,
    percentile,
    profile_report,
    profiled,
)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
PARTITIONS = registry_topic(LICENSING_APPLICATIONS).partitions  # bench topics are shaped like it
SECTIONS = (
    "raw",
    "relay",
    "projection",
    "reporting-rebuild",
    "reporting-pages",
    "submit",
    "lifecycle",
    "notification",
    "queue",
)

# Information only: printed next to the figures, never asserted.
TARGETS: dict[str, tuple[str, float, str]] = {
    "projection_vs_raw_consume_ratio": (">=", 0.25, "projection >= 25% of raw consume"),
    "relay_events_per_s": (">=", 10_000.0, "relay >= 10,000 events/s"),
    "submit_requests_per_s": (">=", 500.0, "submit >= 500 req/s"),
    "submit_latency_p99_ms": ("<", 100.0, "submit p99 < 100 ms"),
    "lifecycle_completed_per_s": (">=", 300.0, "lifecycle >= 300 complete/s"),
    "notification_messages_per_s": (">=", NOTIFICATION_TARGET_PER_S, "notification >= 500 messages/s"),
    **bench_queue.TARGETS,
    **bench_reporting.TARGETS,
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str
    label: str


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, section: str, name: str, value: float, unit: str, label: str) -> None:
        self.figures[name] = Figure(section, name, float(value), unit, label)

    def value(self, name: str) -> float | None:
        fig = self.figures.get(name)
        return fig.value if fig is not None else None

    def fail(self, message: str) -> None:
        log(f"ERROR: {message}")
        self.errors.append(message)


@dataclass
class Bench:
    args: argparse.Namespace
    bootstrap: str
    admin_url: str
    run_id: str
    results: Results
    topics: list[str] = field(default_factory=list)
    background_busy_pct: float | None = None

    def topic(self, name: str) -> str:
        full = f"bench.{self.run_id}.{name}"
        self.topics.append(full)
        return full


def meter_figures(results: Results, section: str, prefix: str, meter: Meter) -> None:
    results.add(section, f"{prefix}_wall_s", meter.wall_s, "s", f"{prefix}: wall time")
    results.add(
        section,
        f"{prefix}_bench_process_cpu_pct",
        meter.process_cpu_pct,
        "%",
        "bench process CPU (100 = 1 core)",
    )
    if meter.machine_busy_pct is not None:
        results.add(
            section,
            f"{prefix}_machine_cpu_busy_pct",
            meter.machine_busy_pct,
            "%",
            "machine CPU busy (all cores)",
        )
    for name, pct in meter.other_cpu_pct.items():
        results.add(section, f"{prefix}_{name}_cpu_pct", pct, "%", f"{name} process CPU (100 = 1 core)")


# --------------------------------------------------------------------------------------------------
# infrastructure helpers
# --------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_database(bench: Bench, label: str) -> AsyncIterator[str]:
    """An empty PostgreSQL database for one phase, dropped afterwards."""
    name = f"bench_{label}_{bench.run_id}"
    admin = create_engine(bench.admin_url, pool_size=1)
    try:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(bench.admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def make_topic(bench: Bench, name: str) -> None:
    spec = TopicSpec(name=name, key="bench key", partitions=PARTITIONS, owner="bench", retention_ms=3_600_000)
    await ensure_topics(bench.bootstrap, [spec])


async def delete_topics(bench: Bench) -> None:
    if not bench.topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.bootstrap, client_id="mpp-bench-admin")
    await admin.start()
    try:
        await admin.delete_topics(bench.topics)
    finally:
        await admin.close()


async def end_offsets_total(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await topic_partitions(bootstrap, topic))
        return int(sum(ends.values()))
    finally:
        await stop_consumer(consumer)


async def started_producer(bench: Bench, client_id: str) -> AIOKafkaProducer:
    producer = create_producer(bench.bootstrap, client_id=client_id)
    await producer.start()
    return producer


async def produce_pipelined(
    producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[bytes, bytes, Headers | None]]
) -> None:
    """Send every record without awaiting its acknowledgement, then await them all."""
    futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in records]
    await asyncio.gather(*futures)


async def consume_count(
    bootstrap: str, topic: str, expected: int, *, max_records: int, timeout_s: float
) -> tuple[int, Meter]:
    """Read ``topic`` from the beginning with getmany until ``expected`` records (the kit's fetch settings)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = await topic_partitions(bootstrap, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = 0
        meter = Meter().start()
        while count < expected and meter.elapsed() < timeout_s:
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            for recs in batches.values():
                count += len(recs)
        meter.stop()
        return count, meter
    finally:
        await stop_consumer(consumer)


# --------------------------------------------------------------------------------------------------
# realistic events
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Demo:
    site: str
    site_tz: ZoneInfo
    services: tuple[ServiceType, ...]


def demo() -> Demo:
    catalogue = load_demo_catalogue()
    site = catalogue.sites[0]
    # Licensing service types with a workflow: the others are refused at submit.
    services = tuple(st for st in catalogue.service_types if st.licensing and st.workflow is not None)
    return Demo(site=site.code, site_tz=ZoneInfo(str(site.timezone)), services=services)


def licensing_envelopes(count: int, d: Demo, rng: random.Random, *, permit_share: float) -> list[Envelope]:
    """ApplicationSubmitted (and PermitIssued) envelopes as the licensing service emits them."""
    today = date.today()
    envelopes: list[Envelope] = []
    for i in range(count):
        st = d.services[i % len(d.services)]
        app_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        day = today - timedelta(days=rng.randrange(30))
        at = datetime(day.year, day.month, day.day, 1 + rng.randrange(9), rng.randrange(60), tzinfo=UTC)
        applicant = "c_" + format(rng.getrandbits(128), "032x")
        payload: EventPayload
        if rng.random() < permit_share:
            payload = PermitIssuedV1(
                application_id=app_id,
                permit_number=f"{i % 10000:04d}/{st.agency.upper()}/X/XI/{at.year}",
                service_type=st.code,
                applicant_ref=applicant,
                issued_at=at,
                submitted_at=at - timedelta(days=7),
                within_sla=True,
            )
        else:
            payload = ApplicationSubmittedV1(
                application_id=app_id,
                service_type=st.code,
                applicant_ref=applicant,
                channel=Channel.WALK_IN,
                tracking_code=format(rng.getrandbits(40), "010X"),
                submitted_at=at,
                documents=2,
                sla_due_on=day + timedelta(days=14),
            )
        envelopes.append(
            Envelope.wrap(
                payload,
                producer="mpp.licensing",
                agency=st.agency,
                site=d.site,
                subject=app_id,
                correlation_id=f"bench-{i}",
                occurred_at=at,
            )
        )
    return envelopes


# --------------------------------------------------------------------------------------------------
# 1. raw aiokafka
# --------------------------------------------------------------------------------------------------


async def bench_raw(bench: Bench) -> None:
    a, r = bench.args, bench.results
    topic = bench.topic("raw")
    await make_topic(bench, topic)
    rng = random.Random(1)
    value = rng.randbytes(a.message_bytes)
    keys = [f"lic-{i:06d}".encode() for i in range(1000)]
    records = [(keys[i % 1000], value, None) for i in range(a.messages)]
    producer = await started_producer(bench, "bench-raw")
    try:
        await producer.partitions_for(topic)
        log(f"raw produce: {a.messages} x {a.message_bytes} B, pipelined, acks=all, idempotent")
        meter = Meter().start()
        await asyncio.wait_for(produce_pipelined(producer, topic, records), timeout=a.phase_timeout)
        meter.stop()
    finally:
        await producer.stop()
    r.add("raw", "raw_produce_msgs_per_s", a.messages / meter.wall_s, "msgs/s", "aiokafka produce, pipelined")
    r.add(
        "raw",
        "raw_produce_mb_per_s",
        a.messages * a.message_bytes / meter.wall_s / 1e6,
        "MB/s",
        "aiokafka produce, values only",
    )
    meter_figures(r, "raw", "raw_produce", meter)
    log(f"raw consume: getmany(max_records={a.consume_max_records})")
    count, cmeter = await consume_count(
        bench.bootstrap, topic, a.messages, max_records=a.consume_max_records, timeout_s=a.phase_timeout
    )
    if count < a.messages:
        r.fail(f"raw consume read {count} of {a.messages} records before its timeout")
    r.add("raw", "raw_consume_msgs_per_s", count / cmeter.wall_s, "msgs/s", "aiokafka getmany")
    meter_figures(r, "raw", "raw_consume", cmeter)


# --------------------------------------------------------------------------------------------------
# 2. outbox relay
# --------------------------------------------------------------------------------------------------


async def fill_outbox(engine: AsyncEngine, rows: list[dict[str, Any]], topic: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE outbox RESTART IDENTITY"))
        for start in range(0, len(rows), 5000):
            await conn.execute(
                insert(licensing_outbox), [{**row, "topic": topic} for row in rows[start : start + 5000]]
            )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE outbox"))


async def relay_pass(
    bench: Bench,
    engine: AsyncEngine,
    producer: AIOKafkaProducer,
    rows: list[dict[str, Any]],
    batch_size: int,
    *,
    label: str,
    profile: bool = False,
) -> dict[str, Any]:
    topic = bench.topic(f"relay-{label}")
    await make_topic(bench, topic)
    await producer.partitions_for(topic)
    await fill_outbox(engine, rows, topic)
    relay = OutboxRelay(engine=engine, outbox=licensing_outbox, producer=producer, batch_size=batch_size)
    sql = SqlTimer(engine)
    batches = published = 0
    try:
        with profiled(profile) as prof:
            meter = Meter().start()
            while meter.elapsed() < bench.args.phase_timeout:
                n = await relay.publish_batch()
                if n == 0:
                    break
                published += n
                batches += 1
            meter.stop()
    finally:
        sql.close()
    on_topic = await end_offsets_total(bench.bootstrap, topic)
    select_s = sql.seconds.get("select outbox", 0.0)
    update_s = sql.seconds.get("update outbox", 0.0)
    out: dict[str, Any] = {
        "batch_size": batch_size,
        "rows": len(rows),
        "published": published,
        "on_topic": on_topic,
        "batches": batches,
        "events_per_s": published / meter.wall_s,
        "meter": meter,
        "breakdown_s": {
            "select_unsent": round(select_s, 3),
            "update_sent_at": round(update_s, 3),
            "send_ack_and_python": round(meter.wall_s - select_s - update_s, 3),
        },
    }
    if prof is not None:
        report, summary = profile_report(
            prof,
            title=f"OutboxRelay.publish_batch loop, batch {batch_size}, {len(rows)} rows",
            wall_s=meter.wall_s,
            cpu_s=meter.process_cpu_pct * meter.wall_s / 100,
            root=ROOT,
        )
        path = ARTIFACTS / "bench_profile_relay.txt"
        path.write_text(report)
        out["profile"] = {"file": str(path.relative_to(ROOT)), **summary}
    return out


async def bench_relay(bench: Bench, d: Demo) -> None:
    a, r = bench.args, bench.results
    rng = random.Random(2)
    now = datetime.now(UTC)
    log(f"relay: building {a.outbox_rows} outbox rows (ApplicationSubmitted envelopes)")
    rows = [outbox_row(env, now) for env in licensing_envelopes(a.outbox_rows, d, rng, permit_share=0.0)]
    r.details["relay_value_bytes_mean"] = round(sum(len(row["value"]) for row in rows) / len(rows))
    async with fresh_database(bench, "relay") as url:
        engine = create_engine(url)
        producer = await started_producer(bench, "bench-relay")
        try:
            await upgrade(engine, LICENSING_MIGRATIONS)
            per_batch: dict[str, Any] = {}
            for bs in a.relay_batch_sizes:
                log(f"relay: batch size {bs}, {len(rows)} rows")
                res = await relay_pass(bench, engine, producer, rows, bs, label=str(bs))
                meter: Meter = res.pop("meter")
                if res["published"] != len(rows) or res["on_topic"] != len(rows):
                    r.fail(
                        f"relay batch {bs}: {len(rows)} rows, published {res['published']}, "
                        f"{res['on_topic']} on the topic"
                    )
                r.add(
                    "relay",
                    f"relay_batch_{bs}_events_per_s",
                    res["events_per_s"],
                    "events/s",
                    f"relay, batch {bs}",
                )
                res["bench_process_cpu_pct"] = round(meter.process_cpu_pct, 1)
                res["machine_cpu_busy_pct"] = round(meter.machine_busy_pct or 0.0, 1)
                res["other_cpu_pct"] = {k: round(v, 1) for k, v in meter.other_cpu_pct.items()}
                res["wall_s"] = round(meter.wall_s, 3)
                res["events_per_s"] = round(res["events_per_s"], 1)
                per_batch[str(bs)] = res
            best = max(per_batch.values(), key=lambda x: float(x["events_per_s"]))
            r.add("relay", "relay_events_per_s", best["events_per_s"], "events/s", "relay, best batch size")
            r.add("relay", "relay_best_batch_size", best["batch_size"], "rows", "relay, best batch size")
            r.details["relay"] = per_batch
            if a.profile:
                log(f"relay: cProfile pass, batch {a.profile_batch_size}, {a.profile_rows} rows")
                res = await relay_pass(
                    bench,
                    engine,
                    producer,
                    rows[: a.profile_rows],
                    a.profile_batch_size,
                    label="profile",
                    profile=True,
                )
                res.pop("meter")
                r.details["relay_profile"] = res
        finally:
            await producer.stop()
            await engine.dispose()


# --------------------------------------------------------------------------------------------------
# 3. reporting projection
# --------------------------------------------------------------------------------------------------


async def applied_total(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.coalesce(func.sum(daily_counts.c.count), 0)))).scalar_one()
    return int(total)


def reporting_consumer_options() -> dict[str, Any]:
    """The reporting service's extra consumer options (see mpp.reporting.app), where the kit has them."""
    if "offsets_from_database_only" in inspect.signature(EventConsumer).parameters:
        return {"offsets_from_database_only": True}
    return {}


async def projection_pass(
    bench: Bench, d: Demo, topic: str, expected: int, max_records: int, *, label: str, profile: bool = False
) -> dict[str, Any]:
    zones = {d.site: d.site_tz}

    @cache
    def site_tz(site: str) -> ZoneInfo:
        return zones.get(site, DEFAULT_TZ)

    phases = PhaseTimer()
    async with fresh_database(bench, f"projection_{label}") as url:
        engine = create_engine(url)
        poll_engine = create_engine(url, pool_size=1)  # the bench's polling stays out of the SQL timings
        producer = await started_producer(bench, "bench-projection-dlq")
        sql = SqlTimer(engine)
        consumer = EventConsumer(
            group_id=f"bench.{bench.run_id}.projector.{label}",
            topics=[topic],
            bootstrap=bench.bootstrap,
            sessions=session_factory(engine),
            inbox=inbox,
            offsets=consumer_offsets,
            handler=phases.timed(projector(site_tz), "handler"),
            producer=producer,
            max_records=max_records,
            event_types=PROJECTED_TYPES,
            **reporting_consumer_options(),
        )
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        try:
            await upgrade(engine, REPORTING_MIGRATIONS)
            sql.reset()
            joined = Meter().start()
            await consumer.start()
            instrumented = all(
                [
                    phases.wrap(consumer, "process"),
                    phases.wrap(consumer, "_apply", "apply_transaction"),
                    phases.wrap(consumer, "_commit", "kafka_offset_commit"),
                    phases.wrap(consumer.consumer, "getmany", "fetch_getmany"),
                ]
            )
            task = asyncio.create_task(consumer.run(stop), name=f"bench projector {label}")
            while not consumer.consumer.assignment():
                if task.done() or joined.elapsed() > 60:
                    raise RuntimeError("projection consumer got no partitions within 60 s")
                await asyncio.sleep(0.01)
            joined.stop()
            applied = 0
            with profiled(profile) as prof:
                meter = Meter().start()
                while meter.elapsed() < bench.args.phase_timeout:
                    if task.done():
                        break
                    applied = await applied_total(poll_engine)
                    if applied >= expected:
                        break
                    await asyncio.sleep(0.025)
                meter.stop()
            seconds = dict(phases.seconds)
            sql_seconds, sql_calls = dict(sql.seconds), dict(sql.calls)
            batches = phases.calls.get("process", 0)
            stop.set()
            await asyncio.wait_for(task, timeout=30)
            if task.exception() is not None:
                raise RuntimeError(f"projection consumer died: {task.exception()!r}")
            applied = await applied_total(poll_engine)
        finally:
            stop.set()
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await consumer.stop()
            await producer.stop()
            sql.close()
            await engine.dispose()
            await poll_engine.dispose()
    out: dict[str, Any] = {
        "max_records": max_records,
        "expected": expected,
        "applied": applied,
        "processed": consumer.processed,
        "duplicates": consumer.duplicates,
        "dead_lettered": consumer.dead_lettered,
        "join_s": round(joined.wall_s, 3),
        "wall_s": round(meter.wall_s, 3),
        "events_per_s": min(applied, expected) / meter.wall_s,
        "bench_process_cpu_pct": round(meter.process_cpu_pct, 1),
        "machine_cpu_busy_pct": round(meter.machine_busy_pct or 0.0, 1),
        "other_cpu_pct": {k: round(v, 1) for k, v in meter.other_cpu_pct.items()},
        "timed_out": applied < expected,
        "batches": batches,
    }
    if instrumented:
        process_s = seconds.get("process", 0.0)
        apply_s = seconds.get("apply_transaction", 0.0)
        commit_s = seconds.get("kafka_offset_commit", 0.0)
        handler_s = seconds.get("handler", 0.0)
        upsert_s = sql_seconds.get("insert daily_counts", 0.0)
        inbox_s = sql_seconds.get("insert inbox", 0.0) + sql_seconds.get("with inbox", 0.0)
        offsets_s = sql_seconds.get("insert consumer_offsets", 0.0)
        out["breakdown_s"] = {
            "fetch_getmany": round(seconds.get("fetch_getmany", 0.0), 3),
            "parse_from_record_loop": round(process_s - apply_s - commit_s, 3),
            "apply_inbox_insert_sql": round(inbox_s, 3),
            "apply_handler_fold": round(handler_s - upsert_s, 3),
            "apply_daily_counts_upsert_sql": round(upsert_s, 3),
            "apply_offsets_upsert_sql": round(offsets_s, 3),
            "apply_compile_session_commit_other": round(apply_s - handler_s - inbox_s - offsets_s, 3),
            "kafka_offset_commit": round(commit_s, 3),
            "other_event_loop": round(
                max(0.0, meter.wall_s - seconds.get("fetch_getmany", 0.0) - process_s), 3
            ),
        }
        out["sql_statements"] = {
            kind: {"calls": calls, "s": round(sql_seconds[kind], 3)} for kind, calls in sql_calls.items()
        }
    if prof is not None:
        report, summary = profile_report(
            prof,
            title=f"EventConsumer + reporting projector, max_records {max_records}, {expected} events",
            wall_s=meter.wall_s,
            cpu_s=meter.process_cpu_pct * meter.wall_s / 100,
            root=ROOT,
        )
        path = ARTIFACTS / "bench_profile_projection.txt"
        path.write_text(report)
        out["profile"] = {"file": str(path.relative_to(ROOT)), **summary}
    return out


async def bench_projection(bench: Bench, d: Demo) -> None:
    a, r = bench.args, bench.results
    topic = bench.topic("projection")
    await make_topic(bench, topic)
    log(f"projection: building {a.projection_events} ApplicationSubmitted/PermitIssued records")
    envelopes = licensing_envelopes(a.projection_events, d, random.Random(3), permit_share=0.3)
    records = [to_record(env) for env in envelopes]
    del envelopes
    producer = await started_producer(bench, "bench-projection-fill")
    try:
        await producer.partitions_for(topic)
        meter = Meter().start()
        await asyncio.wait_for(produce_pipelined(producer, topic, records), timeout=a.phase_timeout)
        meter.stop()
    finally:
        await producer.stop()
    r.add(
        "projection",
        "cloudevents_produce_msgs_per_s",
        len(records) / meter.wall_s,
        "msgs/s",
        "aiokafka produce, CloudEvents records",
    )
    r.details["projection_record_bytes_mean"] = {
        "value": round(sum(len(v) for _, v, _ in records) / len(records)),
        "headers": round(sum(len(k) + len(v) for _, _, h in records for k, v in h) / len(records)),
    }
    del records
    count, cmeter = await consume_count(
        bench.bootstrap,
        topic,
        a.projection_events,
        max_records=a.consume_max_records,
        timeout_s=a.phase_timeout,
    )
    r.add(
        "projection",
        "raw_consume_cloudevents_msgs_per_s",
        count / cmeter.wall_s,
        "msgs/s",
        "aiokafka getmany, same records as the projection",
    )
    per_run: dict[str, Any] = {}
    for mr in a.projection_max_records:
        log(f"projection: EventConsumer max_records={mr}, {a.projection_events} events from offset 0")
        res = await projection_pass(bench, d, topic, a.projection_events, mr, label=f"mr{mr}")
        if res["timed_out"]:
            r.notes.append(f"projection max_records={mr} timed out after {a.phase_timeout} s")
        if res["applied"] != a.projection_events or res["dead_lettered"] or res["duplicates"]:
            r.fail(
                f"projection max_records={mr}: {a.projection_events} events, applied {res['applied']}, "
                f"dead-lettered {res['dead_lettered']}, duplicates {res['duplicates']}"
            )
        r.add(
            "projection",
            f"projection_max_records_{mr}_events_per_s",
            res["events_per_s"],
            "events/s",
            f"projection, max_records {mr}",
        )
        res["events_per_s"] = round(res["events_per_s"], 1)
        per_run[str(mr)] = res
    first = per_run[str(a.projection_max_records[0])]
    r.add(
        "projection",
        "projection_events_per_s",
        first["events_per_s"],
        "events/s",
        f"projection, max_records {first['max_records']}",
    )
    raw = r.value("raw_consume_msgs_per_s")
    if raw:
        r.add(
            "projection",
            "projection_vs_raw_consume_ratio",
            first["events_per_s"] / raw,
            "ratio",
            "projection / raw consume (raw topic)",
        )
    r.add(
        "projection",
        "projection_vs_raw_consume_cloudevents_ratio",
        first["events_per_s"] / (count / cmeter.wall_s),
        "ratio",
        "projection / raw consume (same records)",
    )
    r.details["projection"] = per_run
    if a.profile:
        n = min(a.profile_events, a.projection_events)
        log(f"projection: cProfile pass, max_records {a.profile_max_records}, first {n} events")
        res = await projection_pass(bench, d, topic, n, a.profile_max_records, label="profile", profile=True)
        r.details["projection_profile"] = res


# --------------------------------------------------------------------------------------------------
# 4. HTTP submit
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def submit_requests(
    count: int, d: Demo, secret: str, rng: random.Random
) -> list[tuple[bytes, dict[str, str]]]:
    """Valid submissions by officers of the right agency at the demo site, synthetic NIKs."""
    tokens = {
        st.agency: issue_token(
            secret, subject=f"bench-officer-{st.agency}", roles=["officer"], agency=st.agency, site=d.site
        )
        for st in d.services
    }
    out = []
    for i in range(count):
        st = d.services[i % len(d.services)]
        body = {
            "service_type": st.code,
            "site": d.site,
            "channel": "walk_in",
            "applicant": {"nik": generate_test_nik(rng), "name": "Warga Uji Beban"},
            "documents": [
                {
                    "requirement": req.code,
                    "file_name": f"{req.code}.pdf",
                    "content_type": "application/pdf",
                    "size_bytes": 150_000,
                }
                for req in st.requirements[:2]
            ],
        }
        headers = {
            "Authorization": f"Bearer {tokens[st.agency]}",
            "Idempotency-Key": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            "Content-Type": "application/json",
        }
        out.append((orjson.dumps(body), headers))
    return out


async def drive(
    client: httpx.AsyncClient,
    requests: Sequence[tuple[bytes, dict[str, str]]],
    concurrency: int,
    timeout_s: float,
) -> tuple[list[float], list[str]]:
    """Closed loop: ``concurrency`` workers, each sending its next request when the previous returns.

    Workers take no new request after ``timeout_s``; the caller sees fewer latencies than requests.
    """
    pending = iter(requests)
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + timeout_s

    async def worker() -> None:
        for body, headers in pending:
            if time.monotonic() > deadline:
                return
            t0 = time.perf_counter()
            try:
                resp = await client.post("/v1/applications", content=body, headers=headers)
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)
            if resp.status_code != 201:
                errors.append(f"HTTP {resp.status_code}: {resp.text[:300]}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"licensing exited with {proc.returncode}; see artifacts/bench-licensing.log")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("licensing did not become ready; see artifacts/bench-licensing.log")


async def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(proc.wait, timeout_s)
    except subprocess.TimeoutExpired:
        log(f"licensing (pid {proc.pid}) ignored SIGTERM for {timeout_s} s; killing it")
        proc.kill()
        await asyncio.to_thread(proc.wait)


def latency_figures(r: Results, prefix: str, latencies: list[float], label: str) -> None:
    lat = sorted(x * 1000 for x in latencies)
    for pct in (50, 90, 99):
        r.add("submit", f"{prefix}_p{pct}_ms", percentile(lat, pct), "ms", f"{label}, p{pct}")
    r.add("submit", f"{prefix}_max_ms", lat[-1] if lat else float("nan"), "ms", f"{label}, max")


def _exists(path: Path) -> bool:
    return path.exists()


async def profile_server(
    bench: Bench,
    client: httpx.AsyncClient,
    proc: subprocess.Popen[bytes],
    requests: Sequence[tuple[bytes, dict[str, str]]],
    pstats_path: Path,
) -> None:
    a = bench.args
    log(f"submit: cProfile pass in the server, {len(requests)} requests at concurrency {a.concurrency}")
    proc.send_signal(signal.SIGUSR1)
    await asyncio.sleep(0.2)
    meter = Meter(other_pids={"server": proc.pid}).start()
    latencies, errors = await drive(client, requests, a.concurrency, a.phase_timeout)
    meter.stop()
    proc.send_signal(signal.SIGUSR2)
    for _ in range(100):
        if _exists(pstats_path):
            break
        await asyncio.sleep(0.1)
    else:
        bench.results.fail("submit profile: the server wrote no profile")
        return
    server_cpu = meter.other_cpu_pct.get("server", 0.0) * meter.wall_s / 100
    report, summary = profile_report(
        str(pstats_path),
        title=f"licensing server, POST /v1/applications x {len(latencies)}, concurrency {a.concurrency}",
        wall_s=meter.wall_s,
        cpu_s=server_cpu,
        root=ROOT,
    )
    text_path = ARTIFACTS / "bench_profile_submit.txt"
    text_path.write_text(report)
    bench.results.details["submit_profile"] = {
        "requests": len(latencies),
        "errors": len(errors),
        "requests_per_s_under_profile": round(len(latencies) / meter.wall_s, 1),
        "profile": {"file": str(text_path.relative_to(ROOT)), **summary},
    }
    if errors:
        bench.results.fail(f"submit profile pass: {len(errors)} failed requests, e.g. {errors[0]}")


async def bench_submit(bench: Bench, d: Demo) -> None:
    a, r = bench.args, bench.results
    secret = secrets.token_urlsafe(32)
    rng = random.Random(4)
    counts = [
        a.http_warmup,
        a.http_requests,
        a.http_serial_requests,
        a.profile_http_requests if a.profile else 0,
    ]
    requests = submit_requests(sum(counts), d, secret, rng)
    bounds = [sum(counts[:i]) for i in range(len(counts) + 1)]
    warm, timed, serial, profiled_requests = (requests[bounds[i] : bounds[i + 1]] for i in range(len(counts)))
    port = free_port()
    pstats_path = ARTIFACTS / "bench_profile_submit.pstats"
    pstats_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "mpp.licensing"]
    if a.profile:
        # The same service, with a cProfile that SIGUSR1/SIGUSR2 switch on and off (off until then).
        command = [sys.executable, "-m", "tools.bench_profile_server", str(pstats_path), "mpp.licensing"]
    async with fresh_database(bench, "licensing") as url:
        env = {
            **os.environ,
            "MPP_LICENSING_DATABASE_URL": url,
            "MPP_JWT_HS256_SECRET": secret,
            "MPP_LICENSING_HTTP_PORT": str(port),
            "KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap,
            "MPP_LICENSING_LOG_LEVEL": "WARNING",
            "MPP_LICENSING_RELAY_ENABLED": "true" if a.submit_relay else "false",
        }
        ARTIFACTS.mkdir(exist_ok=True)
        with open(ARTIFACTS / "bench-licensing.log", "wb") as server_log:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
        log(f"submit: licensing pid {proc.pid} on port {port} (relay {'on' if a.submit_relay else 'off'})")
        engine = create_engine(url, pool_size=1)
        try:
            limits = httpx.Limits(max_connections=a.concurrency, max_keepalive_connections=a.concurrency)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30.0
            ) as client:
                await wait_ready(client, proc, 90)
                log(f"submit: warm-up {len(warm)}, then {len(timed)} timed at concurrency {a.concurrency}")
                _, warm_errors = await drive(client, warm, a.concurrency, a.phase_timeout)
                meter = Meter(other_pids={**WATCHED_PIDS, "server": proc.pid}).start()
                latencies, errors = await drive(client, timed, a.concurrency, a.phase_timeout)
                meter.stop()
                if len(latencies) + len(errors) < len(timed):
                    r.notes.append(
                        f"submit stopped at its {a.phase_timeout:.0f} s timeout after {len(latencies)} requests"
                    )
                log(f"submit: {len(serial)} serial requests (concurrency 1) for service-time latency")
                serial_lat, serial_errors = await drive(client, serial, 1, a.phase_timeout)
                if profiled_requests:
                    await profile_server(bench, client, proc, profiled_requests, pstats_path)
            async with engine.connect() as conn:
                backlog = (
                    await conn.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
                ).scalar_one()
        finally:
            await stop_process(proc)
            await engine.dispose()
    all_errors = warm_errors + errors + serial_errors
    r.add(
        "submit",
        "submit_requests_per_s",
        len(latencies) / meter.wall_s,
        "req/s",
        f"POST /v1/applications, c={a.concurrency}",
    )
    latency_figures(r, "submit_latency", latencies, f"latency c={a.concurrency}")
    latency_figures(r, "submit_serial_latency", serial_lat, "latency c=1")
    r.add("submit", "submit_errors_count", len(all_errors), "count", "non-201 or failed requests")
    r.add("submit", "submit_outbox_backlog_count", int(backlog), "rows", "unsent outbox rows after the run")
    meter_figures(r, "submit", "submit", meter)
    r.details["submit"] = {
        "requests": len(timed),
        "warmup": len(warm),
        "serial": len(serial),
        "concurrency": a.concurrency,
        "relay_enabled": a.submit_relay,
        "idempotency_key": True,
        "error_samples": all_errors[:10],
    }
    r.notes.append(
        "submit: the load generator (httpx, this process) shares the machine's CPUs with the server, "
        "PostgreSQL and Kafka; closed loop, so latency includes queueing at the server"
    )
    if all_errors:
        r.fail(f"submit: {len(all_errors)} failed requests, e.g. {all_errors[0]}")


# --------------------------------------------------------------------------------------------------
# 5. application lifecycle (tools/bench_lifecycle.py)
# --------------------------------------------------------------------------------------------------


async def bench_lifecycle(bench: Bench) -> None:
    a, r = bench.args, bench.results
    cfg = LifecycleConfig(
        bootstrap=bench.bootstrap,
        admin_url=bench.admin_url,
        run_id=bench.run_id,
        root=ROOT,
        artifacts=ARTIFACTS,
        rate=a.lifecycle_rate,
        seconds=a.lifecycle_seconds,
        rates=a.lifecycle_rates,
        step_seconds=a.lifecycle_step_seconds,
        warmup_rate=a.lifecycle_warmup_rate,
        warmup_seconds=a.lifecycle_warmup_seconds,
        citizens=a.lifecycle_citizens,
        connections=a.lifecycle_connections,
        p99_bound_ms=a.lifecycle_p99_bound_ms,
        drain_timeout_s=a.lifecycle_drain_timeout,
        watched_pids=dict(WATCHED_PIDS),
        raw_produce_msgs_per_s=r.value("raw_produce_msgs_per_s"),
        profile=a.profile,
        profile_rate=a.lifecycle_profile_rate,
        profile_seconds=a.lifecycle_profile_seconds,
    )
    report = await run_lifecycle(cfg)
    for name, value, unit, label in report.figures:
        r.add("lifecycle", name, value, unit, label)
    r.details.update(report.details)
    r.notes.extend(report.notes)
    for error in report.errors:
        r.fail(error)
    r.notes.append(
        "lifecycle: identity and licensing run as processes on fresh databases; the generator (this process, "
        "open loop) and both services share the machine's CPUs with PostgreSQL and Kafka"
    )
    if cfg.raw_produce_msgs_per_s is None:
        r.notes.append("lifecycle: no raw produce baseline in this run (add raw to --only for the ratio)")


# --------------------------------------------------------------------------------------------------
# machine info, report
# --------------------------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _local_kafka_version() -> str | None:
    jars = sorted((ROOT / ".cache" / "kafka" / "lib").glob("kafka_2.13-*.jar"))
    return jars[-1].stem.split("-", 1)[1] if jars else None


async def postgres_info(admin_url: str) -> dict[str, str]:
    engine = create_engine(admin_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT name, setting FROM pg_settings WHERE name IN "
                        "('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')"
                    )
                )
            ).all()
        return {str(name): str(setting) for name, setting in rows}
    finally:
        await engine.dispose()


def machine_info(bench: Bench, pg: dict[str, str], loop_name: str) -> dict[str, Any]:
    import aiokafka
    import sqlalchemy

    head = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain")
    return {
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "event_loop": loop_name,
        "aiokafka_version": aiokafka.__version__,
        "sqlalchemy_version": sqlalchemy.__version__,
        "kafka_version": _local_kafka_version() if os.environ.get("MPP_BENCH_LOCAL_KAFKA") == "1" else None,
        "machine_cpu_busy_pct_before_bench": (
            None if bench.background_busy_pct is None else round(bench.background_busy_pct, 1)
        ),
        "kafka_broker": "throwaway local (tools/bench.sh)"
        if os.environ.get("MPP_BENCH_LOCAL_KAFKA") == "1"
        else "external",
        "postgres": pg,
        "git_commit": head,
        "git_dirty": bool(dirty),
    }


def _breakdown_line(run: dict[str, Any]) -> str:
    wall = float(run.get("wall_s") or 0.0) or 1e-9
    parts = [f"{k} {v:.2f} s ({100 * v / wall:.0f}%)" for k, v in run.get("breakdown_s", {}).items()]
    cpu = f"bench process CPU {run.get('bench_process_cpu_pct', 0):.0f}%"
    others = "".join(f", {k} CPU {v:.0f}%" for k, v in run.get("other_cpu_pct", {}).items())
    return (
        f"wall {wall:.2f} s, {cpu}{others}, machine busy {run.get('machine_cpu_busy_pct', 0):.0f}%\n      "
        + ("\n      ".join(parts))
    )


def print_breakdowns(results: Results) -> None:
    """Where the wall time of the relay and projection loops went (instrumented per batch, not per event)."""
    for bs, run in results.details.get("relay", {}).items():
        print(f"\n  relay batch {bs}: {_breakdown_line(run)}")
    for mr, run in results.details.get("projection", {}).items():
        print(f"\n  projection max_records {mr}: {_breakdown_line(run)}")
    for key in ("relay_profile", "projection_profile", "submit_profile"):
        profile = results.details.get(key, {}).get("profile")
        if profile:
            packages = ", ".join(
                f"{row['package']} {row['own_pct']:.0f}%" for row in profile["own_time_by_package"][:7]
            )
            print(
                f"\n  {key}: {profile['file']}\n      own CPU time by package: {packages}\n      top functions:"
            )
            for row in profile["top_own_time"][:6]:
                print(
                    f"      {row['own_pct']:5.1f}%  {row['own_s']:7.3f} s  {row['calls']:>8}  {row['function']}"
                )


def print_table(results: Results, machine: dict[str, Any]) -> None:
    print()
    print(
        f"MPP bench  {machine['timestamp_utc']}  {machine['cpu_count']} CPUs ({machine.get('cpu_model') or '?'})  "
        f"Python {machine['python_version']} ({machine['event_loop']})  Kafka {machine.get('kafka_version') or '?'}  "
        f"PostgreSQL {machine['postgres'].get('server_version', '?')} (fsync={machine['postgres'].get('fsync', '?')})"
    )
    busy = machine.get("machine_cpu_busy_pct_before_bench")
    print(
        f"load average at start: {machine['load_average_at_start']}; machine CPU busy before the bench: "
        f"{'?' if busy is None else f'{busy:.0f}%'}"
    )
    width = max(len(f.name) for f in results.figures.values()) if results.figures else 20
    section = None
    for fig in results.figures.values():
        if fig.section != section:
            section = fig.section
            print(f"\n  {section}")
        whole = abs(fig.value) >= 100 or fig.unit in {"count", "rows"}
        value = f"{fig.value:,.0f}" if whole else f"{fig.value:,.2f}"
        target = ""
        if fig.name in TARGETS:
            op, goal, _ = TARGETS[fig.name]
            met = fig.value >= goal if op == ">=" else fig.value < goal
            target = f"target {op} {goal:g}: {fig.value / goal:.0%} of target, {'met' if met else 'NOT met'}"
        print(f"    {fig.name:<{width}} {value:>12} {fig.unit:<9} {fig.label:<46} {target}")
    print_breakdowns(results)
    for note in results.notes:
        print(f"\n  note: {note}")
    if results.errors:
        print("\n  ERRORS:")
        for err in results.errors:
            print(f"    - {err}")
    print()


def targets_json(results: Results) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (op, goal, text_) in TARGETS.items():
        value = results.value(name)
        out[name] = {
            "target": goal,
            "op": op,
            "description": text_,
            "actual": value,
            "fraction_of_target": None if value is None else round(value / goal, 3),
            "met": None if value is None else (value >= goal if op == ">=" else value < goal),
        }
    return out


def write_json(path: Path, bench: Bench, machine: dict[str, Any]) -> None:
    r, a = bench.results, bench.args
    document = {
        "schema": "mpp-bench/1",
        "machine": machine,
        "config": {
            "messages": a.messages,
            "message_bytes": a.message_bytes,
            "partitions": PARTITIONS,
            "consume_max_records": a.consume_max_records,
            "outbox_rows": a.outbox_rows,
            "relay_batch_sizes": a.relay_batch_sizes,
            "projection_events": a.projection_events,
            "projection_max_records": a.projection_max_records,
            "http_requests": a.http_requests,
            "http_warmup": a.http_warmup,
            "http_serial_requests": a.http_serial_requests,
            "http_concurrency": a.concurrency,
            "lifecycle_rate": a.lifecycle_rate,
            "lifecycle_seconds": a.lifecycle_seconds,
            "lifecycle_rates": a.lifecycle_rates,
            "lifecycle_step_seconds": a.lifecycle_step_seconds,
            "lifecycle_citizens": a.lifecycle_citizens,
            "lifecycle_connections": a.lifecycle_connections,
            "lifecycle_p99_bound_ms": a.lifecycle_p99_bound_ms,
            "rebuild_events": a.rebuild_events,
            "rebuild_max_records": a.rebuild_max_records,
            "pages_sites": a.pages_sites,
            "pages_days": a.pages_days,
            "pages_requests": a.pages_requests,
            "sections": a.only,
            "profile": a.profile,
        },
        "figures": {name: round(f.value, 3) for name, f in r.figures.items()},
        "units": {name: f.unit for name, f in r.figures.items()},
        "targets": targets_json(r),
        "details": r.details,
        "notes": r.notes,
        "errors": r.errors,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    csv_int = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=list(SECTIONS),
        help=f"{','.join(SECTIONS)} (e.g. --only raw,lifecycle)",
    )
    p.add_argument("--messages", type=int, default=200_000, help="raw produce/consume messages")
    p.add_argument("--message-bytes", type=int, default=300)
    p.add_argument(
        "--consume-max-records", type=int, default=5000, help="getmany max_records of the raw consumer"
    )
    p.add_argument("--outbox-rows", type=int, default=50_000)
    p.add_argument("--relay-batch-sizes", type=csv_int, default=[1000, 2000, 5000])
    p.add_argument("--projection-events", type=int, default=100_000)
    p.add_argument(
        "--projection-max-records", type=csv_int, default=[2000, 5000], help="the first is the headline"
    )
    p.add_argument("--http-requests", type=int, default=5000)
    p.add_argument("--http-warmup", type=int, default=500)
    p.add_argument("--http-serial-requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--no-submit-relay", dest="submit_relay", action="store_false")
    csv_float = lambda s: [float(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--lifecycle-rate", type=float, default=300.0, help="offered lifecycles/s, headline run")
    p.add_argument("--lifecycle-seconds", type=float, default=20.0, help="length of the headline run")
    p.add_argument(
        "--lifecycle-rates",
        type=csv_float,
        default=[10.0, 20.0, 40.0, 80.0, 160.0, 300.0],
        help="saturation search: offered rates, ascending, stops after the first unbounded one",
    )
    p.add_argument("--lifecycle-step-seconds", type=float, default=10.0)
    p.add_argument("--lifecycle-warmup-rate", type=float, default=50.0)
    p.add_argument("--lifecycle-warmup-seconds", type=float, default=4.0)
    p.add_argument("--lifecycle-citizens", type=int, default=1000, help="citizens seeded in identity")
    p.add_argument("--lifecycle-connections", type=int, default=64, help="HTTP connections to licensing")
    p.add_argument(
        "--lifecycle-p99-bound-ms",
        type=float,
        default=2000.0,
        help="a searched rate is bounded when all complete, p99 <= this and >= 90%% of it is achieved",
    )
    p.add_argument(
        "--lifecycle-drain-timeout", type=float, default=60.0, help="seconds to wait for stragglers"
    )
    p.add_argument("--lifecycle-profile-rate", type=float, default=100.0)
    p.add_argument("--lifecycle-profile-seconds", type=float, default=10.0)
    p.add_argument(
        "--phase-timeout", type=float, default=120.0, help="seconds; every measured loop stops by then"
    )
    p.add_argument(
        "--profile", action="store_true", help="add cProfile passes of the relay and projection loops"
    )
    p.add_argument("--profile-rows", type=int, default=20_000)
    p.add_argument("--profile-batch-size", type=int, default=2000)
    p.add_argument("--profile-events", type=int, default=30_000)
    p.add_argument("--profile-max-records", type=int, default=2000)
    p.add_argument("--profile-http-requests", type=int, default=1500)
    bench_queue.add_arguments(p)
    bench_reporting.add_arguments(p)
    p.add_argument("--output", type=Path, default=ARTIFACTS / "bench.json")
    args = p.parse_args(argv)
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


async def run(args: argparse.Namespace, loop_name: str) -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    admin_url = os.environ.get("MPP_BENCH_POSTGRES_URL") or os.environ.get("MPP_TEST_POSTGRES_URL")
    if not bootstrap or not admin_url:
        log(
            "KAFKA_BOOTSTRAP_SERVERS and MPP_BENCH_POSTGRES_URL must be set: run `make bench` (tools/bench.sh)"
        )
        return 2
    for name, var in (("kafka", "MPP_BENCH_KAFKA_PID"), ("postgres", "MPP_BENCH_POSTGRES_PID")):
        pid = os.environ.get(var, "")
        if pid.isdigit():
            WATCHED_PIDS[name] = int(pid)
    # A broker or database on this machine that bench.sh did not start: find it by its listening port.
    for name, port in (
        ("kafka", _port(bootstrap.split(",")[0])),
        ("postgres", make_url(admin_url).port or 5432),
    ):
        found = listening_pid(port) if name not in WATCHED_PIDS and port else None
        if found is not None:
            WATCHED_PIDS[name] = found
    results = Results()
    if "postgres" in WATCHED_PIDS:
        results.notes.append(
            "postgres CPU is the whole PostgreSQL server (every database on it, backends included); "
            "kafka CPU is the broker JVM"
        )
    bench = Bench(
        args=args, bootstrap=bootstrap, admin_url=admin_url, run_id=uuid.uuid4().hex[:8], results=results
    )
    d = demo()
    started = time.monotonic()
    pg = await postgres_info(admin_url)
    background = Meter().start()
    await asyncio.sleep(2.0)
    bench.background_busy_pct = background.stop().machine_busy_pct
    if bench.background_busy_pct is not None and bench.background_busy_pct > 20:
        bench.results.notes.append(
            f"the machine was {bench.background_busy_pct:.0f}% busy before the bench started (other processes): "
            "expect lower and noisier figures"
        )
    if pg.get("fsync") == "off":
        bench.results.notes.append(
            "PostgreSQL runs with fsync=off and synchronous_commit=off (the throwaway local instance): "
            "database figures are optimistic against a durable server"
        )
    phases = {
        "raw": lambda: bench_raw(bench),
        "relay": lambda: bench_relay(bench, d),
        "projection": lambda: bench_projection(bench, d),
        "submit": lambda: bench_submit(bench, d),
        "lifecycle": lambda: bench_lifecycle(bench),
        "notification": lambda: run_notification(bench, ROOT, ARTIFACTS, dict(WATCHED_PIDS)),
        "queue": lambda: bench_queue.run_section(bench),
        "reporting-pages": lambda: bench_reporting.run_pages(bench),
        "reporting-rebuild": lambda: bench_reporting.run_rebuild(bench),
    }
    try:
        for name in SECTIONS:
            if name not in args.only:
                continue
            t0 = time.monotonic()
            try:
                await phases[name]()
            except Exception as exc:
                bench.results.fail(f"{name} phase failed: {type(exc).__name__}: {exc}")
            log(f"{name}: done in {time.monotonic() - t0:.1f} s")
    finally:
        with contextlib.suppress(Exception):
            await delete_topics(bench)
    bench.results.details["bench_wall_s"] = round(time.monotonic() - started, 1)
    machine = machine_info(bench, pg, loop_name)
    print_table(bench.results, machine)
    write_json(args.output, bench, machine)
    log(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    if bench.results.errors:
        log(f"FAILED: {len(bench.results.errors)} error(s); the figures above are not trustworthy")
        return 1
    return 0


def _port(address: str) -> int | None:
    host, _, port = address.rpartition(":")
    return int(port) if host in {"127.0.0.1", "localhost", "::1", "[::1]"} and port.isdigit() else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the lock file
        return asyncio.run(run(args, "asyncio"))
    # The services run under uvicorn with loop="auto", which picks uvloop: measure on the same loop.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(args, "uvloop"))


if __name__ == "__main__":
    sys.exit(main())
