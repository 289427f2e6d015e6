"""The ``queue`` section of ``make bench``: kiosk ticket issue and counters calling the next ticket.

The queue service runs as a real process (``python -m mpp.queue``, uvicorn) on a fresh PostgreSQL
database and the real broker, outbox relay on. Its catalogue is the demo catalogue plus the run's own
sites: kiosk sites (one per ticket-issue step, so no step runs a prefix's daily numbers out) and a
calling site with ``--queue-counters`` counters (50), each a copy of a demo counter (agency and service
types), so several counters share each queue as at a real MPP.

1. **Tickets**: kiosk visits (``POST /v1/visits`` with an Idempotency-Key, one or two tickets, the
   prefixes taken evenly) at saturation (a closed loop of ``--queue-ticket-clients`` kiosks) and at a
   steady offered load (open loop, ``--queue-ticket-rate`` tickets/s; another step at 70% of the
   saturation throughput when that is lower): tickets/s and p50/p99 latency.
2. **Call-next**: the calling site's queue is filled through the kiosk first; then every counter opens
   and loops call-next -> start -> complete while kiosks keep issuing tickets (``--queue-arrival-rate``).
   Open loop at ``--queue-call-rate`` calls/s in all (each counter calls on its own schedule; a cycle that
   overruns makes the next call late, which is counted), then at saturation (no pause between cycles).
   Call-next latency is the HTTP round trip; the lag behind schedule is reported separately. Correctness:
   no ticket may be handed to two calls (from the responses and from the database: every called ticket
   has ``call_count`` 1, and the database holds exactly the calls the counters were answered).

CPU of the queue process, PostgreSQL and Kafka is measured per step, and the ticket rate is compared with
the raw produce baseline of the same run. With ``--profile``, or when a target is missed, cProfile passes
of the queue process (ticket saturation, call-next saturation) are written to
``artifacts/bench_profile_queue_{tickets,calls}.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import secrets
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import text

from mpp.contracts.masterdata import load_catalogue, load_demo_catalogue
from mpp.kit.auth import issue_token
from mpp.kit.db import create_engine
from tools.bench_lifecycle import (
    HttpError,
    HttpPool,
    LifecycleConfig,
    Service,
    fresh_databases,
    runq_wait_s,
)
from tools.bench_support import WATCHED_PIDS, Meter, percentile, process_cpu_seconds, profile_report

if TYPE_CHECKING:
    from tools.bench import Bench

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
SECTION = "queue"
MAX_PER_PREFIX = 9_000  # a prefix numbers at most 9,999 tickets a day at a site

# Information only, merged into tools.bench.TARGETS.
TARGETS: dict[str, tuple[str, float, str]] = {
    "queue_tickets_per_s": (">=", 1000.0, "queue tickets >= 1,000/s per process"),
    "queue_call_next_p99_ms": ("<", 50.0, "call-next p99 < 50 ms at 200 calls/s"),
}


def log(message: str) -> None:
    import sys

    print(f"[bench] {message}", file=sys.stderr, flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue-counters", type=int, default=50, help="counters at the calling site")
    p.add_argument("--queue-ticket-clients", type=int, default=96, help="kiosks of the closed loop")
    p.add_argument("--queue-ticket-rate", type=float, default=1000.0, help="offered tickets/s, open loop")
    p.add_argument("--queue-ticket-seconds", type=float, default=12.0, help="length of each ticket step")
    p.add_argument("--queue-call-rate", type=float, default=200.0, help="offered call-next/s, all counters")
    p.add_argument("--queue-call-seconds", type=float, default=15.0)
    p.add_argument("--queue-call-saturation-seconds", type=float, default=10.0)
    p.add_argument(
        "--no-queue-analyze",
        dest="queue_analyze",
        action="store_false",
        help="call right after the fill, before the tickets table's statistics know its waiting tickets "
        "(autovacuum analyses it within about a minute of 500 changes: queue migration 0008)",
    )
    p.add_argument(
        "--queue-arrival-rate", type=float, default=40.0, help="kiosk visits/s while the counters call"
    )
    p.add_argument("--queue-connections", type=int, default=64, help="HTTP connections of the kiosks")
    p.add_argument("--queue-profile-seconds", type=float, default=8.0)


# --------------------------------------------------------------------------------------------------
# the run's catalogue and tokens
# --------------------------------------------------------------------------------------------------


def bench_catalogue(run_id: str, kiosk_sites: int, counters: int) -> tuple[bytes, list[str], str]:
    """The demo catalogue plus the run's kiosk sites and a calling site with ``counters`` counters."""
    demo = load_demo_catalogue()
    doc = demo.model_dump(mode="json")
    template = doc["sites"][0]
    kiosks = [f"mpp-bench-q{run_id}-k{i + 1}" for i in range(kiosk_sites)]
    calling = f"mpp-bench-q{run_id}-c"
    doc["sites"] = [*doc["sites"], *({**template, "code": code} for code in [*kiosks, calling])]
    models = doc["counters"]
    doc["counters"] = [
        *models,
        *(
            {
                **models[i % len(models)],
                "code": f"loket-b{i + 1:02d}",
                "site": calling,
                "name": f"Loket {i + 1}",
            }
            for i in range(counters)
        ),
    ]
    body = orjson.dumps(doc)
    load_catalogue(body)  # fails here, not in the service, if the run's catalogue is invalid
    return body, kiosks, calling


