"""The ``lifecycle`` section of ``make bench``: permit applications carried end to end.

Identity and licensing run as real processes (``python -m mpp.identity`` / ``mpp.licensing``, uvicorn) on
fresh PostgreSQL databases and the real broker; identity is seeded with synthetic citizens
(``python -m mpp.identity.seed``). An open-loop generator submits applications with those citizens' NIKs
at a steady offered rate (arrivals follow the schedule whatever the completions), and as soon as an
application's ApplicationSubmitted appears on ``mpp.licensing.applications`` (identity has verified the
NIK) officer and supervisor tokens take its workflow's actions up to ``issue``. A lifecycle is complete
when its PermitIssued is read from the topic; its latency runs from its scheduled arrival, so time the
generator itself fell behind counts too.

The services publish to the registry topics of the broker they are given. A site code and consumer
groups of the run's own keep the run apart from other traffic on a shared broker: the bench commits its
groups' offsets at the topics' ends before the services start, so they skip earlier verification
traffic, and it reads only its own site's events. The HTTP client is a small keep-alive HTTP/1.1 pool on
asyncio streams, much cheaper per request than httpx, so the generator takes as little as possible of the
CPU the services share with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mpp.contracts.masterdata import load_demo_catalogue
from mpp.contracts.topics import (
    LICENSING_APPLICATIONS,
    consumer_group,
)
from mpp.contracts.topics import topic as registry_topic
from mpp.identity.seed import DECEASED_EVERY, FALLBACK_KABKOTA, synthetic_citizen
from mpp.kit.auth import issue_token
from mpp.kit.db import create_engine
from mpp.kit.kafka import ensure_topics, stop_consumer, topic_partitions
from tools.bench_support import Meter, percentile, process_cpu_seconds, profile_report
from tools.run_platform import PATH_TO_PERMIT

IDENTITY_VERIFIER_GROUP = "mpp.identity.verifier"
LICENSING_RESULTS_GROUP = "mpp.licensing.verification-results"
SUBMITTED = "ApplicationSubmitted"
NIK_REJECTED = "nik_rejected"
ISSUED = "PermitIssued"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# configuration and report
# --------------------------------------------------------------------------------------------------


@dataclass
class LifecycleConfig:
    bootstrap: str
    admin_url: str
    run_id: str
    root: Path
    artifacts: Path
    rate: float = 300.0
    seconds: float = 20.0
    rates: list[float] = field(default_factory=lambda: [10.0, 20.0, 40.0, 80.0, 160.0, 300.0])
    step_seconds: float = 10.0
    warmup_rate: float = 50.0
    warmup_seconds: float = 4.0
    citizens: int = 1000
    connections: int = 64
    p99_bound_ms: float = 2000.0
    drain_timeout_s: float = 60.0
    watched_pids: dict[str, int] = field(default_factory=dict)
    raw_produce_msgs_per_s: float | None = None
    profile: bool = False
    profile_rate: float = 100.0
    profile_seconds: float = 10.0


@dataclass
class LifecycleReport:
    figures: list[tuple[str, float, str, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, label: str) -> None:
        self.figures.append((name, float(value), unit, label))


# --------------------------------------------------------------------------------------------------
# a small keep-alive HTTP/1.1 client
# --------------------------------------------------------------------------------------------------


class HttpError(Exception):
    pass


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.used = reader, writer, False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class HttpPool:
    """At most ``size`` keep-alive connections to one server; requests wait for a free one.

    Enough HTTP/1.1 for the services' JSON answers (Content-Length bodies). A request on a reused
    connection the server closed meanwhile is sent again once on a new connection.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self._free: list[_Conn] = []
        self._slots = asyncio.Semaphore(size)
        self._host_line = f"Host: {host}:{port}\r\n".encode()

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        head = bytearray(f"{method} {path} HTTP/1.1\r\n".encode())
        head += self._host_line
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n".encode()
        head += f"Content-Length: {len(body)}\r\n\r\n".encode()
        payload = bytes(head) + body
        async with self._slots:
            for attempt in range(2):
                conn = self._free.pop() if self._free else await self._connect()
                reused = conn.used
                try:
                    conn.writer.write(payload)
                    status, data, keep = await self._read(conn.reader)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    conn.close()
                    if reused and attempt == 0:
                        continue
                    raise HttpError(f"{type(exc).__name__}: {exc}") from exc
                except BaseException:
                    conn.close()
                    raise
                conn.used = True
                if keep:
                    self._free.append(conn)
                else:
                    conn.close()
                return status, data
        raise HttpError("unreachable")  # pragma: no cover

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise HttpError(f"HTTP {status} without Content-Length")
        end = lower.find(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
        data = await reader.readexactly(length) if length else b""
        return status, data, b"\r\nconnection: close" not in lower

    async def close(self) -> None:
        for conn in self._free:
            conn.close()
        self._free.clear()


# --------------------------------------------------------------------------------------------------
# the licensing topic, seen from the bench
# --------------------------------------------------------------------------------------------------


class TopicWatcher:
    """Reads ``mpp.licensing.applications`` from its end and notes when each of the run's applications'
    ApplicationSubmitted and PermitIssued arrive (CloudEvents headers only: the values are not parsed)."""

    def __init__(self, bootstrap: str, site: str) -> None:
        self.bootstrap = bootstrap
        self.site = site.encode()
        self.seen: dict[tuple[str, str], float] = {}
        self.waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.counts: dict[str, int] = {}
        self.records = 0
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            client_id="mpp-bench-lifecycle-watch",
        )
        await consumer.start()
        tps = await topic_partitions(self.bootstrap, LICENSING_APPLICATIONS)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before any application of the run exists
            await consumer.position(tp)
        self.consumer = consumer

    async def run(self, stop: asyncio.Event) -> None:
        assert self.consumer is not None
        while not stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                self.records += len(records)
                for rec in records:
                    subject = kind = None
                    mine = False
                    for key, value in rec.headers:
                        if key == "ce_site":
                            mine = value == self.site
                        elif key == "ce_type":
                            kind = value.decode()
                        elif key == "ce_subject":
                            subject = value.decode()
                    if mine and subject is not None and kind is not None:
                        self.note(subject, kind, now)

    def note(self, subject: str, kind: str, at: float) -> None:
        """An event of the run's site read from the topic at ``at`` (``time.perf_counter()``)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        k = (subject, kind)
        self.seen.setdefault(k, at)
        waiter = self.waiters.pop(k, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(at)

    async def wait(self, app_id: str, kind: str) -> float:
        k = (app_id, kind)
        if k in self.seen:
            return self.seen[k]
        fut = self.waiters.get(k)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.waiters[k] = fut
        return await fut

    async def stop(self) -> None:
        if self.consumer is not None:
            await stop_consumer(self.consumer)


# --------------------------------------------------------------------------------------------------
# one lifecycle
# --------------------------------------------------------------------------------------------------


@dataclass
class Trace:
    """What one application went through, in ``time.perf_counter()`` seconds."""

    n: int
    scheduled: float
    sent: float = math.nan
    submitted: float = math.nan  # the submit response
    verified_seen: float = math.nan  # ApplicationSubmitted read from the topic
    actions: list[tuple[str, float, float]] = field(default_factory=list)  # action, sent, answered
    issued: float = math.nan  # the issue response
    permit_seen: float = math.nan  # PermitIssued read from the topic
    app_id: str | None = None
    conflicts: int = 0
    error: str | None = None

    @property
    def complete(self) -> bool:
        return not math.isnan(self.permit_seen)


@dataclass
class Plan:
    """Everything a lifecycle needs, prepared before the clock starts."""

    bodies: list[bytes]  # one per seeded, living citizen, cycling over the service types
    paths: list[tuple[str, list[tuple[str, dict[str, str]]]]]  # officer headers' key, actions with headers
    officer: list[dict[str, str]]


def build_plan(secret: str, site: str, niks: Sequence[str]) -> Plan:
    catalogue = load_demo_catalogue()
    services = [st for st in catalogue.service_types if st.licensing and st.workflow in PATH_TO_PERMIT]
    tokens = {
        (st.agency, role): issue_token(
            secret, subject=f"bench-{role}-{st.agency}", roles=[role], agency=st.agency, site=site
        )
        for st in services
        for role in ("officer", "supervisor")
    }
    bodies, paths, officer = [], [], []
    for i, nik in enumerate(niks):
        st = services[i % len(services)]
        body = {
            "service_type": st.code,
            "channel": "walk_in",
            "applicant": {"nik": nik, "name": "Warga Uji Beban"},
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
        bodies.append(orjson.dumps(body))
        officer.append(
            {"Authorization": f"Bearer {tokens[(st.agency, 'officer')]}", "Content-Type": "application/json"}
        )
        steps = [
            (action, {"Authorization": f"Bearer {tokens[(st.agency, role)]}"})
            for action, role in PATH_TO_PERMIT[str(st.workflow)]
        ]
        paths.append((str(st.workflow), steps))
    return Plan(bodies=bodies, paths=paths, officer=officer)


async def lifecycle(trace: Trace, plan: Plan, http: HttpPool, watcher: TopicWatcher, run_id: str) -> None:
    i = trace.n % len(plan.bodies)
    trace.sent = time.perf_counter()
    headers = {**plan.officer[i], "Idempotency-Key": f"bench-{run_id}-{trace.n:08d}"}
    status, body = await http.request("POST", "/v1/applications", plan.bodies[i], headers)
    trace.submitted = time.perf_counter()
    if status != 201:
        trace.error = f"submit HTTP {status}: {body[:200].decode(errors='replace')}"
        return
    app_id = str(orjson.loads(body)["id"])
    trace.app_id = app_id
    trace.verified_seen = await watcher.wait(app_id, SUBMITTED)
    for action, auth in plan.paths[i][1]:
        t0 = time.perf_counter()
        for attempt in range(20):
            status, body = await http.request(
                "POST", f"/v1/applications/{app_id}/actions/{action}", b"", auth
            )
            # Two issues at the same agency and site draw permit numbers from one sequence row: the loser
            # gets 409 concurrent_update and an officer would simply try again.
            if status == 409 and b"concurrent_update" in body and attempt < 19:
                trace.conflicts += 1
                await asyncio.sleep(0.005 * (attempt + 1))
                continue
            break
        t1 = time.perf_counter()
        trace.actions.append((action, t0, t1))
        if status != 200:
            trace.error = f"{action} HTTP {status}: {body[:200].decode(errors='replace')}"
            return
    trace.issued = trace.actions[-1][2]
    trace.permit_seen = await watcher.wait(app_id, ISSUED)


# --------------------------------------------------------------------------------------------------
# what the run's PostgreSQL backends are doing
# --------------------------------------------------------------------------------------------------


class PgSampler:
    """Samples ``pg_stat_activity`` for the run's databases a few times a second: how many backends are
    busy and on what (wait event, statement), which tells lock or pool waits from CPU work."""

    def __init__(self, admin_url: str, databases: dict[str, str], interval_s: float = 0.2) -> None:
        self.admin_url = admin_url
        self.databases = databases  # database name -> service
        self.interval_s = interval_s
        self.reset()

    def reset(self) -> None:
        self.samples = 0
        self.active: dict[str, int] = {}
        self.waits: dict[str, int] = {}

    def summary(self) -> dict[str, Any]:
        n = max(self.samples, 1)
        top = sorted(self.waits.items(), key=lambda kv: kv[1], reverse=True)[:8]
        return {
            "samples": self.samples,
            "mean_active_backends": {k: round(v / n, 2) for k, v in self.active.items()},
            "top_active": [{"what": k, "mean_backends": round(v / n, 2)} for k, v in top],
        }

    async def run(self, stop: asyncio.Event) -> None:
        engine = create_engine(self.admin_url, pool_size=1)
        query = text(
            "SELECT datname, coalesce(wait_event_type || ':' || wait_event, 'cpu'), "
            "regexp_replace(left(query, 48), '\\s+', ' ', 'g') FROM pg_stat_activity "
            "WHERE datname = ANY(:names) AND state NOT IN ('idle') AND pid <> pg_backend_pid()"
        )
        names = list(self.databases)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                while not stop.is_set():
                    rows = (await conn.execute(query, {"names": names})).all()
                    self.samples += 1
                    for db, wait, stmt in rows:
                        service = self.databases.get(str(db), str(db))
                        self.active[service] = self.active.get(service, 0) + 1
                        key = f"{service} {wait} {stmt}"
                        self.waits[key] = self.waits.get(key, 0) + 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
        finally:
            await engine.dispose()


# --------------------------------------------------------------------------------------------------
# one offered rate
# --------------------------------------------------------------------------------------------------


def runq_wait_s(pid: int) -> float | None:
    """Seconds the process's main thread (the services' event loop) has spent runnable but waiting for a
    CPU (/proc/PID/schedstat): high when the machine has more runnable work than cores."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Context:
    cfg: LifecycleConfig
    plan: Plan
    http: HttpPool
    watcher: TopicWatcher
    pids: dict[str, int]
    sampler: PgSampler | None = None
    idle_cpu_pct: dict[str, float] = field(default_factory=dict)
    next_n: int = 0


