"""The ``notification`` section of ``make bench``: messages from triggering events to a provider.

The notification service runs as a real process (``python -m mpp.notification``, uvicorn) on a fresh
PostgreSQL database and the real broker, its WhatsApp provider pointed at a loopback Cloud API server in
this process (tests/support/provider_gateway.py: ~50 ms per call, idempotency keys honoured). Citizens'
contacts are published and applied first; then an open-loop generator publishes ApplicationReturned
events at a steady offered rate (arrivals follow the schedule whatever the completions), some citizens
getting several. Each message names its trigger (the missing document ``berkasNNNNN``), so the provider
side reads it back: messages dispatched per second, the delay from the event's scheduled publication to
the provider call (p50/p99), duplicates and per-citizen order (both errors if wrong).

Consumer groups of the run's own start at the shared topics' ends, so other traffic on a shared broker is
not read. Settings: ``MPP_BENCH_NOTIFICATION_RATE`` (offered messages/s, default 600),
``_SECONDS`` (default 10), ``_DRAIN_S`` (default 60: how long to wait for the queue to empty), ``_CITIZENS`` (default 4000), ``_LATENCY_MS`` (default 50),
``_CONCURRENCY`` (the service's dispatch concurrency, default: the service's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import func, select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.licensing import ApplicationReturnedV1
from mpp.contracts.events.notification import CitizenContactRegisteredV1, NotificationChannel
from mpp.contracts.kafka import to_record
from mpp.contracts.topics import consumer_group
from mpp.kit.db import create_engine
from mpp.kit.kafka import create_producer, ensure_topics
from mpp.notification.app import DEFAULT_TRIGGERS
from mpp.notification.persistence.tables import contacts
from tests.support.processes import free_port
from tests.support.provider_gateway import IdempotentGateway, serving
from tools.bench_lifecycle import fresh_databases, skip_backlog
from tools.bench_support import Meter, percentile, process_cpu_seconds, profile_report

SITE = "mpp-kota-sukamaju"
MARKER = re.compile(r"berkas(\d{5})")
TARGET_PER_S = 500.0


class _Results(Protocol):
    notes: list[str]
    details: dict[str, Any]

    def add(self, section: str, name: str, value: float, unit: str, label: str) -> None: ...

    def value(self, name: str) -> float | None: ...

    def fail(self, message: str) -> None: ...


class _Bench(Protocol):
    bootstrap: str
    admin_url: str
    run_id: str
    args: Any

    @property
    def results(self) -> _Results: ...


@dataclass
class Settings:
    rate: float = float(os.environ.get("MPP_BENCH_NOTIFICATION_RATE", "600"))
    seconds: float = float(os.environ.get("MPP_BENCH_NOTIFICATION_SECONDS", "10"))
    citizens: int = int(os.environ.get("MPP_BENCH_NOTIFICATION_CITIZENS", "4000"))
    latency_ms: float = float(os.environ.get("MPP_BENCH_NOTIFICATION_LATENCY_MS", "50"))
    concurrency: str = os.environ.get("MPP_BENCH_NOTIFICATION_CONCURRENCY", "")
    drain_timeout_s: float = float(os.environ.get("MPP_BENCH_NOTIFICATION_DRAIN_S", "60"))


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _wrap(payload: Any, subject: str) -> Envelope:
    return Envelope.wrap(payload, producer="mpp.licensing", agency="dpmptsp", site=SITE, subject=subject)


def _contact(ref: str, n: int) -> Envelope:
    now = datetime.now(UTC)
    return Envelope.wrap(
        CitizenContactRegisteredV1(
            citizen_ref=ref,
            phone=f"+62812{n:08d}",
            whatsapp=True,
            preferred_channel=NotificationChannel.WHATSAPP,
            optional_messages_consent=True,
            consent_recorded_at=now,
            source_agency="disdukcapil",
            registered_at=now,
        ),
        producer="mpp.identity",
        agency="disdukcapil",
        site=SITE,
        subject=ref,
    )


def _returned(ref: str, application: str, n: int) -> Envelope:
    return _wrap(
        ApplicationReturnedV1(
            application_id=application,
            service_type="dpmptsp.pbg",
            applicant_ref=ref,
            missing=(f"berkas{n:05d}",),
            note="Berkas perlu dilengkapi.",
            returned_at=datetime.now(UTC),
        ),
        application,
    )


async def _publish(producer: Any, envelopes: list[Envelope]) -> None:
    futures = []
    for env in envelopes:
        key, value, headers = to_record(env)
        futures.append(await producer.send(env.topic, key=key, value=value, headers=headers))
    await asyncio.gather(*futures)


async def run_notification(bench: _Bench, root: Path, artifacts: Path, watched: dict[str, int]) -> None:
    """Measure and add the section's figures to ``bench.results``."""
    cfg, r = Settings(), bench.results
    total = int(cfg.rate * cfg.seconds)
    if total > 99_999:
        raise ValueError("at most 99,999 messages per run (the marker has five digits)")
    rng = random.Random(5)
    citizens = [f"c_bench{bench.run_id}{n:06d}" for n in range(cfg.citizens)]
    # A fifth of the citizens get most of the messages: several per citizen, whose order is checked.
    busy = citizens[: max(1, cfg.citizens // 5)]
    owners = [rng.choice(busy) if rng.random() < 0.5 else rng.choice(citizens) for _ in range(total)]
    applications = {ref: f"lic-b{bench.run_id}-{i:06d}" for i, ref in enumerate(citizens)}
    latency = cfg.latency_ms / 1000.0
    gateway = IdempotentGateway("whatsapp", latency=lambda _rng: latency)
    group = f"mpp.notification.dispatcher.bench-{bench.run_id}"
    await ensure_topics(bench.bootstrap)
    await skip_backlog(bench.bootstrap, group, consumer_group("mpp.notification.dispatcher").topics)
    trigger_file = _trigger_file(artifacts, bench.run_id)
    profile = bool(getattr(bench.args, "profile", False))
    pstats = artifacts / "bench_profile_notification.pstats"
    async with (
        fresh_databases(bench.admin_url, [f"bench_notification_{bench.run_id}"]) as [database],
        serving(gateway),
    ):
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(root),
            "MPP_NOTIFICATION_HTTP_PORT": str(port),
            "MPP_NOTIFICATION_LOG_LEVEL": "WARNING",
            "MPP_NOTIFICATION_DATABASE_URL": database,
            "MPP_NOTIFICATION_DISPATCHER_GROUP": group,
            "MPP_NOTIFICATION_TRIGGER_FILE": str(trigger_file),
            "MPP_NOTIFICATION_WHATSAPP_PROVIDER": "cloud",
            "MPP_NOTIFICATION_WHATSAPP_BASE_URL": gateway.url,
            "MPP_NOTIFICATION_WHATSAPP_PHONE_NUMBER_ID": "1098765432",
            "MPP_NOTIFICATION_WHATSAPP_TOKEN": "bench",
            "MPP_NOTIFICATION_WHATSAPP_RATE_PER_S": "100000",
            "MPP_NOTIFICATION_WHATSAPP_BURST": "5000",
            "MPP_NOTIFICATION_SMS_PROVIDER": "none",
            "MPP_NOTIFICATION_EMAIL_PROVIDER": "none",
            "KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap,
        }
        if cfg.concurrency:
            env["MPP_NOTIFICATION_DISPATCH_CONCURRENCY"] = cfg.concurrency
        command = [sys.executable, "-m", "mpp.notification"]
        if profile:
            command = [sys.executable, "-m", "tools.bench_profile_server", str(pstats), "mpp.notification"]
        logfile = (artifacts / "bench_notification_service.log").open("ab")
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=logfile, stderr=subprocess.STDOUT)
        engine = create_engine(database, pool_size=1)
        producer = create_producer(bench.bootstrap, client_id=f"bench-notification-{bench.run_id}")
        await producer.start()
        try:
            await _wait_ready(proc, port)
            await _publish(producer, [_contact(ref, n) for n, ref in enumerate(citizens)])

            async def contacts_applied() -> int:
                async with engine.connect() as conn:
                    return int((await conn.execute(select(func.count()).select_from(contacts))).scalar_one())

            deadline = time.monotonic() + 120
            while await contacts_applied() < cfg.citizens:
                if time.monotonic() > deadline:
                    raise TimeoutError("the contacts were not applied within 120 s")
                await asyncio.sleep(0.2)
            log(
                f"notification: {cfg.citizens} contacts applied; offering {cfg.rate:g} messages/s for {cfg.seconds:g} s"
            )
            envelopes = [_returned(owner, applications[owner], n) for n, owner in enumerate(owners)]
            if profile:
                os.kill(proc.pid, signal.SIGUSR1)
            cpu0 = process_cpu_seconds(proc.pid)
            meter = Meter(other_pids={**watched, "notification": proc.pid}).start()
            scheduled = await _offer(producer, envelopes, cfg.rate)
            for _ in range(int(cfg.drain_timeout_s * 10)):
                if gateway.taken_keys >= total:
                    break
                await asyncio.sleep(0.1)
            meter.stop()
            cpu1 = process_cpu_seconds(proc.pid)
            if profile:
                os.kill(proc.pid, signal.SIGUSR2)
                await asyncio.sleep(1.0)
        finally:
            await producer.stop()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            logfile.close()
            await engine.dispose()
            trigger_file.unlink(missing_ok=True)
    _report(r, cfg, gateway, owners, scheduled, meter, cpu0, cpu1, total)
    if profile and pstats.exists():
        cpu_s = (cpu1 or 0.0) - (cpu0 or 0.0)
        report, _summary = profile_report(
            str(pstats), title="notification service", wall_s=meter.wall_s, cpu_s=cpu_s, root=root
        )
        report_path = artifacts / "bench_profile_notification.txt"
        report_path.write_text(report, encoding="utf-8")
        r.notes.append(f"notification: profile of the service in {report_path.relative_to(root)}")