@dataclass(frozen=True)
class CounterPlan:
    code: str
    service_types: tuple[str, ...]
    auth: dict[str, str]


class Kiosk:
    """Visit bodies for one site: one or two tickets, each prefix taken at most MAX_PER_PREFIX times.

    ``weights`` decides which service types are asked for: the kiosk sites take the prefixes evenly; the
    calling site takes them as its counters serve them (a random counter, one of its service types).
    """

    def __init__(
        self, site: str, secret: str, pick: Callable[[random.Random], str], prefix_of: dict[str, str]
    ):
        self.site = site
        self.pick = pick
        self.prefix_of = prefix_of
        self.rng = random.Random(site)
        self.issued: dict[str, int] = {}
        token = issue_token(secret, subject=f"kiosk-{site}", roles=["kiosk"], site=site, ttl_seconds=7200)
        self.auth = f"Bearer {token}"
        self.n = 0

    def next(self) -> tuple[bytes, dict[str, str], int]:
        wanted = 1 + (self.rng.random() < 0.5)
        chosen: list[str] = []
        for _ in range(20):
            if len(chosen) == wanted:
                break
            code = self.pick(self.rng)
            prefix = self.prefix_of[code]
            if code in chosen or self.issued.get(prefix, 0) >= MAX_PER_PREFIX:
                continue
            self.issued[prefix] = self.issued.get(prefix, 0) + 1
            chosen.append(code)
        if not chosen:
            raise RuntimeError(f"queue bench: every prefix at {self.site} is used up")
        self.n += 1
        body = orjson.dumps({"channel": "walk_in", "service_types": chosen})
        headers = {
            "Authorization": self.auth,
            "Content-Type": "application/json",
            "Idempotency-Key": f"bench-{self.site}-{self.n:08d}",
        }
        return body, headers, len(chosen)


def even_prefixes(service_types: dict[str, str]) -> Callable[[random.Random], str]:
    by_prefix: dict[str, list[str]] = {}
    for code, prefix in service_types.items():
        by_prefix.setdefault(prefix, []).append(code)
    groups = [sorted(v) for _, v in sorted(by_prefix.items())]
    return lambda rng: rng.choice(rng.choice(groups))


def like_counters(counters: Sequence[CounterPlan]) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(rng.choice(counters).service_types)


# --------------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    scheduled: float
    sent: float = math.nan
    answered: float = math.nan
    status: int = 0
    tickets: int = 0
    error: str | None = None


def stats_ms(values: Sequence[float]) -> dict[str, float]:
    v = sorted(x * 1000 for x in values if not math.isnan(x))
    if not v:
        return {"count": 0}
    return {
        "count": len(v),
        "p50_ms": round(percentile(v, 50), 2),
        "p90_ms": round(percentile(v, 90), 2),
        "p99_ms": round(percentile(v, 99), 2),
        "max_ms": round(v[-1], 2),
    }


async def visit(http: HttpPool, kiosk: Kiosk, sample: Sample) -> None:
    body, headers, _ = kiosk.next()
    sample.sent = time.perf_counter()
    try:
        status, data = await http.request("POST", "/v1/visits", body, headers)
    except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
        return
    sample.answered = time.perf_counter()
    sample.status = status
    if status == 201:
        sample.tickets = len(orjson.loads(data)["tickets"])
    else:
        sample.error = f"HTTP {status}: {data[:200].decode(errors='replace')}"


async def open_loop(http: HttpPool, kiosk: Kiosk, visits_per_s: float, seconds: float) -> list[Sample]:
    """Visits at a fixed schedule, whatever the answers (latency counted from the scheduled moment)."""
    count = max(1, int(visits_per_s * seconds))
    samples: list[Sample] = []
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    for i in range(count):
        at = t0 + i / visits_per_s
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sample = Sample(scheduled=at)
        samples.append(sample)
        tasks.append(asyncio.create_task(visit(http, kiosk, sample)))
    # An offered rate above what the service carries leaves a backlog: give it a bounded time to drain,
    # then give up on what is left (counted as unanswered).
    _, pending = await asyncio.wait(tasks, timeout=max(10.0, seconds))
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return samples


async def closed_loop(http: HttpPool, kiosk: Kiosk, clients: int, seconds: float) -> list[Sample]:
    """``clients`` kiosks, each issuing its next visit as soon as the previous is answered."""
    samples: list[Sample] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            sample = Sample(scheduled=time.perf_counter())
            samples.append(sample)
            await visit(http, kiosk, sample)

    await asyncio.gather(*(client() for _ in range(clients)))
    return samples