def _ms(values: Sequence[float]) -> list[float]:
    return sorted(v * 1000 for v in values if not math.isnan(v))


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = _ms(values)
    if not v:
        return {"count": 0}
    return {
        "count": len(v),
        "p50_ms": round(percentile(v, 50), 1),
        "p90_ms": round(percentile(v, 90), 1),
        "p99_ms": round(percentile(v, 99), 1),
        "max_ms": round(v[-1], 1),
    }


async def run_step(ctx: Context, rate: float, seconds: float, label: str) -> dict[str, Any]:
    """Offer ``rate`` lifecycles per second for ``seconds``, then wait for the stragglers."""
    count = max(1, int(rate * seconds))
    traces: list[Trace] = []
    tasks: list[asyncio.Task[None]] = []
    log(f"lifecycle {label}: {rate:g}/s offered for {seconds:g} s ({count} applications)")
    if ctx.sampler is not None:
        ctx.sampler.reset()
    waited = {
        k: runq_wait_s(p)
        for k, p in {**ctx.pids, "bench": os.getpid()}.items()
        if k not in ("kafka", "postgres")
    }
    meter = Meter(other_pids=dict(ctx.pids)).start()
    # Arrivals and the drain: the CPU every lifecycle of the step cost, however long it took to finish.
    whole = Meter(other_pids=dict(ctx.pids)).start()
    t0 = time.perf_counter()
    for i in range(count):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        trace = Trace(n=ctx.next_n, scheduled=at)
        ctx.next_n += 1
        traces.append(trace)
        tasks.append(asyncio.create_task(lifecycle(trace, ctx.plan, ctx.http, ctx.watcher, ctx.cfg.run_id)))
    arrivals_end = time.perf_counter()
    lag = arrivals_end - (t0 + (count - 1) / rate)
    meter.stop()
    runq_wait_pct: dict[str, float] = {}
    for k, w0 in waited.items():
        w1 = runq_wait_s(ctx.pids[k] if k != "bench" else os.getpid())
        if w0 is not None and w1 is not None:
            runq_wait_pct[k] = round(100.0 * (w1 - w0) / max(meter.wall_s, 1e-9), 1)
    pg_activity = ctx.sampler.summary() if ctx.sampler is not None else None
    # Stragglers: until all are done, the drain timeout passes, or none has finished for 15 s (an
    # application whose NIK another verifier refused never will).
    pending = set(tasks)
    drain_deadline = time.perf_counter() + ctx.cfg.drain_timeout_s
    progress = time.perf_counter()
    while pending and time.perf_counter() < drain_deadline and time.perf_counter() - progress < 15.0:
        finished, pending = await asyncio.wait(pending, timeout=1.0)
        if finished:
            progress = time.perf_counter()
    done = set(tasks) - pending
    drained = time.perf_counter()
    whole.stop()
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    failures: list[str] = []
    for task, trace in zip(tasks, traces, strict=True):
        if task in done and task.exception() is not None:
            trace.error = f"{type(task.exception()).__name__}: {task.exception()}"
        if trace.error:
            failures.append(trace.error)
    complete = [t for t in traces if t.complete]
    window = seconds
    ramp = min(window / 4, 5.0)
    steady = sum(1 for t in complete if t0 + ramp <= t.permit_seen <= t0 + window)
    steady_rate = steady / (window - ramp) if window > ramp else math.nan
    last = max((t.permit_seen for t in complete), default=math.nan)
    overall = len(complete) / (last - t0) if complete and last > t0 else 0.0
    lat = _stats([t.permit_seen - t.scheduled for t in complete])
    third = max(1, len(traces) // 3)
    early = _stats([t.permit_seen - t.scheduled for t in traces[:third] if t.complete])
    late = _stats([t.permit_seen - t.scheduled for t in traces[-third:] if t.complete])
    per_action: dict[str, list[float]] = {}
    for t in traces:
        for action, a0, a1 in t.actions:
            per_action.setdefault(action, []).append(a1 - a0)
    incomplete = len(traces) - len(complete)
    achieved = steady_rate if not math.isnan(steady_rate) else overall
    states = await _state_counts(ctx, [t for t in traces if not t.complete][:500]) if incomplete else {}
    # Only the run's living citizens apply, so a refused NIK means another identity verifier on a shared
    # broker answered the request first: those applications are left out of the verdict.
    foreign = states.get(NIK_REJECTED, 0)
    bounded = (
        incomplete - foreign == 0
        and bool(lat.get("count"))
        and float(lat["p99_ms"]) <= ctx.cfg.p99_bound_ms
        and achieved >= 0.9 * rate * (1 - foreign / count)
    )
    out: dict[str, Any] = {
        "offered_per_s": rate,
        "seconds": seconds,
        "applications": count,
        "completed": len(complete),
        "incomplete": incomplete,
        "failed": len(failures),
        "failure_samples": failures[:5],
        "incomplete_states": states,
        "nik_rejected": foreign,
        "completed_per_s_steady": round(steady_rate, 1),
        "completed_per_s_overall": round(overall, 1),
        "achieved_vs_offered": round(achieved / rate, 3),
        "bounded": bounded,
        "generator_lag_s": round(lag, 3),
        "drain_s": round(drained - arrivals_end, 2),
        "lifecycle": lat,
        "lifecycle_first_third": early,
        "lifecycle_last_third": late,
        "stages": {
            "client_queue": _stats([t.sent - t.scheduled for t in traces]),
            "submit_http": _stats([t.submitted - t.sent for t in traces]),
            "verification": _stats([t.verified_seen - t.submitted for t in traces]),
            "actions_total": _stats([t.issued - t.verified_seen for t in traces]),
            "issue_to_topic": _stats([t.permit_seen - t.issued for t in traces]),
            **{f"action_{a}": _stats(v) for a, v in per_action.items()},
        },
        "conflict_retries": sum(t.conflicts for t in traces),
        "cpu_pct": {
            "bench": round(meter.process_cpu_pct, 1),
            **{k: round(v, 1) for k, v in meter.other_cpu_pct.items()},
        },
        "machine_cpu_busy_pct": None if meter.machine_busy_pct is None else round(meter.machine_busy_pct, 1),
        "runq_wait_pct": runq_wait_pct,
        # CPU milliseconds each process spent per offered lifecycle, above its idle use: meaningful when
        # the step kept up (bounded), and the least noisy figure on a shared machine.
        "cpu_ms_per_lifecycle": {
            k: round(max(0.0, v - ctx.idle_cpu_pct.get(k, 0.0)) * 10.0 / rate, 2)
            for k, v in meter.other_cpu_pct.items()
            if k in ("identity", "licensing", "postgres", "kafka")
        },
        # The same per completed lifecycle, over arrivals and drain: comparable between runs whether or not
        # the step kept up (a step that fell behind did its work during the drain).
        "cpu_ms_per_completed": {
            k: round(
                max(0.0, v - ctx.idle_cpu_pct.get(k, 0.0)) * 10.0 * whole.wall_s / max(len(complete), 1), 2
            )
            for k, v in whole.other_cpu_pct.items()
            if k in ("identity", "licensing", "postgres", "kafka")
        },
        "pg_activity": pg_activity,
    }
    if incomplete:
        out["incomplete_samples"] = await _states(ctx, [t for t in traces if not t.complete][:10])
    log(
        f"lifecycle {label}: {len(complete)}/{count} complete, {achieved:.0f}/s steady, p50 "
        f"{lat.get('p50_ms', math.nan)} ms, p99 {lat.get('p99_ms', math.nan)} ms, CPU {out['cpu_pct']}, "
        f"run-queue wait {runq_wait_pct}, CPU ms per completed {out['cpu_ms_per_completed']}"
        f"{f', unfinished {states}' if states else ''}"
    )
    return out


async def settle(ctx: Context, quiet_s: float = 3.0, limit_s: float = 180.0) -> None:
    """Wait until the services have finished what earlier steps left them (the run's events stop
    arriving and identity and licensing are nearly idle), so that every step starts from a quiet system."""
    t0 = time.monotonic()
    last = -1
    quiet_since = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        meter = Meter(
            other_pids={k: v for k, v in ctx.pids.items() if k in ("identity", "licensing")}
        ).start()
        await asyncio.sleep(1.0)
        meter.stop()
        events = sum(ctx.watcher.counts.values())
        busy = sum(meter.other_cpu_pct.values())
        if events != last or busy > 25.0:
            last = events
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
    log(f"lifecycle: the services were still busy after {limit_s:.0f} s; going on")


async def _state_counts(ctx: Context, traces: Sequence[Trace]) -> dict[str, int]:
    """How many of the unfinished applications are in each state (licensing's answer)."""

    async def state(t: Trace) -> str:
        if t.app_id is None:
            return "not submitted"
        try:
            status, body = await ctx.http.request(
                "GET", f"/v1/applications/{t.app_id}", b"", ctx.plan.officer[t.n % len(ctx.plan.bodies)]
            )
        except (HttpError, OSError, asyncio.IncompleteReadError):
            return "unreadable"
        return str(orjson.loads(body).get("state")) if status == 200 else f"HTTP {status}"

    counts: dict[str, int] = {}
    for s in await asyncio.gather(*(state(t) for t in traces)):
        counts[s] = counts.get(s, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: kv[1], reverse=True))