def _trigger_file(artifacts: Path, run_id: str) -> Path:
    """The packaged triggers without quiet hours: the same figures at any hour."""
    config = json.loads(DEFAULT_TRIGGERS.read_text(encoding="utf-8"))
    config["quiet_hours"] = {"default": None, "sites": {}}
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / f"bench_notification_triggers_{run_id}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


async def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the notification service exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError("the notification service was not ready within 120 s")


async def _offer(producer: Any, envelopes: list[Envelope], rate: float) -> list[float]:
    """Publish at ``rate`` on a fixed schedule (ticks of 10 ms); the scheduled times (monotonic)."""
    start = time.monotonic() + 0.05
    scheduled = [start + n / rate for n in range(len(envelopes))]
    sent, pending = 0, []
    while sent < len(envelopes):
        now = time.monotonic()
        upto = sent
        while upto < len(envelopes) and scheduled[upto] <= now:
            upto += 1
        for env in envelopes[sent:upto]:
            key, value, headers = to_record(env)
            pending.append(await producer.send(env.topic, key=key, value=value, headers=headers))
        sent = upto
        await asyncio.sleep(0.01)
    await asyncio.gather(*pending)
    return scheduled


def _report(
    r: _Results,
    cfg: Settings,
    gateway: IdempotentGateway,
    owners: list[str],
    scheduled: list[float],
    meter: Meter,
    cpu0: float | None,
    cpu1: float | None,
    total: int,
) -> None:
    taken = sorted(gateway.taken, key=lambda t: t.seq)
    numbers = []
    for message in taken:
        found = MARKER.search(message.text)
        if found is None:
            r.fail("notification: a message without its trigger's marker")
            return
        numbers.append(int(found.group(1)))
    counts = Counter(numbers)
    twice = [n for n, c in counts.items() if c > 1]
    if twice:
        r.fail(f"notification: {len(twice)} triggers reached the provider more than once")
    if len(counts) < total:
        # Offered above what the service sustains: the rate is what reached the provider meanwhile.
        r.notes.append(
            f"notification: {total - len(counts)} of {total} messages were still queued when the drain "
            f"timeout ended the run (offered above capacity); figures count those that reached the provider"
        )
    by_citizen: dict[str, list[int]] = defaultdict(list)
    for n in numbers:
        by_citizen[owners[n]].append(n)
    disorder = sum(1 for seq in by_citizen.values() if seq != sorted(seq))
    if disorder:
        r.fail(f"notification: {disorder} citizens got their messages out of order")
    delays = sorted((m.at - scheduled[n]) * 1000.0 for m, n in zip(taken, numbers, strict=True))
    span = (max(m.at for m in taken) - scheduled[0]) if taken else 0.0
    per_s = len(counts) / span if span > 0 else 0.0
    r.add(
        "notification", "notification_messages_per_s", per_s, "msgs/s", "messages to the provider per second"
    )
    r.add("notification", "notification_offered_per_s", cfg.rate, "msgs/s", "offered (open loop)")
    r.add(
        "notification",
        "notification_delay_p50_ms",
        percentile(delays, 50),
        "ms",
        "event to provider call, p50",
    )
    r.add(
        "notification",
        "notification_delay_p99_ms",
        percentile(delays, 99),
        "ms",
        "event to provider call, p99",
    )
    r.add(
        "notification", "notification_provider_requests", gateway.requests, "count", "raw provider requests"
    )
    several = sum(1 for seq in by_citizen.values() if len(seq) > 1)
    r.add(
        "notification",
        "notification_citizens_with_several",
        several,
        "count",
        "citizens with several (order checked)",
    )
    raw = r.value("raw_produce_msgs_per_s")
    if raw:
        r.add(
            "notification",
            "notification_vs_raw_produce_ratio",
            per_s / raw,
            "ratio",
            "messages/s over raw produce msgs/s",
        )
    else:
        r.notes.append("notification: no raw produce baseline in this run (add raw to --only for the ratio)")
    if cpu0 is not None and cpu1 is not None and meter.wall_s > 0:
        r.add(
            "notification",
            "notification_service_cpu_pct",
            100.0 * (cpu1 - cpu0) / meter.wall_s,
            "%",
            "service process CPU (100 = 1 core)",
        )
    if cpu0 is not None and cpu1 is not None and counts:
        r.add(
            "notification",
            "notification_service_cpu_ms_per_message",
            1000.0 * (cpu1 - cpu0) / len(counts),
            "ms",
            "service CPU per message (comparable on a busy machine)",
        )
    if meter.machine_busy_pct is not None:
        r.add(
            "notification",
            "notification_machine_cpu_busy_pct",
            meter.machine_busy_pct,
            "%",
            "machine CPU busy (all cores)",
        )
    for name, pct in meter.other_cpu_pct.items():
        if name != "notification":
            r.add(
                "notification", f"notification_{name}_cpu_pct", pct, "%", f"{name} process CPU (100 = 1 core)"
            )
    r.details["notification"] = {
        "offered_per_s": cfg.rate,
        "seconds": cfg.seconds,
        "citizens": cfg.citizens,
        "provider_latency_ms": cfg.latency_ms,
        "messages": total,
        "delivered": len(counts),
    }
    r.notes.append(
        f"notification: one service process, WhatsApp provider on loopback with {cfg.latency_ms:g} ms per call; "
        f"delay runs from each event's scheduled publication to the provider's receipt of the call"
    )