def ticket_summary(samples: Sequence[Sample], t0: float, label: str) -> dict[str, Any]:
    ok = [s for s in samples if s.status == 201]
    last = max((s.answered for s in ok), default=t0)
    wall = max(last - t0, 1e-9)
    tickets = sum(s.tickets for s in ok)
    return {
        "label": label,
        "visits": len(samples),
        "visits_ok": len(ok),
        "tickets": tickets,
        "tickets_per_s": round(tickets / wall, 1),
        "visits_per_s": round(len(ok) / wall, 1),
        "wall_s": round(wall, 2),
        "latency": stats_ms([s.answered - s.sent for s in ok]),
        "latency_from_schedule": stats_ms([s.answered - s.scheduled for s in ok]),
        "unanswered": sum(1 for s in samples if s.status == 0 and s.error is None),
        "errors": sum(1 for s in samples if s.error is not None),
        "error_samples": [s.error for s in samples if s.error][:5],
    }


@dataclass
class CallLog:
    call_next: list[tuple[float, float, float]] = field(default_factory=list)  # scheduled, sent, answered
    start: list[float] = field(default_factory=list)
    complete: list[float] = field(default_factory=list)
    called: list[str] = field(default_factory=list)
    empty: int = 0
    late: int = 0
    errors: list[str] = field(default_factory=list)


async def _post(http: HttpPool, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        return await http.request("POST", path, b"", headers)
    except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
        return 0, f"{type(exc).__name__}: {exc}".encode()


async def counter_loop(
    http: HttpPool, c: CounterPlan, log_: CallLog, t0: float, period: float, offset: float, seconds: float
) -> None:
    """One counter: call-next -> start -> complete, on its schedule (``period`` 0: back to back)."""
    k = 0
    end = t0 + seconds
    while True:
        at = t0 + offset + k * period if period > 0 else time.perf_counter()
        if at >= end:
            return
        k += 1
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif period > 0 and delay < -0.001:
            log_.late += 1
        sent = time.perf_counter()
        status, data = await _post(http, f"/v1/counters/{c.code}/call-next", c.auth)
        answered = time.perf_counter()
        if status != 200:
            log_.errors.append(f"call-next {c.code} HTTP {status}: {data[:200].decode(errors='replace')}")
            continue
        log_.call_next.append((at, sent, answered))
        ticket = orjson.loads(data).get("ticket")
        if ticket is None:
            log_.empty += 1
            continue
        tid = str(ticket["id"])
        log_.called.append(tid)
        for action, into in (("start", log_.start), ("complete", log_.complete)):
            a0 = time.perf_counter()
            status, data = await _post(http, f"/v1/tickets/{tid}/{action}", c.auth)
            into.append(time.perf_counter() - a0)
            if status != 200:
                log_.errors.append(f"{action} {tid} HTTP {status}: {data[:200].decode(errors='replace')}")
                break


async def run_counters(
    http: HttpPool, counters: Sequence[CounterPlan], rate: float | None, seconds: float
) -> tuple[CallLog, float]:
    log_ = CallLog()
    period = len(counters) / rate if rate else 0.0
    t0 = time.perf_counter()
    await asyncio.gather(
        *(
            counter_loop(http, c, log_, t0, period, period * i / len(counters), seconds)
            for i, c in enumerate(counters)
        )
    )
    return log_, time.perf_counter() - t0


def call_summary(log_: CallLog, wall: float, label: str) -> dict[str, Any]:
    return {
        "label": label,
        "calls": len(log_.call_next),
        "calls_with_ticket": len(log_.called),
        "empty_calls": log_.empty,
        "calls_per_s": round(len(log_.call_next) / max(wall, 1e-9), 1),
        "wall_s": round(wall, 2),
        "late_calls": log_.late,
        "call_next": stats_ms([a - s for _, s, a in log_.call_next]),
        "call_next_lag_behind_schedule": stats_ms([max(0.0, s - at) for at, s, _ in log_.call_next]),
        "start": stats_ms(log_.start),
        "complete": stats_ms(log_.complete),
        "duplicate_calls_in_responses": len(log_.called) - len(set(log_.called)),
        "errors": len(log_.errors),
        "error_samples": log_.errors[:5],
        "slow_windows": slow_windows(log_.call_next),
    }


def slow_windows(
    calls: Sequence[tuple[float, float, float]], *, threshold: float = 0.25, most: int = 10
) -> list[dict[str, Any]]:
    """When the slow call-nexts (``threshold`` or more) were in flight, as UTC wall-clock windows of
    overlapping calls: to line them up with the service's and the database's logs."""
    wall = time.time() - time.perf_counter()
    windows: list[list[float]] = []  # [first sent, last answered, calls]
    for sent, answered in sorted((s, a) for _, s, a in calls if a - s >= threshold):
        if windows and sent <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], answered)
            windows[-1][2] += 1
        else:
            windows.append([sent, answered, 1])
    return [
        {
            "at": datetime.fromtimestamp(wall + first, UTC).strftime("%H:%M:%S.%f")[:-3],
            "seconds": round(last - first, 3),
            "calls": int(n),
        }
        for first, last, n in windows[:most]
    ]


