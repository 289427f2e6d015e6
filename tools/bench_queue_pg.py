"""PostgreSQL's work per counter cycle (call-next -> start -> complete) with many counters at once.

``python -m tools.bench_queue_pg postgresql://USER:PASSWORD@HOST:PORT/ANY_DATABASE [--counters 50]``

Creates a fresh database next to the one given (dropped at the end), migrates it, fills one site with
``--waiting`` waiting tickets and opens ``--counters`` counters (copies of the demo counters, so several
share each queue). Then every counter loops call-next -> start -> complete as fast as it can, each step
one transaction on its own asyncpg connection through the service's repositories (so exactly the
statements and parameters the service sends on PostgreSQL, and the policy's decision), while a kiosk adds
``--arrivals`` visits a second through the service's handlers. ``--via-handlers`` runs the counters
through the handlers and unit of work too (SQLAlchemy sessions: the client, not the server, then limits
the rate). No HTTP, relay or consumer runs: what is measured is the database's share.

Reported, for the measuring window after a warm-up:

- cycles per second and the round trip of each transaction and each hand-written statement (client
  side: includes the wait for a busy server, which is the point of running them concurrently);
- PostgreSQL CPU per cycle: the CPU seconds (/proc/<pid>/stat) of the backends serving this database
  (the counters' and the kiosk's), divided by the cycles done; autovacuum workers on this database are
  sampled and reported apart;
- ``EXPLAIN (ANALYZE, BUFFERS)`` samples of call-next's candidate statement taken while the counters
  run (a prepared statement executed as the driver does, so the plan is the one the service gets, and
  rolled back): execution time, shared buffers hit, and for each plan node the rows it returned, removed
  by filter and heap fetches;
- the tickets table's updates (HOT share), dead tuples, vacuums and index sizes at the end.

The figures are per cycle, so a busy shared machine changes them less than it changes throughput; still,
compare two versions back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy.engine import make_url

from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.contracts.masterdata import load_catalogue
from mpp.kit import db
from mpp.queue import handlers
from mpp.queue.app import QueueService, create_app
from mpp.queue.config import QueueSettings
from mpp.queue.domain.policy import CounterState, OrderingPolicy, choose_next
from mpp.queue.domain.surveys import SurveyInvitation
from mpp.queue.persistence import pg
from mpp.queue.persistence.repository import CounterRepository, TicketRepository, VisitRepository
from tools.bench_queue import bench_catalogue

CLK_TCK = os.sysconf("SC_CLK_TCK")
PRIORITY_GROUPS = [g for g in PriorityGroup if g is not PriorityGroup.NONE]
STATEMENT_NAMES = {text: name for name, text in vars(pg).items() if name.isupper() and isinstance(text, str)}


def statement_name(sql: str) -> str:
    """The name of a statement of :mod:`mpp.queue.persistence.pg` (its constant's, or CALL_CANDIDATES)."""
    name = STATEMENT_NAMES.get(sql)
    if name is None:
        name = "CALL_CANDIDATES" if sql.lstrip().startswith("WITH busy") else "other"
    return name


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Timings:
    """Round trips in seconds, by name."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[float]] = {}
        self.recording = False

    def add(self, name: str, seconds: float) -> None:
        if self.recording:
            self.by_name.setdefault(name, []).append(seconds)

    def summary(self, cycles: int) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in sorted(self.by_name.items()):
            ordered = sorted(values)
            out[name] = {
                "per_cycle": round(len(values) / max(cycles, 1), 2),
                "mean_ms": round(statistics.fmean(values) * 1000, 3),
                "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
            }
        return out


def time_driver_statements(timings: Timings) -> None:
    """Time every hand-written statement the repositories send straight to asyncpg."""

    def timed(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def run(self: db.DriverSql, sql: str, *args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await method(self, sql, *args)
            finally:
                timings.add(statement_name(sql), time.perf_counter() - t0)

        return run

    db.DriverSql.fetch = timed(db.DriverSql.fetch)  # type: ignore[method-assign,assignment]
    db.DriverSql.fetchrow = timed(db.DriverSql.fetchrow)  # type: ignore[method-assign,assignment]
    db.DriverSql.execute = timed(db.DriverSql.execute)  # type: ignore[method-assign,assignment]


class RawSql:
    """The repositories' driver interface (:class:`mpp.kit.db.DriverSql`) on a bare asyncpg connection:
    the hand-written statements without the SQLAlchemy session around them."""

    def __init__(self, conn: Any, timings: Timings) -> None:
        self.conn = conn
        self.timings = timings

    async def _timed(self, method: Callable[..., Awaitable[Any]], sql: str, args: tuple[Any, ...]) -> Any:
        t0 = time.perf_counter()
        try:
            return await method(sql, *args)
        finally:
            self.timings.add(statement_name(sql), time.perf_counter() - t0)

    async def fetch(self, sql: str, *args: Any) -> Any:
        return await self._timed(self.conn.fetch, sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._timed(self.conn.fetchrow, sql, args)

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self._timed(self.conn.execute, sql, args)


async def raw_connection(url: str) -> Any:
    """An asyncpg connection whose JSON columns take JSON text and come back decoded, as the service's."""
    conn = await asyncpg.connect(url)
    await conn.set_type_codec("json", encoder=str, decoder=orjson.loads, schema="pg_catalog")
    return conn


def outbox_rows(count: int) -> list[list[Any]]:
    """``count`` outbox rows of about the size of the queue's events (payload and CloudEvents headers)."""
    rows: list[list[Any]] = [[], [], [], [], []]
    for _ in range(count):
        rows[0].append(str(uuid.uuid4()))
        rows[1].append("mpp.queue.ticket.v1")
        rows[2].append(uuid.uuid4().hex.encode())
        rows[3].append(secrets.token_hex(300).encode())
        rows[4].append(secrets.token_hex(160).encode())
    return rows


def plan_nodes(node: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    """The nodes of an EXPLAIN (FORMAT JSON) plan that read a table or an index, with their counters."""
    found = []
    relation = node.get("Index Name") or node.get("Relation Name")
    if relation or "Rows Removed by Filter" in node:
        found.append(
            {
                "node": node["Node Type"],
                "on": relation,
                "cte": node.get("Subplan Name") or node.get("CTE Name"),
                "rows": node.get("Actual Rows"),
                "loops": node.get("Actual Loops"),
                "removed_by_filter": node.get("Rows Removed by Filter", 0),
                "heap_fetches": node.get("Heap Fetches"),
                "shared_hit": node.get("Shared Hit Blocks"),
            }
        )
    for child in node.get("Plans", []):
        found.extend(plan_nodes(child, depth + 1))
    return found


async def explain_candidates(conn: Any, args: tuple[Any, ...], runs: int = 6) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of call-next's candidate statement, as a prepared statement after
    ``runs`` executions (the plan a driver's cached statement gets), in a transaction rolled back."""
    name = f"cc_{secrets.token_hex(4)}"
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute(
            f"PREPARE {name} (text, text, text[], timestamptz, int, bool) AS {pg.CALL_CANDIDATES}"
        )
        values = (
            f"'{args[0]}', '{args[1]}', ARRAY[{', '.join(repr(s) for s in args[2])}]::text[], "
            f"'{args[3].isoformat()}'::timestamptz, {args[4]}, {str(args[5]).lower()}"
        )
        for _ in range(runs - 1):
            await conn.execute(f"EXECUTE {name} ({values})")
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name} ({values})")
    finally:
        await tr.rollback()
        await conn.execute(f"DEALLOCATE {name}")
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    top = plan["Plan"]
    return {
        "plan": plan,
        "execution_ms": plan["Execution Time"],
        "planning_ms": plan.get("Planning Time"),
        "shared_hit": top.get("Shared Hit Blocks"),
        "shared_read": top.get("Shared Read Blocks"),
        "nodes": plan_nodes(top),
    }


async def table_stats(conn: Any) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, autovacuum_count, vacuum_count,
                  autoanalyze_count, pg_relation_size('tickets') AS heap_bytes
           FROM pg_stat_user_tables WHERE relname = 'tickets'"""
    )
    indexes = await conn.fetch(
        """SELECT indexrelname AS name, pg_relation_size(indexrelid) AS bytes, idx_scan, idx_tup_read
           FROM pg_stat_user_indexes WHERE relname = 'tickets' ORDER BY indexrelname"""
    )
    waiting = await conn.fetchval("SELECT count(*) FROM tickets WHERE state = 'waiting'")
    return {
        **dict(row),
        "hot_share": round(row["n_tup_hot_upd"] / row["n_tup_upd"], 3) if row["n_tup_upd"] else None,
        "waiting": waiting,
        "indexes": {r["name"]: {"kb": r["bytes"] // 1024, "scans": r["idx_scan"]} for r in indexes},
    }


async def sample_activity(url: str, stop: asyncio.Event, every: float = 0.02) -> dict[str, int]:
    """How often each statement was seen running (or waiting) in a backend of this database: the share of
    the server's busy time each takes, as sampling pg_stat_activity shows it."""
    conn = await asyncpg.connect(url)
    seen: dict[str, int] = {}
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                """SELECT query, wait_event_type FROM pg_stat_activity
                   WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"""
            )
            for r in rows:
                key = statement_name(r["query"])
                if key == "other":
                    key = " ".join(r["query"].split())[:40]
                if r["wait_event_type"]:
                    key += f" (waiting: {r['wait_event_type']})"
                seen[key] = seen.get(key, 0) + 1
            await asyncio.sleep(every)
    finally:
        await conn.close()
    return dict(sorted(seen.items(), key=lambda kv: -kv[1]))


async def backends(conn: Any) -> dict[int, str]:
    rows = await conn.fetch(
        "SELECT pid, backend_type FROM pg_stat_activity WHERE datname = current_database()"
    )
    return {r["pid"]: r["backend_type"] for r in rows}


HISTORY = """
INSERT INTO tickets (id, visit_id, site, agency, service_type, prefix, day, seq, number, priority_group,
    channel, state, issued_at, queued_at, rank, call_count, first_called_at, called_at, counter, officer,
    started_at, finished_at, decision)
SELECT md5(i::text || 't'), md5(i::text || 'v'), $1, split_part(st, '.', 1), st, 'H',
    to_char(date '2026-01-01' + i / 4000, 'YYYY-MM-DD'), i % 4000, 'H-' || lpad((i % 4000)::text, 4, '0'),
    'none', 'walk_in', 'completed', at, at, (extract(epoch FROM at) * 1000)::bigint, 1, at, at,
    'loket-b01', 'officer', at, at + interval '5 minutes', json_build_object('rule', 'highest_score', 'pad', $4)
FROM generate_series(1, $3) AS i,
    LATERAL (SELECT ($2::text[])[1 + i % array_length($2::text[], 1)] AS st,
                    timestamptz '2026-01-01 01:00+00' + (i / 4000) * interval '1 day' + (i % 4000) * interval '5 s' AS at) AS x
"""
"""``$3`` served tickets of earlier days at site ``$1`` (service types ``$2``, explanations padded with ``$4``)."""


class Probe:
    def __init__(self, args: argparse.Namespace, url: str, catalogue_file: Path) -> None:
        self.args = args
        self.url = url
        body, _, self.site = bench_catalogue(secrets.token_hex(3), 0, args.counters)
        catalogue_file.write_bytes(body)
        catalogue = load_catalogue(body)
        self.counters = [c for c in catalogue.counters if c.site == self.site]
        self.settings = QueueSettings(
            database_url=url,
            database_pool_size=args.counters + 4,
            relay_enabled=False,
            consumer_enabled=False,
            log_level="WARNING",
            log_json=False,
            appointment_sweep_seconds=0,
            day_close_seconds=0,
            catalogue_file=catalogue_file,
            site=self.site,
        )
        self.rng = random.Random(7)
        self.timings = Timings()
        self.cycles = 0
        self.empty_calls = 0
        self.called: list[str] = []
        self.stop = asyncio.Event()

    def visit(self) -> handlers.StartVisit:
        counter = self.rng.choice(self.counters)
        wanted = 1 + (self.rng.random() < 0.5)
        types = tuple(self.rng.sample(counter.service_types, min(wanted, len(counter.service_types))))
        group = PriorityGroup.NONE
        if self.rng.random() < self.args.priority_share:
            group = self.rng.choice(PRIORITY_GROUPS)
        return handlers.StartVisit(self.site, Channel.WALK_IN, types, group, "bench")

    async def run(self, svc: QueueService, cmd: Any, label: str | None = None) -> Any:
        t0 = time.perf_counter()
        async with svc.uow() as uow:
            result = await handlers.HANDLERS[type(cmd)](cmd, uow, svc.ports)
            await uow.commit()
        if label is not None:
            self.timings.add(f"tx {label}", time.perf_counter() - t0)
        return result

    async def fill(self, svc: QueueService) -> None:
        if self.args.history:
            # Earlier days' served tickets, as a table in service holds them: autovacuum's default
            # thresholds are a share of the table, and indexes over every ticket grow with them.
            types = sorted({t for c in self.counters for t in c.service_types})
            async with svc.runtime.engine.begin() as conn:
                await conn.exec_driver_sql(HISTORY, (self.site, types, self.args.history, "x" * 900))
        issued = 0
        while issued < self.args.waiting:
            cmds = [self.visit() for _ in range(100)]
            async with svc.uow() as uow:
                done = await handlers.start_visits(cmds, uow, svc.ports)
                await uow.commit()
            issued += sum(len(ts) for _, ts in done)
        if self.args.analyze:
            # The statistics a day's queue has in service (autovacuum analyses the table within a
            # minute); a plan made on none is not the one the service runs with.
            async with svc.runtime.engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE tickets")
        if self.args.every_nth:
            put = handlers.PutPolicy(
                site=self.site,
                agency=None,
                document={"priority_every_nth": self.args.every_nth},
                actor="bench",
                correlation_id="bench",
            )
            await self.run(svc, put)
        for c in self.counters:
            await self.run(
                svc, handlers.OpenCounter(self.site, c.code, f"officer-{c.code}", (), True, "bench")
            )

    async def counter(self, svc: QueueService, code: str) -> None:
        officer = f"officer-{code}"
        while not self.stop.is_set():
            ticket = await self.run(svc, handlers.CallNext(self.site, code, officer, "bench"), "call_next")
            if ticket is None:
                self.empty_calls += 1
                await asyncio.sleep(0.05)
                continue
            for action in ("start", "complete"):
                await self.run(svc, handlers.ActOnTicket(ticket.id, action, officer, "bench"), action)
            if self.timings.recording:
                self.cycles += 1
                self.called.append(ticket.id)

    async def raw_counter(self, url: str, code: str) -> None:
        """A counter's cycle as :func:`handlers.call_next` and :func:`handlers.act_on_ticket` run it, on
        one asyncpg connection: the same repository calls (so the same statements and parameters), the
        policy's decision, an outbox row per event; no SQLAlchemy session and no event building."""
        conn = await raw_connection(url)
        sql: Any = RawSql(conn, self.timings)
        counters, tickets, visits = (
            CounterRepository(None, sql),  # type: ignore[arg-type]
            TicketRepository(None, sql),  # type: ignore[arg-type]
            VisitRepository(None, sql),  # type: ignore[arg-type]
        )
        officer = f"officer-{code}"
        window = self.settings.survey_window_hours

        async def tx(label: str, work: Callable[[], Awaitable[Any]]) -> Any:
            t0 = time.perf_counter()
            async with conn.transaction():
                result = await work()
            self.timings.add(f"tx {label}", time.perf_counter() - t0)
            return result

        async def call() -> Any:
            locked = await counters.lock_with_policy(self.site, code)
            assert locked is not None
            counter, document = locked
            policy = OrderingPolicy.load(document) if document is not None else OrderingPolicy()
            state = CounterState(counter.calls_since_priority)
            nth = policy.priority_every_nth
            now = datetime.now(UTC)
            found = await tickets.call_candidates(
                self.site,
                code,
                counter.service_types,
                callable_at=now,
                head_limit=handlers.PEEK,
                priority=nth is not None and state.calls_since_priority >= nth - 1,
            )
            if found.busy is not None:
                raise RuntimeError(f"{code} is busy with {found.busy.id}")
            candidates = {t.id: t for t in (found.first, found.priority) if t is not None}
            pool = {t.id: t.candidate() for t in found.head}
            pool.update({t.id: t.candidate() for t in candidates.values()})
            decision = choose_next(list(pool.values()), policy, now, state, available=set(candidates))
            if decision is None:
                return None
            ticket = candidates[decision.ticket.ticket_id]
            explanation = {**decision.explanation, "counter": code, "lock": "for_update_skip_locked"}
            ticket.call(counter=code, officer=officer, at=now, decision=explanation)
            calls = decision.next_counter_state(state).calls_since_priority
            changed = calls != counter.calls_since_priority
            counter.calls_since_priority = calls
            await tickets.save_called(ticket, counter if changed else None)
            await sql.execute(pg.INSERT_OUTBOX, *outbox_rows(1), now)
            return ticket

        async def start(ticket_id: str) -> None:
            ticket = await tickets.get(ticket_id, lock=True)
            assert ticket is not None
            now = datetime.now(UTC)
            ticket.start(officer=officer, at=now)
            await tickets.save(ticket)
            await sql.execute(pg.INSERT_OUTBOX, *outbox_rows(1), now)

        async def complete(ticket_id: str) -> None:
            ticket = await tickets.get(ticket_id, lock=True)
            assert ticket is not None
            now = datetime.now(UTC)
            ticket.complete(officer=officer, at=now)
            invitation = SurveyInvitation.after_completion(
                ticket_id=ticket.id,
                site=ticket.site,
                agency=ticket.agency,
                service_type=ticket.service_type,
                at=now,
                window=timedelta(hours=window),
            )
            row = {
                "token": invitation.token,
                "agency": invitation.agency,
                "service_type": invitation.service_type,
                "completed_at": invitation.completed_at,
                "closes_at": invitation.closes_at,
            }
            await tickets.save_completed(ticket, row)
            events = 2
            visit = await visits.get(ticket.visit_id, lock=True)
            if visit is not None and visit.end_if_done(await tickets.of_visit(visit.id), now):
                await visits.save(visit)
                events += 1
            await sql.execute(pg.INSERT_OUTBOX, *outbox_rows(events), now)

        try:
            while not self.stop.is_set():
                ticket = await tx("call_next", call)
                if ticket is None:
                    self.empty_calls += 1
                    await asyncio.sleep(0.05)
                    continue
                await tx("start", partial(start, ticket.id))
                await tx("complete", partial(complete, ticket.id))
                if self.timings.recording:
                    self.cycles += 1
                    self.called.append(ticket.id)
        finally:
            await conn.close()

    async def kiosk(self, svc: QueueService) -> None:
        period = 1.0 / self.args.arrivals
        next_at = time.perf_counter()
        while not self.stop.is_set():
            await self.run(svc, self.visit(), "visit")
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def measure(self) -> dict[str, Any]:
        a = self.args
        app = create_app(self.settings)
        svc: QueueService = app.state.queue
        time_driver_statements(self.timings)
        async with app.router.lifespan_context(app):
            await self.fill(svc)
            pg_url = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
            side = await asyncpg.connect(pg_url)
            try:
                before_run = await table_stats(side)
                if a.via_handlers:
                    work = [self.counter(svc, c.code) for c in self.counters]
                else:
                    work = [self.raw_counter(pg_url, c.code) for c in self.counters]
                tasks = [asyncio.create_task(w) for w in work]
                if a.arrivals > 0:
                    tasks.append(asyncio.create_task(self.kiosk(svc)))
                await asyncio.sleep(a.warmup)
                pids = await backends(side)
                own = await side.fetchval("SELECT pg_backend_pid()")
                served = [p for p, kind in pids.items() if kind == "client backend" and p != own]
                cpu0 = {p: cpu_seconds(p) for p in served}
                vacuum_cpu: dict[int, float] = {}
                self.timings.recording = True
                sampling = asyncio.Event()
                sampler = asyncio.create_task(sample_activity(pg_url, sampling))
                t0 = time.perf_counter()
                explains: list[dict[str, Any]] = []
                deadline = t0 + a.seconds
                every = a.seconds / (a.explains + 1)
                while time.perf_counter() < deadline:
                    await asyncio.sleep(min(0.5, max(0.0, deadline - time.perf_counter())))
                    for pid, kind in (await backends(side)).items():
                        if kind == "autovacuum worker":
                            cpu = cpu_seconds(pid)
                            if cpu is not None:
                                vacuum_cpu[pid] = max(vacuum_cpu.get(pid, 0.0), cpu)
                    if len(explains) < a.explains and time.perf_counter() - t0 >= every * (len(explains) + 1):
                        c = self.rng.choice(self.counters)
                        params = (
                            self.site,
                            c.code,
                            list(c.service_types),
                            datetime.now(UTC),
                            handlers.PEEK,
                            bool(a.every_nth),
                        )
                        explains.append(await explain_candidates(side, params))
                cycles = self.cycles
                wall = time.perf_counter() - t0
                cpu1 = {p: cpu_seconds(p) for p in served}
                self.timings.recording = False
                sampling.set()
                activity = await sampler
                self.stop.set()
                await asyncio.gather(*tasks)
                after_run = await table_stats(side)
                duplicates = len(self.called) - len(set(self.called))
            finally:
                await side.close()
        used = sum(
            (cpu1[p] or 0.0) - (cpu0[p] or 0.0) for p in served if cpu0[p] is not None and cpu1[p] is not None
        )
        return {
            "counters": a.counters,
            "backends_measured": len(served),
            "cycles": cycles,
            "cycles_per_s": round(cycles / wall, 1),
            "empty_calls": self.empty_calls,
            "duplicate_calls": duplicates,
            "pg_cpu_ms_per_cycle": round(used / max(cycles, 1) * 1000, 3),
            "pg_cpu_cores": round(used / wall, 2),
            "autovacuum_cpu_s_seen": round(sum(vacuum_cpu.values()), 2),
            "active_samples": activity,
            "round_trips": self.timings.summary(cycles),
            "call_candidates_explain": summarize_explains(explains),
            "tickets_before": before_run,
            "tickets_after": after_run,
        }


def summarize_explains(explains: list[dict[str, Any]]) -> dict[str, Any]:
    if not explains:
        return {}
    return {
        "samples": len(explains),
        "execution_ms": [round(e["execution_ms"], 3) for e in explains],
        "shared_hit": [e["shared_hit"] for e in explains],
        "median_execution_ms": round(statistics.median(e["execution_ms"] for e in explains), 3),
        "median_shared_hit": statistics.median(e["shared_hit"] or 0 for e in explains),
        "last_nodes": explains[-1]["nodes"],
        "slowest_plan": max(explains, key=lambda e: float(e["execution_ms"]))["plan"],
        "nodes_removed_by_filter": [sum(n["removed_by_filter"] or 0 for n in e["nodes"]) for e in explains],
        "nodes_heap_fetches": [sum(n["heap_fetches"] or 0 for n in e["nodes"]) for e in explains],
    }


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="PostgreSQL URL of any database the user may create databases from")
    p.add_argument("--counters", type=int, default=50)
    p.add_argument("--waiting", type=int, default=3000, help="tickets waiting before the counters start")
    p.add_argument("--arrivals", type=float, default=40.0, help="kiosk visits a second while calling")
    p.add_argument(
        "--history", type=int, default=0, help="served tickets of earlier days already in the table"
    )
    p.add_argument("--priority-share", type=float, default=0.1, help="share of priority-group visits")
    p.add_argument("--every-nth", type=int, default=0, help="the site's priority_every_nth (0: none)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of calling before measuring")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds measured")
    p.add_argument("--explains", type=int, default=5, help="EXPLAIN samples during the measured window")
    p.add_argument(
        "--via-handlers",
        action="store_true",
        help="run the cycles through the service's handlers and unit of work (SQLAlchemy sessions) "
        "instead of the repositories on bare asyncpg connections",
    )
    p.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="leave the filled tickets table without statistics (as before autovacuum's first analyse)",
    )
    p.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = p.parse_args(argv)
    base = make_url(args.url.replace("postgresql://", "postgresql+asyncpg://", 1))
    name = f"bench_queue_pg_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = base.set(database=name).render_as_string(hide_password=False)
            report = await Probe(args, url, Path(tmp) / "catalogue.json").measure()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
