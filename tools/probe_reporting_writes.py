"""What the reporting projector's writes cost PostgreSQL, batch by batch, for the bench's visit mix.

    .venv/bin/python -m tools.probe_reporting_writes [--events 200000] [--batch 50000]

Folds ``--events`` events of :func:`tools.bench_reporting.visit_events` (20 MPPs over a year, in time
order) into batches of ``--batch`` events, then writes each batch with ``repository.add_facts`` in a
transaction of its own, as the projector does, into a fresh database on the PostgreSQL of
``MPP_BENCH_POSTGRES_URL`` (or ``MPP_TEST_POSTGRES_URL``), dropped afterwards. Prints, per batch and in
total, each read-model family's rows and the wall time of its statement and, when the server runs on this
machine, the CPU time its backend spent (less sensitive than wall time on a busy machine). Without Kafka
and without the fold's own time: only what the database does with a batch. Rows are the fold's keys (per
measure), the same from one schema to the next: since migration 0009 a pair of measures folded together
is written as one row of ``metric_facts``, so the facts family writes fewer rows than it counts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

from mpp.contracts.envelope import Envelope
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.kit.db import create_engine, session_factory
from mpp.kit.migrations import upgrade
from mpp.reporting.app import MIGRATIONS, zones_of
from mpp.reporting.domain.facts import Facts, fold_facts
from mpp.reporting.domain.sla import catalogue_sla
from mpp.reporting.persistence import repository
from tools.bench_lifecycle import fresh_databases
from tools.bench_reporting import visit_events
from tools.bench_support import SqlTimer

# The statement kinds (tools.bench_support) of the three families and their daily rows.
FAMILIES = {
    "facts": "with metric_facts",
    "hourly": "with metric_hourly",
    "histogram": "with duration_histogram",
}


def fold_batches(events: int, batch: int) -> list[Facts]:
    """The bench's visit mix (tools.bench_reporting: same sites, services and seed), folded per batch."""
    catalogue = load_demo_catalogue()
    services = [(s.agency, s.code) for s in catalogue.service_types]
    sites = [catalogue.sites[0].code, *(f"mpp-bench-{i:03d}" for i in range(1, 20))]
    rng = random.Random(17)
    envelopes: list[Envelope] = []
    while len(envelopes) < events:
        day = date(2025, 1, 1) + timedelta(days=len(envelopes) * 365 // events)
        envelopes.extend(visit_events(rng, sites, services, day))
    del envelopes[events:]
    site_tz = zones_of(catalogue)
    sla = catalogue_sla(catalogue, site_tz)
    return [fold_facts(envelopes[i : i + batch], site_tz, sla) for i in range(0, events, batch)]


def backend_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a local process, or none when it is not on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def probe(admin_url: str, batches: list[Facts]) -> None:
    async with fresh_databases(admin_url, [f"probe_writes_{secrets.token_hex(4)}"]) as (url,):
        engine = create_engine(url, pool_size=1)
        sql = SqlTimer(engine)
        sessions = session_factory(engine)
        wall: dict[str, float] = defaultdict(float)
        rows: dict[str, int] = defaultdict(int)
        cpu_total = 0.0
        cpu_known = True
        try:
            await upgrade(engine, MIGRATIONS)
            for i, facts in enumerate(batches):
                sql.reset()
                async with sessions() as session, session.begin():
                    pid = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                    before = backend_cpu_s(pid)
                    started = time.perf_counter()
                    await repository.add_facts(session, facts)
                    elapsed = time.perf_counter() - started
                    after = backend_cpu_s(pid)
                counts = {
                    "facts": len(facts.counts),
                    "hourly": len(facts.hourly),
                    "histogram": len(facts.histogram),
                }
                parts = []
                for family, kind in FAMILIES.items():
                    wall[family] += sql.seconds.get(kind, 0.0)
                    rows[family] += counts[family]
                    parts.append(f"{family} {counts[family]} rows {sql.seconds.get(kind, 0.0) * 1000:.0f} ms")
                cpu = None if before is None or after is None else after - before
                cpu_known = cpu_known and cpu is not None
                cpu_total += cpu or 0.0
                cpu_text = "" if cpu is None else f", backend CPU {cpu * 1000:.0f} ms"
                print(
                    f"batch {i}: {', '.join(parts)}; add_facts {elapsed * 1000:.0f} ms{cpu_text}", flush=True
                )
        finally:
            sql.close()
            await engine.dispose()
    daily = sum(rows.values())
    print(
        "total: "
        + ", ".join(
            f"{f} {wall[f]:.2f} s ({wall[f] / max(rows[f], 1) * 1e6:.1f} us per daily row)" for f in FAMILIES
        )
    )
    if cpu_known:
        print(
            f"backend CPU {cpu_total:.2f} s: {cpu_total / len(batches) * 1000:.0f} ms per batch, "
            f"{cpu_total / max(daily, 1) * 1e6:.1f} us per daily row (roll-ups included)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=50_000, help="events per batch (a rebuild's default)")
    a = p.parse_args()
    admin_url = os.environ.get("MPP_BENCH_POSTGRES_URL") or os.environ.get("MPP_TEST_POSTGRES_URL")
    if not admin_url:
        sys.exit("set MPP_BENCH_POSTGRES_URL or MPP_TEST_POSTGRES_URL to a PostgreSQL database URL")
    batches = fold_batches(a.events, a.batch)
    asyncio.run(probe(admin_url, batches))


if __name__ == "__main__":
    main()