def cpu_of(meter: Meter, idle: dict[str, float]) -> dict[str, Any]:
    return {
        "bench": round(meter.process_cpu_pct, 1),
        **{k: round(v, 1) for k, v in meter.other_cpu_pct.items()},
        "machine_busy": None if meter.machine_busy_pct is None else round(meter.machine_busy_pct, 1),
        "queue_idle": idle.get("queue"),
    }


# --------------------------------------------------------------------------------------------------
# the section
# --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    bench: Bench
    queue: Service
    http: HttpPool
    pids: dict[str, int]
    url: str
    steps: dict[str, Any] = field(default_factory=dict)
    idle_cpu: dict[str, float] = field(default_factory=dict)

    def meter(self) -> Meter:
        return Meter(other_pids=dict(self.pids)).start()

    def runq(self) -> float | None:
        return runq_wait_s(self.pids["queue"])


async def _ticket_step(
    run: Run, kiosk: Kiosk, label: str, *, rate: float | None, clients: int
) -> dict[str, Any]:
    a = run.bench.args
    log(
        f"queue tickets {label}: "
        + (f"{rate:g} tickets/s offered" if rate else f"closed loop, {clients} kiosks")
    )
    await run.http.close()  # the server closed the connections that idled since the last step
    w0 = run.runq()
    meter = run.meter()
    t0 = time.perf_counter()
    if rate:
        samples = await open_loop(run.http, kiosk, rate / 1.5, a.queue_ticket_seconds)
    else:
        samples = await closed_loop(run.http, kiosk, clients, a.queue_ticket_seconds)
    meter.stop()
    out = ticket_summary(samples, t0, label)
    out["offered_tickets_per_s"] = rate
    out["cpu_pct"] = cpu_of(meter, run.idle_cpu)
    w1 = run.runq()
    if w0 is not None and w1 is not None:
        out["queue_runq_wait_pct"] = round(100 * (w1 - w0) / meter.wall_s, 1)
    log(
        f"queue tickets {label}: {out['tickets_per_s']} tickets/s, p50 {out['latency'].get('p50_ms')} ms, "
        f"p99 {out['latency'].get('p99_ms')} ms, errors {out['errors']}, CPU {out['cpu_pct']}"
    )
    return out


async def _call_step(
    run: Run, counters: Sequence[CounterPlan], arrivals: Kiosk, label: str, rate: float | None, seconds: float
) -> dict[str, Any]:
    a = run.bench.args
    log(
        f"queue calls {label}: "
        + (f"{rate:g} call-next/s offered" if rate else "saturation")
        + f", {seconds:g} s"
    )
    await run.http.close()
    await asyncio.sleep(1.0)  # the statistics of what ran before settle
    c0 = await _commits(run.url)
    w0 = run.runq()
    meter = run.meter()
    arriving = asyncio.create_task(open_loop(run.http, arrivals, a.queue_arrival_rate, seconds))
    log_, wall = await run_counters(run.http, counters, rate, seconds)
    arrived = await arriving
    meter.stop()
    await asyncio.sleep(1.5)
    c1 = await _commits(run.url)
    out = call_summary(log_, wall, label)
    if c0 is not None and c1 is not None and log_.called:
        # Visits included (about 40 a second, batched): what the cycle costs in transactions.
        out["db_commits_per_call"] = round((c1 - c0) / len(log_.called), 2)
    out["offered_calls_per_s"] = rate
    out["arrivals"] = ticket_summary(arrived, meter.started, "arrivals")
    out["cpu_pct"] = cpu_of(meter, run.idle_cpu)
    w1 = run.runq()
    if w0 is not None and w1 is not None:
        out["queue_runq_wait_pct"] = round(100 * (w1 - w0) / meter.wall_s, 1)
    out["_called"] = log_.called
    log(
        f"queue calls {label}: {out['calls_per_s']} calls/s ({out['empty_calls']} empty, {out['late_calls']} late), "
        f"call-next p50 {out['call_next'].get('p50_ms')} ms p99 {out['call_next'].get('p99_ms')} ms, "
        f"errors {out['errors']}, commits per call {out.get('db_commits_per_call')}, CPU {out['cpu_pct']}"
    )
    if out["slow_windows"]:
        shown = ", ".join(f"{w['at']} ({w['seconds']} s, {w['calls']} calls)" for w in out["slow_windows"])
        log(f"queue calls {label}: call-nexts of 250 ms or more in flight at (UTC) {shown}")
    return out