async def _states(ctx: Context, traces: Sequence[Trace]) -> list[str]:
    """Where some unfinished applications stand (their state in licensing), for the report."""
    out = []
    for t in traces:
        if t.app_id is None:
            out.append(f"#{t.n}: not submitted ({t.error or 'cancelled'})")
            continue
        try:
            status, body = await ctx.http.request(
                "GET", f"/v1/applications/{t.app_id}", b"", ctx.plan.officer[t.n % len(ctx.plan.bodies)]
            )
            state = orjson.loads(body).get("state") if status == 200 else f"HTTP {status}"
        except (HttpError, ValueError) as exc:
            state = repr(exc)
        out.append(f"#{t.n}: {state}, {len(t.actions)} actions done{f', {t.error}' if t.error else ''}")
    return out


# --------------------------------------------------------------------------------------------------
# the platform under test
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def fresh_databases(admin_url: str, names: Sequence[str]) -> AsyncIterator[list[str]]:
    admin = create_engine(admin_url, pool_size=1)
    try:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for name in names:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            base = make_url(admin_url)
            yield [base.set(database=n).render_as_string(hide_password=False) for n in names]
        finally:
            async with admin.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                for name in names:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def skip_backlog(bootstrap: str, group: str, topics: Sequence[str]) -> None:
    """Commit ``group``'s offsets at the topics' current ends, so a fresh group starts there rather than
    at the beginning of a shared topic's history."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, client_id="mpp-bench-offsets"
    )
    await consumer.start()
    try:
        tps = [tp for t in topics for tp in await topic_partitions(bootstrap, t)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit(dict(ends))
    finally:
        await stop_consumer(consumer)


class Service:
    def __init__(self, name: str, env: dict[str, str], cfg: LifecycleConfig, profile: bool) -> None:
        self.name = name
        self.port = _free_port()
        self.env = {
            **os.environ,
            **env,
            f"MPP_{name.upper()}_HTTP_PORT": str(self.port),
            f"MPP_{name.upper()}_LOG_LEVEL": "WARNING",
        }
        self.log_path = cfg.artifacts / f"bench-lifecycle-{name}.log"
        self.pstats = cfg.artifacts / f"bench_profile_lifecycle_{name}.pstats"
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.root = cfg.root

    def start(self) -> None:
        command = [sys.executable, "-m", f"mpp.{self.name}"]
        if self.profile:
            self.pstats.unlink(missing_ok=True)
            command = [
                sys.executable,
                "-m",
                "tools.bench_profile_server",
                str(self.pstats),
                f"mpp.{self.name}",
            ]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=self.root, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        assert self.proc is not None
        http = HttpPool("127.0.0.1", self.port, 1)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}; see {self.log_path.name}"
                    )
                with contextlib.suppress(OSError, HttpError, asyncio.IncompleteReadError):
                    if (await http.request("GET", "/readyz"))[0] == 200:
                        return
                await asyncio.sleep(0.2)
        finally:
            await http.close()
        raise RuntimeError(f"{self.name} was not ready within {timeout_s:.0f} s; see {self.log_path.name}")

    async def stop(self, timeout_s: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {proc.pid}) ignored SIGTERM for {timeout_s:.0f} s; killing it")
            proc.kill()
            await asyncio.to_thread(proc.wait)


async def seed_citizens(identity: Service, count: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mpp.identity.seed",
        "--count",
        str(count),
        cwd=identity.root,
        env=identity.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"identity seed failed: {out.decode(errors='replace')[-1000:]}")


def living_niks(count: int) -> list[str]:
    """The NIKs of the seeded citizens the registry verifies (every DECEASED_EVERY-th is deceased)."""
    from mpp.identity.config import IdentitySettings

    catalogue = load_demo_catalogue()
    home = IdentitySettings().site  # the seed registers citizens in its default site's kabupaten/kota
    kabkota = next((s.kabkota for s in catalogue.sites if s.code == home), FALLBACK_KABKOTA)
    return [
        synthetic_citizen(n, site=home, kabkota=kabkota).nik
        for n in range(1, count + 1)
        if n % DECEASED_EVERY != 0
    ]


async def _profile_pass(ctx: Context, services: Sequence[Service], report: LifecycleReport) -> None:
    cfg = ctx.cfg
    for svc in services:
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGUSR1)
    await asyncio.sleep(0.2)
    cpu0 = {svc.name: process_cpu_seconds(svc.proc.pid) if svc.proc else None for svc in services}
    t0 = time.perf_counter()
    step = await run_step(ctx, cfg.profile_rate, cfg.profile_seconds, "profile")
    for svc in services:
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGUSR2)
    wall = time.perf_counter() - t0  # arrivals and the drain: what the profiles cover
    profiles: dict[str, Any] = {"step": step}
    for svc in services:
        for _ in range(100):
            if svc.pstats.exists():
                break
            await asyncio.sleep(0.1)
        else:
            report.errors.append(f"lifecycle profile: {svc.name} wrote no profile")
            continue
        start, end = cpu0.get(svc.name), process_cpu_seconds(svc.proc.pid) if svc.proc else None
        text_, summary = profile_report(
            str(svc.pstats),
            title=f"{svc.name} under the lifecycle load, {cfg.profile_rate:g}/s offered for {cfg.profile_seconds:g} s",
            wall_s=wall,
            cpu_s=(end - start) if start is not None and end is not None else math.nan,
            root=cfg.root,
        )
        path = cfg.artifacts / f"bench_profile_lifecycle_{svc.name}.txt"
        path.write_text(text_)
        profiles[svc.name] = {"file": str(path.relative_to(cfg.root)), **summary}
    report.details["lifecycle_profile"] = profiles


# --------------------------------------------------------------------------------------------------
# the section
# --------------------------------------------------------------------------------------------------


async def run_lifecycle(cfg: LifecycleConfig) -> LifecycleReport:
    import secrets

    report = LifecycleReport()
    cfg.artifacts.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    site = f"mpp-bench-{cfg.run_id}"
    groups = {
        "identity": f"{IDENTITY_VERIFIER_GROUP}.bench-{cfg.run_id}",
        "licensing": f"{LICENSING_RESULTS_GROUP}.bench-{cfg.run_id}",
    }
    wanted = {
        *consumer_group(IDENTITY_VERIFIER_GROUP).topics,
        *consumer_group(LICENSING_RESULTS_GROUP).topics,
        LICENSING_APPLICATIONS,
    }
    await ensure_topics(cfg.bootstrap, [registry_topic(t) for t in sorted(wanted)])
    await skip_backlog(cfg.bootstrap, groups["identity"], consumer_group(IDENTITY_VERIFIER_GROUP).topics)
    await skip_backlog(cfg.bootstrap, groups["licensing"], consumer_group(LICENSING_RESULTS_GROUP).topics)
    names = [f"bench_lc_identity_{cfg.run_id}", f"bench_lc_licensing_{cfg.run_id}"]
    async with fresh_databases(cfg.admin_url, names) as (identity_url, licensing_url):
        common = {"KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap, "MPP_JWT_HS256_SECRET": secret}
        identity = Service(
            "identity",
            {
                **common,
                "MPP_IDENTITY_DATABASE_URL": identity_url,
                "MPP_IDENTITY_VERIFIER_GROUP": groups["identity"],
            },
            cfg,
            cfg.profile,
        )
        licensing = Service(
            "licensing",
            {
                **common,
                "MPP_LICENSING_DATABASE_URL": licensing_url,
                "MPP_LICENSING_VERIFICATION_RESULTS_GROUP": groups["licensing"],
            },
            cfg,
            cfg.profile,
        )
        t_seed = time.perf_counter()
        await seed_citizens(identity, cfg.citizens)
        report.details["lifecycle_seed_s"] = round(time.perf_counter() - t_seed, 1)
        niks = living_niks(cfg.citizens)
        log(f"lifecycle: {cfg.citizens} citizens seeded in {report.details['lifecycle_seed_s']} s")
        watcher = TopicWatcher(cfg.bootstrap, site)
        http = HttpPool("127.0.0.1", licensing.port, cfg.connections)
        stop = asyncio.Event()
        watch_task: asyncio.Task[None] | None = None
        sampler_task: asyncio.Task[None] | None = None
        try:
            identity.start()
            licensing.start()
            await asyncio.gather(identity.wait_ready(), licensing.wait_ready())
            assert identity.proc is not None and licensing.proc is not None
            log(
                f"lifecycle: identity pid {identity.proc.pid}, licensing pid {licensing.proc.pid}, site {site}"
            )
            await watcher.start()
            watch_task = asyncio.create_task(watcher.run(stop), name="bench lifecycle watcher")
            pids = {**cfg.watched_pids, "identity": identity.proc.pid, "licensing": licensing.proc.pid}
            ctx = Context(cfg=cfg, plan=build_plan(secret, site, niks), http=http, watcher=watcher, pids=pids)
            report.details["lifecycle_watched_pids"] = sorted(pids)
            ctx.sampler = PgSampler(cfg.admin_url, {names[0]: "identity", names[1]: "licensing"})
            sampler_task = asyncio.create_task(ctx.sampler.run(stop), name="bench lifecycle pg sampler")
            steps: dict[str, Any] = {}
            if cfg.warmup_seconds > 0:
                steps["warmup"] = await run_step(ctx, cfg.warmup_rate, cfg.warmup_seconds, "warm-up")
            await settle(ctx)
            idle = Meter(other_pids=dict(pids)).start()
            await asyncio.sleep(3.0)
            ctx.idle_cpu_pct = {k: round(v, 1) for k, v in idle.stop().other_cpu_pct.items()}
            steps["idle_cpu_pct"] = ctx.idle_cpu_pct
            log(f"lifecycle: idle CPU {ctx.idle_cpu_pct}")
            search: list[dict[str, Any]] = []
            for rate in sorted(cfg.rates):
                await settle(ctx)
                step = await run_step(ctx, rate, cfg.step_seconds, f"search {rate:g}/s")
                search.append(step)
                if not step["bounded"]:
                    break  # higher rates would only queue more
            steps["search"] = search
            if cfg.profile:
                await settle(ctx)
                await _profile_pass(ctx, [identity, licensing], report)
            # Last, so that a backlog it leaves behind when the rate is too high spoils no other step.
            await settle(ctx)
            headline = await run_step(ctx, cfg.rate, cfg.seconds, "headline")
            steps["headline"] = headline
            report.details["lifecycle"] = steps
            report.details["lifecycle_topic_events"] = dict(watcher.counts)
            _figures(cfg, report, headline, search)
            if watch_task.done() and watch_task.exception() is not None:
                report.errors.append(f"lifecycle: the topic watcher died: {watch_task.exception()!r}")
        finally:
            stop.set()
            for task in (watch_task, sampler_task):
                if task is not None:
                    with contextlib.suppress(BaseException):
                        await asyncio.wait_for(task, timeout=10)
            await watcher.stop()
            await http.close()
            await asyncio.gather(identity.stop(), licensing.stop())
    return report


def _figures(
    cfg: LifecycleConfig, report: LifecycleReport, headline: dict[str, Any], search: list[dict[str, Any]]
) -> None:
    rate = cfg.rate
    achieved = float(headline["completed_per_s_steady"])
    if math.isnan(achieved):
        achieved = float(headline["completed_per_s_overall"])
    report.add("lifecycle_completed_per_s", achieved, "lc/s", f"complete lifecycles, {rate:g}/s offered")
    report.add("lifecycle_offered_per_s", rate, "lc/s", "offered (open loop)")
    report.add("lifecycle_achieved_vs_offered_ratio", achieved / rate, "ratio", "achieved / offered")
    lat = headline["lifecycle"]
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")):
        report.add(
            f"lifecycle_latency_{key}",
            float(lat.get(key, math.nan)),
            "ms",
            f"submit -> PermitIssued, {label}",
        )
    for stage, label in (
        ("client_queue", "waiting for a connection"),
        ("submit_http", "POST /v1/applications"),
        ("verification", "submit answered -> ApplicationSubmitted"),
        ("actions_total", "all actions up to issue"),
        ("issue_to_topic", "issue answered -> PermitIssued"),
    ):
        st = headline["stages"][stage]
        for pct in ("p50", "p99"):
            report.add(
                f"lifecycle_{stage}_{pct}_ms", float(st.get(f"{pct}_ms", math.nan)), "ms", f"{label}, {pct}"
            )
    report.add(
        "lifecycle_incomplete_count", headline["incomplete"], "count", "not complete within the drain timeout"
    )
    report.add(
        "lifecycle_nik_rejected_count",
        headline["nik_rejected"],
        "count",
        "refused NIK: another verifier answered first",
    )
    report.add(
        "lifecycle_conflict_retries_count",
        headline["conflict_retries"],
        "count",
        "409 concurrent_update retried",
    )
    for name, pct in headline["cpu_pct"].items():
        report.add(f"lifecycle_{name}_cpu_pct", pct, "%", f"{name} CPU (100 = 1 core)")
    for name, pct in headline["runq_wait_pct"].items():
        report.add(
            f"lifecycle_{name}_runq_wait_pct", pct, "%", f"{name} event loop runnable, waiting for a CPU"
        )
    if headline["machine_cpu_busy_pct"] is not None:
        report.add(
            "lifecycle_machine_cpu_busy_pct", headline["machine_cpu_busy_pct"], "%", "machine CPU busy"
        )
    if cfg.raw_produce_msgs_per_s:
        report.add(
            "lifecycle_vs_raw_produce_pct",
            100.0 * achieved / cfg.raw_produce_msgs_per_s,
            "%",
            "lifecycles/s as % of raw produce msgs/s",
        )
    for name, ms in headline["cpu_ms_per_completed"].items():
        report.add(
            f"lifecycle_{name}_cpu_ms_per_completed",
            ms,
            "ms",
            f"{name} CPU per completed lifecycle above idle (headline, arrivals and drain)",
        )
    kept_up = [s for s in search if s["bounded"]]
    if kept_up:
        best = max(kept_up, key=lambda s: float(s["offered_per_s"]))
        for name, ms in best["cpu_ms_per_lifecycle"].items():
            report.add(
                f"lifecycle_{name}_cpu_ms_per_lifecycle",
                ms,
                "ms",
                f"{name} CPU per lifecycle above idle, at {best['offered_per_s']:g}/s",
            )
            if name in ("identity", "licensing") and ms > 0:
                report.add(
                    f"lifecycle_{name}_cpu_bound_per_s",
                    1000.0 / ms,
                    "lc/s",
                    f"{name}: lifecycles/s one whole core would carry",
                )
    bounded = [s["offered_per_s"] for s in search if s["bounded"]]
    report.add(
        "lifecycle_max_bounded_rate_per_s",
        max(bounded) if bounded else 0.0,
        "lc/s",
        f"highest searched rate with p99 <= {cfg.p99_bound_ms:g} ms",
    )
    if bounded and cfg.raw_produce_msgs_per_s:
        report.add(
            "lifecycle_max_bounded_vs_raw_produce_pct",
            100.0 * max(bounded) / cfg.raw_produce_msgs_per_s,
            "%",
            "highest bounded rate as % of raw produce",
        )
        report.add(
            "lifecycle_raw_produce_msgs_per_bounded_lifecycle",
            cfg.raw_produce_msgs_per_s / max(bounded),
            "msgs",
            "raw produce msgs/s per bounded lifecycle/s",
        )
    for s in search:
        report.add(
            f"lifecycle_at_{s['offered_per_s']:g}_completed_per_s",
            float(s["completed_per_s_steady"]),
            "lc/s",
            f"{s['offered_per_s']:g}/s offered, p99 {s['lifecycle'].get('p99_ms', math.nan)} ms"
            f"{'' if s['bounded'] else ' (unbounded)'}",
        )
    failed = int(headline["failed"]) + sum(int(s["failed"]) for s in search)
    if failed:
        samples = headline["failure_samples"] or next(s["failure_samples"] for s in search if s["failed"])
        report.errors.append(f"lifecycle: {failed} lifecycles failed, e.g. {samples[0]}")
    rejected = int(headline["nik_rejected"]) + sum(int(s["nik_rejected"]) for s in search)
    if rejected:
        report.notes.append(
            f"lifecycle: {rejected} applications ended nik_rejected although every applicant is a living "
            "seeded citizen: another identity verifier on this broker (someone else's run on the same "
            "registry topics) answered their verification requests first; they count as unfinished"
        )
    if headline["incomplete"]:
        report.notes.append(
            f"lifecycle: {headline['incomplete']} of {headline['applications']} applications did not reach "
            f"PermitIssued within {cfg.drain_timeout_s:g} s of the last arrival: e.g. "
            f"{'; '.join(headline.get('incomplete_samples', [])[:3])}"
        )