async def _prefill(run: Run, kiosk: Kiosk, tickets: int) -> dict[str, Any]:
    """Fill the calling site's queue through the kiosk (closed loop), not timed as a figure."""
    log(f"queue: filling the calling site's queue with about {tickets} tickets")
    await run.http.close()
    t0 = time.perf_counter()
    samples: list[Sample] = []
    issued = 0

    async def client() -> None:
        nonlocal issued
        while issued < tickets:
            sample = Sample(scheduled=time.perf_counter())
            samples.append(sample)
            await visit(run.http, kiosk, sample)
            issued += sample.tickets

    await asyncio.gather(*(client() for _ in range(16)))
    return ticket_summary(samples, t0, "prefill")


async def _analyze(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE tickets"))
            await conn.commit()
    finally:
        await engine.dispose()


async def _commits(url: str) -> int | None:
    """Transactions committed in the queue's database so far (PostgreSQL's statistics, which backends
    report within about a second)."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            value = (
                await conn.execute(
                    text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
                )
            ).scalar_one_or_none()
            await conn.rollback()
    finally:
        await engine.dispose()
    return None if value is None else int(value)


async def _outbox_drained(url: str, limit_s: float) -> float:
    """Seconds until the queue's outbox holds no unsent row (at most ``limit_s``)."""
    engine = create_engine(url, pool_size=1)
    t0 = time.perf_counter()
    try:
        async with engine.connect() as conn:
            while time.perf_counter() - t0 < limit_s:
                unsent = (
                    await conn.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
                ).scalar_one()
                await conn.rollback()
                if not unsent:
                    break
                await asyncio.sleep(0.5)
    finally:
        await engine.dispose()
    waited = time.perf_counter() - t0
    log(f"queue: the relay's backlog was sent {waited:.1f} s after the fill")
    return round(waited, 1)


async def _check_calls(url: str, site: str, called: Sequence[str]) -> dict[str, Any]:
    """The database's view of the calls: each called ticket once, as many as the counters were answered."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE call_count > 0), "
                        "count(*) FILTER (WHERE call_count > 1), "
                        "count(*) FILTER (WHERE state = 'waiting'), "
                        "count(*) FILTER (WHERE state IN ('called', 'serving')) "
                        "FROM tickets WHERE site = :site"
                    ),
                    {"site": site},
                )
            ).one()
            served = (
                await conn.execute(
                    text("SELECT coalesce(sum(tickets_served), 0) FROM counters WHERE site = :site"),
                    {"site": site},
                )
            ).scalar_one()
            backlog = (
                await conn.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
            ).scalar_one()
    finally:
        await engine.dispose()
    called_db, twice, waiting, open_ = (int(x) for x in row)
    return {
        "called_in_responses": len(called),
        "distinct_called_in_responses": len(set(called)),
        "called_in_database": called_db,
        "called_more_than_once_in_database": twice,
        "left_at_counters": open_,
        "waiting_left": waiting,
        "tickets_served_by_counters": int(served),
        "outbox_unsent": int(backlog),
        "ok": twice == 0 and len(called) == len(set(called)) == called_db,
    }


async def _profile(run: Run, label: str, work: Callable[[], Any]) -> dict[str, Any] | None:
    """A cProfile pass of the queue process (its wrapper starts and stops it on SIGUSR1/SIGUSR2)."""
    proc = run.queue.proc
    assert proc is not None
    pstats = run.queue.pstats
    pstats.unlink(missing_ok=True)
    await run.http.close()
    cpu0 = process_cpu_seconds(proc.pid)
    proc.send_signal(signal.SIGUSR1)
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    await work()
    proc.send_signal(signal.SIGUSR2)
    wall = time.perf_counter() - t0
    cpu1 = process_cpu_seconds(proc.pid)
    for _ in range(100):
        if pstats.exists():
            break
        await asyncio.sleep(0.1)
    else:
        return None
    report, summary = profile_report(
        str(pstats),
        title=f"queue server, {label}",
        wall_s=wall,
        cpu_s=(cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else math.nan,
        root=ROOT,
    )
    path = ARTIFACTS / f"bench_profile_queue_{label.split(maxsplit=1)[0]}.txt"
    path.write_text(report)
    return {"file": str(path.relative_to(ROOT)), **summary}


async def run_section(bench: Bench) -> None:
    a = bench.args
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    body, kiosk_sites, calling = bench_catalogue(bench.run_id, 4, a.queue_counters)
    catalogue_path = ARTIFACTS / "bench-queue-catalogue.json"
    catalogue_path.write_bytes(body)
    catalogue = load_catalogue(body)
    prefix_of = {st.code: st.ticket_prefix for st in catalogue.service_types}
    counters = [
        CounterPlan(
            code=c.code,
            service_types=tuple(c.service_types),
            auth={
                "Authorization": "Bearer "
                + issue_token(
                    secret,
                    subject=f"bench-officer-{c.code}",
                    roles=["officer"],
                    agency=c.agency,
                    site=calling,
                    ttl_seconds=7200,
                )
            },
        )
        for c in catalogue.counters
        if c.site == calling
    ]
    kiosks = [Kiosk(s, secret, even_prefixes(prefix_of), prefix_of) for s in kiosk_sites]
    calling_kiosk = Kiosk(calling, secret, like_counters(counters), prefix_of)
    name = f"bench_queue_{bench.run_id}"
    cfg = LifecycleConfig(
        bootstrap=bench.bootstrap,
        admin_url=bench.admin_url,
        run_id=bench.run_id,
        root=ROOT,
        artifacts=ARTIFACTS,
    )
    async with fresh_databases(bench.admin_url, [name]) as (url,):
        # Always under the profiling wrapper: it runs the service unprofiled until SIGUSR1.
        queue = Service(
            "queue",
            {
                "KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap,
                "MPP_JWT_HS256_SECRET": secret,
                "MPP_QUEUE_DATABASE_URL": url,
                "MPP_QUEUE_CATALOGUE_FILE": str(catalogue_path),
                "MPP_QUEUE_SITE": calling,
                "MPP_QUEUE_RELAY_ENABLED": "true",
                "MPP_QUEUE_APPOINTMENT_SWEEP_SECONDS": "0",
                # The bench may run after the calling site's closing time: no day close under it.
                "MPP_QUEUE_DAY_CLOSE_SECONDS": "0",
            },
            cfg,
            True,
        )
        queue.log_path = ARTIFACTS / "bench-queue.log"
        queue.pstats = ARTIFACTS / "bench_profile_queue.pstats"
        http = HttpPool("127.0.0.1", queue.port, a.queue_connections)
        try:
            queue.start()
            await queue.wait_ready()
            assert queue.proc is not None
            log(f"queue: pid {queue.proc.pid} on port {queue.port}, {len(counters)} counters at {calling}")
            run = Run(
                bench=bench, queue=queue, http=http, pids={**WATCHED_PIDS, "queue": queue.proc.pid}, url=url
            )
            await _measure(run, url, kiosks, calling_kiosk, counters, calling)
        finally:
            await http.close()
            await queue.stop()


async def _measure(
    run: Run, url: str, kiosks: list[Kiosk], calling_kiosk: Kiosk, counters: list[CounterPlan], calling: str
) -> None:
    bench = run.bench
    a, r = bench.args, bench.results
    steps = run.steps
    # Warm-up: connections, statement caches, the relay's first batches.
    await closed_loop(run.http, kiosks[3], 8, 2.0)
    await asyncio.sleep(2.0)
    idle = run.meter()
    await asyncio.sleep(2.0)
    run.idle_cpu = {k: round(v, 1) for k, v in idle.stop().other_cpu_pct.items()}
    steps["idle_cpu_pct"] = run.idle_cpu
    sat = await _ticket_step(run, kiosks[0], "saturation", rate=None, clients=a.queue_ticket_clients)
    steps["tickets_saturation"] = sat
    await asyncio.sleep(2.0)
    steady = await _ticket_step(run, kiosks[1], "steady", rate=a.queue_ticket_rate, clients=0)
    steps["tickets_steady"] = steady
    sustainable = None
    if sat["tickets_per_s"] < a.queue_ticket_rate:
        await asyncio.sleep(2.0)
        rate70 = round(0.7 * float(sat["tickets_per_s"]), 0)
        sustainable = await _ticket_step(run, kiosks[2], f"steady-{rate70:g}", rate=rate70, clients=0)
        steps["tickets_steady_70pct"] = sustainable

    # Call-next: fill the queue, open the counters, then call.
    # Enough for the steady step; the saturation step and the profile pass also live on the arrivals
    # (a call that finds nobody waiting is counted as empty).
    prefill_tickets = int(
        a.queue_call_rate
        * (1.1 * a.queue_call_seconds + a.queue_call_saturation_seconds + a.queue_profile_seconds)
    )
    steps["prefill"] = await _prefill(run, calling_kiosk, prefill_tickets)
    if a.queue_analyze:
        # What autovacuum does within a minute of the fill: without it the planner still believes the
        # site has no waiting tickets, and the calls measure that minute rather than a working day.
        await _analyze(url)
    steps["prefill"]["analyzed"] = a.queue_analyze
    # The ticket steps leave the relay a backlog of events to publish, and it shares the queue
    # process's CPU: the calls start once it is sent, so they measure calling, not that backlog.
    steps["prefill"]["outbox_drain_s"] = await _outbox_drained(url, a.phase_timeout)
    await run.http.close()
    opened = await asyncio.gather(
        *(run.http.request("POST", f"/v1/counters/{c.code}/open", b"", c.auth) for c in counters)
    )
    bad = [f"{c.code}: HTTP {s}" for c, (s, _) in zip(counters, opened, strict=True) if s != 200]
    if bad:
        r.fail(f"queue: counters did not open: {bad[:3]}")
        return
    await asyncio.sleep(2.0)
    calls = await _call_step(run, counters, calling_kiosk, "steady", a.queue_call_rate, a.queue_call_seconds)
    await asyncio.sleep(2.0)
    calls_sat = await _call_step(
        run, counters, calling_kiosk, "saturation", None, a.queue_call_saturation_seconds
    )
    called = [*calls.pop("_called"), *calls_sat.pop("_called")]
    steps["calls_steady"] = calls
    steps["calls_saturation"] = calls_sat
    await asyncio.sleep(3.0)  # the relay catches up before the outbox is counted
    check = await _check_calls(url, calling, called)
    steps["calls_check"] = check

    _figures(run, sat, steady, sustainable, calls, calls_sat, check)
    missed = (r.value("queue_tickets_per_s") or 0) < TARGETS["queue_tickets_per_s"][1] or (
        r.value("queue_call_next_p99_ms") or math.inf
    ) >= TARGETS["queue_call_next_p99_ms"][1]
    if a.profile or missed:
        await _profiles(run, kiosks, calling_kiosk, counters)
    r.details["queue"] = steps


async def _profiles(run: Run, kiosks: list[Kiosk], calling_kiosk: Kiosk, counters: list[CounterPlan]) -> None:
    a = run.bench.args
    seconds = a.queue_profile_seconds
    log(f"queue: cProfile passes of the queue process ({seconds:g} s each)")
    profiles: dict[str, Any] = {}
    tickets = await _profile(
        run,
        f"tickets closed loop {a.queue_ticket_clients} kiosks {seconds:g} s",
        lambda: closed_loop(run.http, kiosks[3], a.queue_ticket_clients, seconds),
    )
    # The profiler keeps what it gathered across passes: restart the process for the second one.
    await run.queue.stop()
    run.queue.start()
    await run.queue.wait_ready()
    assert run.queue.proc is not None
    run.pids["queue"] = run.queue.proc.pid
    await run.http.close()
    calls = await _profile(
        run,
        f"calls saturation {len(counters)} counters {seconds:g} s",
        lambda: asyncio.gather(
            run_counters(run.http, counters, None, seconds),
            open_loop(run.http, calling_kiosk, a.queue_arrival_rate, seconds),
        ),
    )
    for key, prof in (("tickets", tickets), ("calls", calls)):
        if prof is None:
            run.bench.results.fail(f"queue profile {key}: the server wrote no profile")
        else:
            profiles[key] = prof
    run.steps["profile"] = profiles


def _cpu_label(name: str) -> str:
    return "machine CPU busy (all cores)" if name == "machine_busy" else f"{name} CPU (100 = 1 core)"


def _figures(
    run: Run,
    sat: dict[str, Any],
    steady: dict[str, Any],
    sustainable: dict[str, Any] | None,
    calls: dict[str, Any],
    calls_sat: dict[str, Any],
    check: dict[str, Any],
) -> None:
    r = run.bench.results
    a = run.bench.args

    def add(name: str, value: Any, unit: str, label: str) -> None:
        r.add(SECTION, name, math.nan if value is None else float(value), unit, label)

    add(
        "queue_tickets_per_s",
        sat["tickets_per_s"],
        "tickets/s",
        f"kiosk visits, closed loop c={a.queue_ticket_clients}",
    )
    add("queue_ticket_visit_p50_ms", sat["latency"].get("p50_ms"), "ms", "POST /v1/visits at saturation, p50")
    add("queue_ticket_visit_p99_ms", sat["latency"].get("p99_ms"), "ms", "POST /v1/visits at saturation, p99")
    add(
        "queue_tickets_steady_per_s",
        steady["tickets_per_s"],
        "tickets/s",
        f"{a.queue_ticket_rate:g} tickets/s offered (open loop)",
    )
    add(
        "queue_tickets_steady_p50_ms",
        steady["latency_from_schedule"].get("p50_ms"),
        "ms",
        "from schedule, p50",
    )
    add(
        "queue_tickets_steady_p99_ms",
        steady["latency_from_schedule"].get("p99_ms"),
        "ms",
        "from schedule, p99",
    )
    if sustainable is not None:
        rate = sustainable["offered_tickets_per_s"]
        add(
            f"queue_tickets_at_{rate:g}_per_s",
            sustainable["tickets_per_s"],
            "tickets/s",
            "70% of saturation offered",
        )
        add(
            f"queue_tickets_at_{rate:g}_p50_ms",
            sustainable["latency_from_schedule"].get("p50_ms"),
            "ms",
            "from schedule, p50",
        )
        add(
            f"queue_tickets_at_{rate:g}_p99_ms",
            sustainable["latency_from_schedule"].get("p99_ms"),
            "ms",
            "from schedule, p99",
        )
    for name, pct in sat["cpu_pct"].items():
        if pct is not None and name not in ("queue_idle",):
            add(f"queue_tickets_{name}_cpu_pct", pct, "%", f"{_cpu_label(name)} at ticket saturation")
    if sat["tickets_per_s"] and sat["cpu_pct"].get("queue"):
        add(
            "queue_tickets_cpu_ms_per_ticket",
            10.0 * float(sat["cpu_pct"]["queue"]) / float(sat["tickets_per_s"]),
            "ms",
            "queue process CPU per ticket at saturation",
        )
    raw = r.value("raw_produce_msgs_per_s")
    if raw:
        add(
            "queue_tickets_vs_raw_produce_pct",
            100.0 * sat["tickets_per_s"] / raw,
            "%",
            "tickets/s as % of raw produce msgs/s",
        )
    add(
        "queue_call_next_p50_ms",
        calls["call_next"].get("p50_ms"),
        "ms",
        f"call-next at {a.queue_call_rate:g}/s offered, p50",
    )
    add(
        "queue_call_next_p99_ms",
        calls["call_next"].get("p99_ms"),
        "ms",
        f"call-next at {a.queue_call_rate:g}/s offered, p99",
    )
    add("queue_calls_per_s", calls["calls_per_s"], "calls/s", f"achieved, {a.queue_call_rate:g}/s offered")
    add("queue_calls_late_count", calls["late_calls"], "count", "calls after their slot (cycle overran)")
    add(
        "queue_calls_lag_p99_ms",
        calls["call_next_lag_behind_schedule"].get("p99_ms"),
        "ms",
        "lag behind schedule, p99",
    )
    add("queue_start_p99_ms", calls["start"].get("p99_ms"), "ms", "POST start, p99")
    add("queue_complete_p99_ms", calls["complete"].get("p99_ms"), "ms", "POST complete, p99")
    add(
        "queue_calls_saturation_per_s",
        calls_sat["calls_per_s"],
        "calls/s",
        f"{a.queue_counters} counters back to back",
    )
    add(
        "queue_call_next_saturation_p50_ms",
        calls_sat["call_next"].get("p50_ms"),
        "ms",
        "call-next at saturation, p50",
    )
    add(
        "queue_call_next_saturation_p99_ms",
        calls_sat["call_next"].get("p99_ms"),
        "ms",
        "call-next at saturation, p99",
    )
    add(
        "queue_calls_empty_count",
        calls["empty_calls"] + calls_sat["empty_calls"],
        "count",
        "call-next that found nobody waiting",
    )
    for name, pct in calls["cpu_pct"].items():
        if pct is not None and name not in ("queue_idle",):
            add(
                f"queue_calls_{name}_cpu_pct",
                pct,
                "%",
                f"{_cpu_label(name)} at {a.queue_call_rate:g} calls/s",
            )
    for name, pct in calls_sat["cpu_pct"].items():
        if pct is not None and name not in ("queue_idle",):
            add(f"queue_calls_saturation_{name}_cpu_pct", pct, "%", f"{_cpu_label(name)} at call saturation")
    for name in ("queue", "postgres"):
        pct = calls_sat["cpu_pct"].get(name)
        if pct and calls_sat["calls_per_s"]:
            # What one call-next -> start -> complete costs (the kiosks' arrivals included): the capacity
            # figure that a busy machine disturbs less than the latencies.
            add(
                f"queue_calls_{name}_cpu_ms_per_cycle",
                10.0 * float(pct) / float(calls_sat["calls_per_s"]),
                "ms",
                f"{name} process CPU per cycle at call saturation",
            )
    add(
        "queue_calls_called_twice_count",
        check["called_more_than_once_in_database"]
        + calls["duplicate_calls_in_responses"]
        + calls_sat["duplicate_calls_in_responses"],
        "count",
        "tickets handed to two calls (must be 0)",
    )
    add("queue_outbox_unsent_count", check["outbox_unsent"], "rows", "unsent outbox rows after the run")
    errors = (
        sat["errors"]
        + steady["errors"]
        + calls["errors"]
        + calls_sat["errors"]
        + (sustainable or {}).get("errors", 0)
    )
    add("queue_errors_count", errors, "count", "failed requests")
    if not check["ok"]:
        r.fail(f"queue: call-next correctness check failed: {check}")
    if errors:
        samples = [
            *sat["error_samples"],
            *steady["error_samples"],
            *calls["error_samples"],
            *calls_sat["error_samples"],
        ]
        r.fail(f"queue: {errors} failed requests, e.g. {samples[:2]}")
    r.notes.append(
        "queue: the service runs as one process on a fresh database with its relay and board consumer on; the "
        "kiosks and counters (this process) share the machine's CPUs with it, PostgreSQL and Kafka"
    )
    if raw is None:
        r.notes.append("queue: no raw produce baseline in this run (add raw to --only for the ratio)")
