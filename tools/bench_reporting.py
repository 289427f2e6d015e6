"""``make bench`` sections of the reporting service.

``reporting-pages``: read latency of the ministry's pages over a year of data for many MPPs. The read
models of ``--pages-sites`` MPPs x ``--pages-days`` days are generated inside PostgreSQL
(``INSERT ... SELECT`` over ``generate_series``: a read benchmark, so the load bypasses Kafka and the
projector), with a realistic density: 10-20 agency service types per MPP, every measure the metrics
read (with a presence rate per measure: SKM answers and complaints are not daily at every service),
visits and tickets per hour, waiting and service histograms per hour. The roll-ups are then filled from
the daily rows with the same ``GROUP BY`` the migrations use (those without agency or service type from
the other roll-ups, as their migration does); the projector keeps them equal to these
sums for projected events (tests/integration/reporting/test_rollups.py). The reporting service runs
as a process on that database; requests go through real HTTP, one at a time (c=1), and the figures
are p50/p99 of each page. The same national and MPP overviews are also computed in this process from
the daily tables only (``rollups=False``), a few times, to show what the roll-ups save.

``reporting-rebuild``: see :func:`run_rebuild`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import PriorityGroup
from mpp.contracts.events.licensing import ApplicationSubmittedV1, PermitIssuedV1
from mpp.contracts.events.queue import (
    ServiceCompletedV1,
    SurveySubmittedV1,
    TicketCalledV1,
    TicketIssuedV1,
    TicketNoShowV1,
    VisitStartedV1,
)
from mpp.contracts.examples import example_payload
from mpp.contracts.kafka import to_record
from mpp.contracts.masterdata import load_catalogue, load_demo_catalogue
from mpp.contracts.nik import PROVINCES
from mpp.kit.auth import issue_token
from mpp.kit.consumer import EventConsumer
from mpp.kit.db import create_engine, session_factory
from mpp.kit.kafka import stop_consumer, topic_partitions
from mpp.kit.migrations import upgrade
from mpp.reporting.api.messaging import projector
from mpp.reporting.app import MIGRATIONS as REPORTING_MIGRATIONS
from mpp.reporting.domain.facts import FACT_TYPES, PAIRED, SECOND_OF_PAIR
from mpp.reporting.domain.metrics import METRICS
from mpp.reporting.domain.periods import Period
from mpp.reporting.domain.projection import DEFAULT_TZ, PROJECTED_TYPES
from mpp.reporting.domain.sla import catalogue_sla
from mpp.reporting.figures import Geography, compute
from mpp.reporting.persistence.repository import Scope, defer_rollups, fill_pending_rollups_concurrently
from mpp.reporting.persistence.tables import BLOCK_BUCKETS, BLOCK_COUNTS, consumer_offsets, inbox
from tools.bench_lifecycle import HttpPool, LifecycleConfig, Service, fresh_databases
from tools.bench_support import WATCHED_PIDS, Meter, SqlTimer, percentile, profile_report, profiled

if TYPE_CHECKING:
    from tools.bench import Bench

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
PAGES = "reporting-pages"
REBUILD = "reporting-rebuild"

# Information only, merged into tools.bench.TARGETS.
TARGETS: dict[str, tuple[str, float, str]] = {
    "rebuild_1m_events_s": ("<", 60.0, "rebuild of 1,000,000 events < 60 s"),
    "rebuild_vs_raw_consume_ratio": (">=", 0.25, "rebuild projection >= 25% of raw consume"),
    "rebuild_sparse_1m_events_s": ("<", 60.0, "rebuild of 1,000,000 events < 60 s (sparse year)"),
    "rebuild_sparse_vs_raw_consume_ratio": (
        ">=",
        0.25,
        "rebuild projection >= 25% of raw consume (sparse year)",
    ),
    "pages_overview_national_p99_ms": ("<", 300.0, "national overview p99 < 300 ms"),
    "pages_overview_mpp_p99_ms": ("<", 300.0, "MPP overview p99 < 300 ms"),
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rebuild-events",
        type=int,
        default=200_000,
        help="events of the reporting rebuild (1000000 for the issue's figure; 200,000 is extrapolated)",
    )
    p.add_argument(
        "--rebuild-max-records",
        type=int,
        default=50_000,
        help="records per batch (a rebuild's default, `python -m mpp.reporting rebuild --max-records`; the "
        "service's MPP_REPORTING_CONSUMER_MAX_RECORDS for a projector catching up)",
    )
    p.add_argument(
        "--rebuild-visits-per-day",
        type=int,
        default=300,
        help="visits a day at each of the mix's 20 sites (a typical MPP sees 100-1,000), so the log covers "
        "as many days as the events fill",
    )
    p.add_argument(
        "--rebuild-sparse-visits-per-day",
        type=int,
        default=30,
        help="a second rebuild with this few visits a day per site, spread over a year (0: not run); "
        "sparser data means more read-model rows per event",
    )
    p.add_argument("--rebuild-timeout", type=float, default=900.0, help="seconds allowed for the rebuild")
    p.add_argument(
        "--pages-sites",
        type=int,
        default=100,
        help="MPPs in the reporting read models (300 for the issue's figure; loading takes minutes)",
    )
    p.add_argument("--pages-days", type=int, default=365, help="days of data, ending on 31 December")
    p.add_argument(
        "--pages-requests",
        type=int,
        default=30,
        help="timed requests per page (c=1; p99 of 30 is their maximum)",
    )
    p.add_argument(
        "--pages-daily-samples",
        type=int,
        default=0,
        help="overviews also computed from the daily tables only, to compare (slow: seconds to minutes each)",
    )


# --------------------------------------------------------------------------------------------------
# catalogue and generated read models
# --------------------------------------------------------------------------------------------------

# (measure, share of (service, day) cells that have it, largest value). Per agency service type.
_SERVICE_MEASURES: tuple[tuple[str, float, int], ...] = (
    ("tickets_issued", 1.0, 60),
    ("tickets_walk_in", 1.0, 45),
    ("tickets_online", 0.7, 15),
    ("tickets_mpp_digital", 0.3, 5),
    ("tickets_served", 1.0, 55),
    ("tickets_no_show", 0.5, 4),
    ("tickets_cancelled", 0.3, 2),
    ("tickets_transferred_in", 0.1, 2),
    ("priority_issued_lansia", 0.4, 3),
    ("priority_served_lansia", 0.4, 3),
    ("priority_issued_disabilitas", 0.1, 1),
    ("priority_served_disabilitas", 0.1, 1),
    ("priority_issued_ibu_hamil", 0.1, 1),
    ("priority_served_ibu_hamil", 0.1, 1),
    ("waiting_count", 1.0, 55),
    ("waiting_seconds_sum", 1.0, 55 * 900),
    ("service_count", 1.0, 55),
    ("service_seconds_sum", 1.0, 55 * 600),
    ("applications_submitted", 0.5, 12),
    ("applications_walk_in", 0.5, 9),
    ("applications_online", 0.3, 4),
    ("applications_finished", 0.5, 10),
    ("applications_sla_known", 0.5, 10),
    ("applications_within_sla", 0.5, 9),
    ("permits_issued", 0.3, 6),
    ("documents_issued", 0.2, 6),
    ("applications_rejected", 0.1, 1),
    ("applications_working_days_count", 0.2, 6),
    ("applications_working_days_sum", 0.2, 30),
    ("appointments_booked", 0.3, 6),
    ("appointments_checked_in", 0.3, 5),
    ("skm_respondents", 0.3, 6),
    *(
        (f"skm_u{i}_{part}", 0.3, 6 if part == "answers" else 24)
        for i in range(1, 10)
        for part in ("answers", "sum")
    ),
    ("complaints_received", 0.05, 1),
    ("complaints_channel_counter", 0.03, 1),
    ("complaints_category_queue", 0.03, 1),
    ("complaints_anonymous", 0.01, 1),
    ("complaints_responded", 0.04, 1),
    ("complaints_responded_within_limit", 0.04, 1),
    ("complaints_response_days_sum", 0.04, 5),
    ("complaints_resolved", 0.03, 1),
    ("complaints_resolved_within_limit", 0.03, 1),
    ("complaints_resolution_days_sum", 0.03, 10),
    ("counters_opened", 1.0, 2),
    ("counters_opened_planned", 1.0, 2),
    ("counter_open_seconds", 1.0, 60_000),
)
# Per MPP (no agency): visits.
_SITE_MEASURES: tuple[tuple[str, float, int], ...] = (
    ("visits", 1.0, 900),
    ("visits_walk_in", 1.0, 700),
    ("visits_online", 1.0, 200),
    ("visits_mpp_digital", 0.8, 60),
)
_SITE_MEASURE_NAMES = frozenset(m for m, _share, _top in _SITE_MEASURES)


def _paired_share(measure: str, share: float, shares: dict[str, tuple[float, int]]) -> tuple[float, int]:
    """How often a row of ``measure`` (drawn with ``share``) holds its pair's second measure, and its
    top: none for a measure that is not the first of a pair."""
    second = PAIRED.get(measure)
    if second is None:
        return 0.0, 0
    paired_share, top = shares[second]
    return min(paired_share / share, 1.0), top


_VISIT = example_payload(VisitStartedV1)
_TICKET = example_payload(TicketIssuedV1)
_CALLED = example_payload(TicketCalledV1)
_NO_SHOW = example_payload(TicketNoShowV1)
_SERVED = example_payload(ServiceCompletedV1)
_SURVEY = example_payload(SurveySubmittedV1)
_SUBMITTED = example_payload(ApplicationSubmittedV1)
_PERMIT = example_payload(PermitIssuedV1)


def pages_catalogue(sites: int, rng: random.Random) -> tuple[bytes, dict[str, list[tuple[str, str]]]]:
    """The demo catalogue's agencies and service types at ``sites`` MPPs across the provinces, each MPP
    hosting 10-20 service types (one counter per agency); returns the catalogue and what each hosts."""
    demo = json.loads(load_demo_catalogue().model_dump_json())
    template = demo["sites"][0]
    services = [(s["agency"], s["code"]) for s in demo["service_types"]]
    out_sites, counters, hosted = [], [], {}
    provinces = sorted(PROVINCES)
    for i in range(sites):
        code = f"mpp-bench-{i:03d}"
        province = provinces[i % len(provinces)]
        out_sites.append(
            {
                **template,
                "code": code,
                "name": f"MPP Bench {i}",
                "province": province,
                "province_name": f"Provinsi {province}",
                "kabkota": f"{province}{i // len(provinces) + 1:02d}",
                "kabkota_name": f"Kabupaten {i}",
            }
        )
        chosen = sorted(rng.sample(services, rng.randint(10, 20)))
        hosted[code] = chosen
        by_agency: dict[str, list[str]] = {}
        for agency, st in chosen:
            by_agency.setdefault(agency, []).append(st)
        for n, (agency, sts) in enumerate(sorted(by_agency.items()), start=1):
            counters.append(
                {
                    "code": f"loket-{i:03d}-{n:02d}",
                    "site": code,
                    "agency": agency,
                    "name": f"Loket {n}",
                    "service_types": sts,
                }
            )
    demo["sites"] = out_sites
    demo["counters"] = counters
    body = json.dumps(demo).encode()
    load_catalogue(body)  # valid, or fail here rather than in the service
    return body, hosted


# (roll-up, its time column, keeps the site, source, value column, other key columns); the national
# monthly roll-ups are summed from the monthly ones, which hold the same months' sums.
_ROLLUP_SQL = (
    ("metric_facts_monthly", "month", True, "metric_facts", "value, paired", "measure"),
    ("metric_facts_national_daily", "day", False, "metric_facts", "value, paired", "measure"),
    ("metric_facts_national_monthly", "month", False, "metric_facts_monthly", "value, paired", "measure"),
    ("duration_histogram_monthly", "month", True, "duration_histogram", "count", "kind, bucket"),
    ("duration_histogram_national_daily", "day", False, "duration_histogram", "count", "kind, bucket"),
    (
        "duration_histogram_national_monthly",
        "month",
        False,
        "duration_histogram_monthly",
        "count",
        "kind, bucket",
    ),
)
_DAILY = {
    "metric_facts": "day, site, agency, service_type, measure",
    "metric_hourly": "day, site, agency, service_type, hour, measure",
    "duration_histogram": "day, site, agency, service_type, hour, kind, bucket",
}
# The roll-ups without agency or service type: summed from the others, as their migrations do.
_SUMMED_ROLLUP_SQL = (
    "INSERT INTO metric_facts_site_monthly (site, month, measure, value, paired) "
    "SELECT site, month, measure, sum(value), sum(paired) FROM metric_facts_monthly "
    "GROUP BY site, month, measure",
    f"INSERT INTO duration_histogram_site_blocks (site, month, kind, block, {', '.join(BLOCK_COUNTS)}) "  # noqa: S608
    f"SELECT site, month, kind, bucket / {BLOCK_BUCKETS}, "
    + ", ".join(
        f"sum(CASE WHEN bucket % {BLOCK_BUCKETS} = {i} THEN count ELSE 0 END)" for i in range(BLOCK_BUCKETS)
    )
    + f" FROM duration_histogram_monthly GROUP BY site, month, kind, bucket / {BLOCK_BUCKETS}",
    "INSERT INTO duration_histogram_total_daily (day, kind, bucket, count) "
    "SELECT day, kind, bucket, sum(count) FROM duration_histogram_national_daily GROUP BY day, kind, bucket",
    "INSERT INTO duration_histogram_total_monthly (month, kind, bucket, count) "
    "SELECT month, kind, bucket, sum(count) FROM duration_histogram_national_monthly "
    "GROUP BY month, kind, bucket",
)
_READ_MODELS = (
    "metric_facts",
    "metric_hourly",
    "duration_histogram",
    *(r[0] for r in _ROLLUP_SQL),
    "metric_facts_site_monthly",
    "duration_histogram_site_blocks",
    "duration_histogram_total_daily",
    "duration_histogram_total_monthly",
)


async def load_read_models(
    url: str, hosted: dict[str, list[tuple[str, str]]], first: date, last: date
) -> dict[str, Any]:
    """Generate the daily read models in PostgreSQL, month by month, then fill the roll-ups from them."""
    engine = create_engine(url, pool_size=1)
    stats: dict[str, Any] = {}
    try:
        sites = [s for s, pairs in hosted.items() for _ in [*pairs, ("", "")]]
        agencies = [a for pairs in hosted.values() for a, _ in [*pairs, ("", "")]]
        types = [t for pairs in hosted.values() for _, t in [*pairs, ("", "")]]
        whole = [p == ("", "") for pairs in hosted.values() for p in [*pairs, ("", "")]]
        # The second measure of a pair lives in its first's row (facts.PAIRED): as often as its own
        # share against the first's, and up to its own top.
        shares = {m: (share, top) for m, share, top in (*_SERVICE_MEASURES, *_SITE_MEASURES)}
        measures = [
            (m, share, top, m in _SITE_MEASURE_NAMES, *_paired_share(m, share, shares))
            for m, share, top in (*_SERVICE_MEASURES, *_SITE_MEASURES)
            if m not in SECOND_OF_PAIR
        ]
        t0 = time.monotonic()
        async with engine.connect() as conn:
            for setting in (
                "synchronous_commit = off",
                "work_mem = '256MB'",
                "maintenance_work_mem = '512MB'",
            ):
                await conn.execute(text(f"SET {setting}"))
            await conn.execute(
                text(
                    "CREATE TEMP TABLE bench_pairs AS SELECT * FROM unnest(CAST(:s AS varchar[]), "
                    "CAST(:a AS varchar[]), CAST(:t AS varchar[]), CAST(:w AS boolean[])) "
                    "AS p(site, agency, service_type, whole_site)"
                ),
                {"s": sites, "a": agencies, "t": types, "w": whole},
            )
            await conn.execute(
                text(
                    "CREATE TEMP TABLE bench_measures AS SELECT * FROM unnest(CAST(:m AS varchar[]), "
                    "CAST(:p AS float8[]), CAST(:x AS integer[]), CAST(:w AS boolean[]), "
                    "CAST(:pp AS float8[]), CAST(:px AS integer[])) "
                    "AS m(measure, share, top, whole_site, paired_share, paired_top)"
                ),
                {
                    "m": [m[0] for m in measures],
                    "p": [m[1] for m in measures],
                    "x": [m[2] for m in measures],
                    "w": [m[3] for m in measures],
                    "pp": [m[4] for m in measures],
                    "px": [m[5] for m in measures],
                },
            )
            # Indexes are built once at the end, as the migrations name them.
            for table in _DAILY:
                await conn.execute(text(f"DROP INDEX ix_{table}_site_day"))
                await conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey"))
            await conn.commit()
            month = first
            while month <= last:
                nxt = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
                end = min(nxt - timedelta(days=1), last)
                days = {"a": month, "b": end}
                series = "generate_series(CAST(:a AS date), CAST(:b AS date), interval '1 day') AS d(at)"
                await conn.execute(
                    text(
                        "INSERT INTO metric_facts "  # noqa: S608
                        "(day, site, agency, service_type, measure, value, paired) "
                        f"SELECT CAST(d.at AS date), p.site, p.agency, p.service_type, m.measure, "
                        "1 + floor(random() * m.top), CASE WHEN random() < m.paired_share "
                        "THEN 1 + floor(random() * m.paired_top) ELSE 0 END "
                        f"FROM {series} CROSS JOIN bench_pairs p "
                        "JOIN bench_measures m ON m.whole_site = p.whole_site WHERE random() < m.share"
                    ),
                    days,
                )
                await conn.execute(
                    text(
                        "INSERT INTO metric_hourly (day, site, agency, service_type, hour, measure, value) "  # noqa: S608
                        f"SELECT CAST(d.at AS date), p.site, p.agency, p.service_type, h.hour, "
                        "CASE WHEN p.whole_site THEN 'visits' ELSE 'tickets_issued' END, "
                        f"1 + floor(random() * 12) FROM {series} CROSS JOIN bench_pairs p "
                        "CROSS JOIN generate_series(8, 15) AS h(hour) WHERE random() < 0.9"
                    ),
                    days,
                )
                # One bucket per (hour, kind) cell in two of three: a service type with a few dozen
                # tickets a day spread over 8 hours and 10-second buckets.
                await conn.execute(
                    text(
                        "INSERT INTO duration_histogram "  # noqa: S608
                        "(day, site, agency, service_type, hour, kind, bucket, count) "
                        f"SELECT CAST(d.at AS date), p.site, p.agency, p.service_type, h.hour, k.kind, "
                        "floor(random() * 180), 1 + floor(random() * 3) "
                        f"FROM {series} CROSS JOIN bench_pairs p CROSS JOIN generate_series(8, 15) AS h(hour) "
                        "CROSS JOIN (VALUES ('waiting'), ('service')) AS k(kind) "
                        "WHERE NOT p.whole_site AND random() < 0.67"
                    ),
                    days,
                )
                await conn.commit()
                log(f"reporting-pages: loaded {month:%Y-%m} ({time.monotonic() - t0:.0f} s)")
                month = nxt
            for table, key in _DAILY.items():
                await conn.execute(
                    text(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key})")
                )
                await conn.execute(text(f"CREATE INDEX ix_{table}_site_day ON {table} (site, day)"))
                await conn.commit()
            stats["load_daily_s"] = round(time.monotonic() - t0, 1)
            t1 = time.monotonic()
            for name, grain, site, source, value, rest in _ROLLUP_SQL:
                when = grain
                if grain == "month" and not source.endswith("_monthly"):
                    when = "CAST(date_trunc('month', day) AS date)"
                keys = ", ".join([when, *(["site"] if site else []), "agency", "service_type", rest])
                cols = ", ".join([grain, *(["site"] if site else []), "agency", "service_type", rest])
                sums = ", ".join(f"sum({v})" for v in value.split(", "))
                await conn.execute(
                    text(
                        f"INSERT INTO {name} ({cols}, {value}) "  # noqa: S608 - this module's own names
                        f"SELECT {keys}, {sums} FROM {source} GROUP BY {keys}"
                    )
                )
                await conn.commit()
            for sql in _SUMMED_ROLLUP_SQL:
                await conn.execute(text(sql))
                await conn.commit()
            stats["fill_rollups_s"] = round(time.monotonic() - t1, 1)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            t2 = time.monotonic()
            for table in _READ_MODELS:
                await conn.execute(text(f"VACUUM ANALYZE {table}"))
            stats["vacuum_analyze_s"] = round(time.monotonic() - t2, 1)
            rows = {}
            for table in _READ_MODELS:
                rows[table] = int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608
            stats["rows"] = rows
            size = await conn.execute(text("SELECT pg_database_size(current_database())"))
            stats["database_mb"] = round(int(size.scalar_one()) / 1e6)
    finally:
        await engine.dispose()
    return stats


# --------------------------------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------------------------------


def _stats_ms(values: Sequence[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(ms[-1], 1),
    }


async def _timed(
    http: HttpPool, paths: Sequence[str], headers: dict[str, str], errors: list[str]
) -> list[float]:
    out = []
    for path in paths:
        t0 = time.perf_counter()
        status, body = await http.request("GET", path, headers=headers)
        out.append(time.perf_counter() - t0)
        if status != 200:
            errors.append(f"GET {path}: HTTP {status} {body[:200]!r}")
    return out


async def _daily_only(url: str, catalogue: bytes, scopes: dict[str, Scope], samples: int) -> dict[str, Any]:
    """Overviews computed in this process from the daily tables only, and from the roll-ups."""
    geography = Geography(load_catalogue(catalogue))
    engine = create_engine(url, pool_size=1)
    sessions = session_factory(engine)
    out: dict[str, Any] = {}
    try:
        for label, scope in scopes.items():
            for rollups in (False, True):
                times = []
                for _ in range(samples):
                    t0 = time.perf_counter()
                    async with sessions() as session:
                        for m in METRICS:
                            await compute(
                                session,
                                geography,
                                m,
                                scope,
                                period=Period.ALL,
                                group_by=None,
                                rollups=rollups,
                            )
                    times.append(time.perf_counter() - t0)
                out[f"{label}_{'rollups' if rollups else 'daily_only'}"] = _stats_ms(times)
    finally:
        await engine.dispose()
    return out


async def _explain(url: str, first: date, last: date) -> dict[str, str]:
    """Plans of the heaviest statements of a year's national overview, of M4 by site and of D1 by site
    (as by province, without the regions' join), and of one MPP's overview."""
    engine = create_engine(url, pool_size=1)
    statements = {
        "national_overview_m4_facts": (
            "SELECT month, agency, service_type, measure, sum(value) FROM metric_facts_national_monthly "
            "WHERE (measure LIKE 'tickets/_%' ESCAPE '/' OR measure = 'applications_submitted' "
            "OR measure LIKE 'appointments/_%' ESCAPE '/') AND month >= :a AND month <= :b "
            "GROUP BY month, agency, service_type, measure"
        ),
        "by_site_m4_facts": (
            "SELECT month, site, measure, sum(value) FROM metric_facts_site_monthly "
            "WHERE (measure LIKE 'tickets/_%' ESCAPE '/' OR measure = 'applications_submitted' "
            "OR measure LIKE 'appointments/_%' ESCAPE '/') AND month >= :a AND month <= :b "
            "GROUP BY month, site, measure"
        ),
        "by_site_d1_histogram": (
            "SELECT month, site, block, "  # noqa: S608 - this module's own names
            + ", ".join(f"sum({c})" for c in BLOCK_COUNTS)
            + " FROM duration_histogram_site_blocks "
            "WHERE kind = 'waiting' AND month >= :a AND month <= :b GROUP BY month, site, block"
        ),
        "mpp_overview_m4_facts": (
            "SELECT month, measure, sum(value) FROM metric_facts_site_monthly "
            "WHERE (measure LIKE 'tickets/_%' ESCAPE '/' OR measure = 'applications_submitted' "
            "OR measure LIKE 'appointments/_%' ESCAPE '/') AND month >= :a AND month <= :b "
            "AND site IN ('mpp-bench-007') GROUP BY month, measure"
        ),
    }
    out = {}
    try:
        async with engine.connect() as conn:
            for label, sql in statements.items():
                rows = await conn.execute(
                    text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"), {"a": first.replace(day=1), "b": last}
                )
                out[label] = "\n".join(str(r[0]) for r in rows)
    finally:
        await engine.dispose()
    return out


async def run_pages(bench: Bench) -> None:
    a, r = bench.args, bench.results
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    last = date(2025, 12, 31)
    first = last - timedelta(days=a.pages_days - 1)
    body, hosted = pages_catalogue(a.pages_sites, rng)
    catalogue_path = ARTIFACTS / "bench-reporting-catalogue.json"
    catalogue_path.write_bytes(body)
    secret = secrets.token_urlsafe(32)
    token = issue_token(secret, subject="bench-ministry", roles=["ministry"], ttl_seconds=7200)
    headers = {"Authorization": f"Bearer {token}"}
    cfg = LifecycleConfig(
        bootstrap=bench.bootstrap,
        admin_url=bench.admin_url,
        run_id=bench.run_id,
        root=ROOT,
        artifacts=ARTIFACTS,
    )
    async with fresh_databases(bench.admin_url, [f"bench_pages_{bench.run_id}"]) as (url,):
        engine = create_engine(url, pool_size=1)
        try:
            await upgrade(engine, REPORTING_MIGRATIONS)
        finally:
            await engine.dispose()
        log(
            f"{PAGES}: generating read models for {a.pages_sites} MPPs x {a.pages_days} days in PostgreSQL "
            "(bypasses Kafka and the projector)"
        )
        load = await load_read_models(url, hosted, first, last)
        log(f"{PAGES}: {load}")
        service = Service(
            "reporting",
            {
                "KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap,
                "MPP_JWT_HS256_SECRET": secret,
                "MPP_REPORTING_DATABASE_URL": url,
                "MPP_REPORTING_CATALOGUE_FILE": str(catalogue_path),
                "MPP_REPORTING_CONSUMER_ENABLED": "false",
                "MPP_REPORTING_RELAY_ENABLED": "true",  # the producer it starts is part of /readyz
            },
            cfg,
            False,
        )
        service.log_path = ARTIFACTS / "bench-reporting.log"
        http = HttpPool("127.0.0.1", service.port, 1)
        errors: list[str] = []
        year = {"from": first.isoformat(), "to": last.isoformat()}
        # A year that does not start on the first of a month: edge days come from the daily roll-ups.
        rolling = {
            "from": (first + timedelta(days=14)).isoformat(),
            "to": (last - timedelta(days=16)).isoformat(),
        }
        site_codes = sorted(hosted)
        n = a.pages_requests

        def sites_paths(params: dict[str, str]) -> list[str]:
            return [f"/v1/overview?{urlencode({**params, 'site': rng.choice(site_codes)})}" for _ in range(n)]

        pages: dict[str, list[str]] = {
            "overview_national": [f"/v1/overview?{urlencode(year)}"] * n,
            "overview_national_unaligned": [f"/v1/overview?{urlencode(rolling)}"] * n,
            "overview_mpp": sites_paths(year),
            "metric_m3_by_site": [f"/v1/metrics/M3?{urlencode({**year, 'group_by': 'site'})}"] * n,
            "metric_m4_by_province": [f"/v1/metrics/M4?{urlencode({**year, 'group_by': 'province'})}"] * n,
            "metric_d1_by_province": [f"/v1/metrics/D1?{urlencode({**year, 'group_by': 'province'})}"] * n,
            "metric_d1_by_site": [f"/v1/metrics/D1?{urlencode({**year, 'group_by': 'site'})}"] * n,
            "metric_m6_by_site_quarter": [
                f"/v1/metrics/M6?{urlencode({**year, 'group_by': 'site', 'period': 'quarter'})}"
            ]
            * n,
        }
        try:
            service.start()
            await service.wait_ready()
            assert service.proc is not None
            pids = {**WATCHED_PIDS, "reporting": service.proc.pid}
            details: dict[str, Any] = {
                "load": load,
                "first_day": first.isoformat(),
                "last_day": last.isoformat(),
            }
            for label, paths in pages.items():
                await _timed(http, paths[:3], headers, errors)  # warm-up
                meter = Meter(other_pids=pids).start()
                times = await _timed(http, paths, headers, errors)
                meter.stop()
                stats = _stats_ms(times)
                stats["reporting_cpu_pct"] = round(meter.other_cpu_pct.get("reporting", 0.0), 1)
                stats["postgres_cpu_pct"] = round(meter.other_cpu_pct.get("postgres", 0.0), 1)
                details[label] = stats
                _status, sample = await http.request("GET", paths[0], headers=headers)
                stats["response_bytes"] = len(sample)
                log(f"{PAGES}: {label} {stats}")
                for pct in ("p50", "p99"):
                    r.add(
                        PAGES,
                        f"pages_{label}_{pct}_ms",
                        stats[f"{pct}_ms"],
                        "ms",
                        f"GET {label.replace('_', ' ')}, {pct}",
                    )
        finally:
            await http.close()
            await service.stop()
        compared: dict[str, Any] = {}
        if a.pages_daily_samples > 0:
            log(f"{PAGES}: overviews from the daily tables only vs the roll-ups, in this process")
            compared = await _daily_only(
                url,
                body,
                {"national": Scope(first, last), "mpp": Scope(first, last, frozenset({site_codes[7]}))},
                a.pages_daily_samples,
            )
        details["in_process_overview"] = compared
        for key, stats in compared.items():
            r.add(
                PAGES,
                f"pages_inproc_overview_{key}_p50_ms",
                stats["p50_ms"],
                "ms",
                f"in-process overview, {key.replace('_', ' ')}",
            )
        details["explain"] = await _explain(url, first, last)
        (ARTIFACTS / "bench_reporting_pages_explain.txt").write_text(
            "\n\n".join(f"-- {k}\n{v}" for k, v in details["explain"].items()) + "\n"
        )
    rows = load["rows"]
    r.add(PAGES, "pages_daily_fact_rows", rows["metric_facts"], "rows", "metric_facts rows loaded")
    r.add(PAGES, "pages_histogram_rows", rows["duration_histogram"], "rows", "duration_histogram rows loaded")
    r.add(PAGES, "pages_database_mb", load["database_mb"], "MB", "reporting database size")
    r.details[PAGES] = details
    r.notes.append(
        f"{PAGES}: read models of {a.pages_sites} MPPs x {a.pages_days} days generated inside PostgreSQL "
        "(bypassing Kafka and the projector; roll-ups filled by GROUP BY from the daily rows); requests one at "
        "a time over HTTP to the reporting process, which shares the machine with PostgreSQL and this process"
    )
    if errors:
        r.fail(f"{PAGES}: {len(errors)} failed requests, e.g. {errors[0]}")


# --------------------------------------------------------------------------------------------------
# reporting-rebuild: a full projection of a realistic event mix from the beginning
# --------------------------------------------------------------------------------------------------


def visit_events(
    rng: random.Random, sites: Sequence[str], services: Sequence[tuple[str, str]], day: date
) -> list[Envelope]:
    """One citizen visit as the queue and licensing services publish it: the visit, its ticket, the
    call, the service; sometimes a survey, a no-show instead, an application and a permit."""
    site = rng.choice(sites)
    agency, st = rng.choice(services)
    start = datetime(day.year, day.month, day.day, 1 + rng.randrange(8), rng.randrange(60), tzinfo=UTC)
    n = rng.getrandbits(48)
    visit, ticket = f"vis-{n:012x}", f"tik-{n:012x}"
    issued = start + timedelta(seconds=30)
    waiting = rng.randrange(60, 3600)
    called = issued + timedelta(seconds=waiting)
    service_seconds = rng.randrange(120, 1800)
    priority = PriorityGroup.LANSIA if rng.random() < 0.08 else PriorityGroup.NONE
    common = {"visit_id": visit, "ticket_id": ticket, "service_type": st, "agency": agency}
    payloads: list[tuple[EventPayload, str]] = [
        (_VISIT.model_copy(update={"visit_id": visit, "started_at": start}), "mpp.queue"),
        (
            _TICKET.model_copy(update={**common, "issued_at": issued, "priority_group": priority}),
            "mpp.queue",
        ),
    ]
    if rng.random() < 0.06:
        payloads.append(
            (
                _NO_SHOW.model_copy(update={**common, "marked_at": called, "waiting_seconds": waiting}),
                "mpp.queue",
            )
        )
    else:
        payloads.append(
            (
                _CALLED.model_copy(update={**common, "called_at": called, "waiting_seconds": waiting}),
                "mpp.queue",
            )
        )
        done = called + timedelta(seconds=service_seconds)
        payloads.append(
            (
                _SERVED.model_copy(
                    update={
                        **common,
                        "priority_group": priority,
                        "issued_at": issued,
                        "completed_at": done,
                        "waiting_seconds": waiting,
                        "service_seconds": service_seconds,
                        "total_seconds": waiting + service_seconds,
                    }
                ),
                "mpp.queue",
            )
        )
        if rng.random() < 0.15:
            payloads.append(
                (
                    _SURVEY.model_copy(
                        update={
                            "survey_id": f"skm-{n:012x}",
                            "service_type": st,
                            "agency": agency,
                            "submitted_at": done,
                        }
                    ),
                    "mpp.queue",
                )
            )
        if rng.random() < 0.25:
            app = f"lic-{n:012x}"
            payloads.append(
                (
                    _SUBMITTED.model_copy(
                        update={"application_id": app, "service_type": st, "submitted_at": done}
                    ),
                    "mpp.licensing",
                )
            )
            if rng.random() < 0.6:
                payloads.append(
                    (
                        _PERMIT.model_copy(
                            update={
                                "application_id": app,
                                "service_type": st,
                                "submitted_at": done,
                                "issued_at": done + timedelta(days=rng.randrange(1, 20)),
                                "within_sla": None if rng.random() < 0.5 else True,
                            }
                        ),
                        "mpp.licensing",
                    )
                )
    return [
        Envelope.wrap(p, producer=producer, agency=agency, site=site, subject=visit)
        for p, producer in payloads
    ]


async def _produce_mix(
    bench: Bench, topics: dict[str, str], count: int, visits_per_day: int
) -> dict[str, Any]:
    """``count`` events of the visit mix, queue events on one topic and licensing events on the other, in
    time order: ``visits_per_day`` visits a day at each site, day after day from 1 January 2025."""
    from tools.bench import produce_pipelined, started_producer

    catalogue = load_demo_catalogue()
    services = [(s.agency, s.code) for s in catalogue.service_types]
    sites = [catalogue.sites[0].code, *(f"mpp-bench-{i:03d}" for i in range(1, 20))]
    rng = random.Random(17)
    producer = await started_producer(bench, "bench-rebuild-fill")
    produced = 0
    visits = 0
    by_type: dict[str, int] = {}
    value_bytes = 0
    meter = Meter().start()
    try:
        for topic in topics.values():
            await producer.partitions_for(topic)
        while produced < count:
            chunk: dict[str, list[tuple[bytes, bytes, Any]]] = {t: [] for t in topics.values()}
            taken = 0
            while taken < 20_000 and produced + taken < count:
                # The log is in time order: the sites' visits, day after day.
                day = date(2025, 1, 1) + timedelta(days=visits // (visits_per_day * len(sites)))
                visits += 1
                for env in visit_events(rng, sites, services, day):
                    if produced + taken >= count:
                        break
                    record = to_record(env)
                    chunk[topics[env.producer]].append(record)
                    by_type[env.type] = by_type.get(env.type, 0) + 1
                    value_bytes += len(record[1])
                    taken += 1
            for topic, records in chunk.items():
                await produce_pipelined(producer, topic, records)
            produced += taken
    finally:
        await producer.stop()
    meter.stop()
    return {
        "events": produced,
        "visits_per_site_day": visits_per_day,
        "days": (visits - 1) // (visits_per_day * len(sites)) + 1,
        "by_type": by_type,
        "value_bytes_mean": round(value_bytes / max(produced, 1)),
        "build_and_produce_s": round(meter.wall_s, 1),
    }


async def _raw_consume(
    bootstrap: str, topics: Sequence[str], expected: int, timeout_s: float
) -> tuple[int, Meter]:
    """aiokafka getmany over every partition of ``topics`` from the beginning (the kit's fetch settings)."""
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
        tps = [tp for t in topics for tp in await topic_partitions(bootstrap, t)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = 0
        meter = Meter().start()
        while count < expected and meter.elapsed() < timeout_s:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            count += sum(len(recs) for recs in batches.values())
        meter.stop()
        return count, meter
    finally:
        await stop_consumer(consumer)


async def _project_all(
    bench: Bench,
    topics: Sequence[str],
    expected: int,
    max_records: int,
    name: str = "rebuild",
    *,
    rollups_at_end: bool = True,
) -> dict[str, Any]:
    """The reporting service's projector (same handler, event types and consumer options as
    ``mpp.reporting.app``) from offset 0 of ``topics`` into a fresh database, until every event is in.
    ``rollups_at_end``: as ``python -m mpp.reporting rebuild`` on PostgreSQL, the roll-ups are pending while
    the events are replayed and filled from the daily read models at the end, within the timed wall;
    otherwise every batch adds to them, as a running service that catches up does."""
    from tools.bench import started_producer

    catalogue = load_demo_catalogue()
    zones = {s.code: ZoneInfo(str(s.timezone)) for s in catalogue.sites}

    @cache
    def site_tz(site: str) -> ZoneInfo:
        return zones.get(site, DEFAULT_TZ)

    async with fresh_databases(bench.admin_url, [f"bench_{name}_{bench.run_id}"]) as (url,):
        engine = create_engine(url)
        producer = await started_producer(bench, "bench-rebuild-dlq")
        consumer = EventConsumer(
            group_id=f"bench.{bench.run_id}.{name}",
            topics=list(topics),
            bootstrap=bench.bootstrap,
            sessions=session_factory(engine),
            inbox=inbox,
            offsets=consumer_offsets,
            handler=projector(site_tz, catalogue_sla(catalogue, site_tz)),
            producer=producer,
            max_records=max_records,
            event_types=PROJECTED_TYPES | FACT_TYPES,
            offsets_from_database_only=True,
            pipelined=True,
        )
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        sql = SqlTimer(engine)
        try:
            await upgrade(engine, REPORTING_MIGRATIONS)
            if rollups_at_end:
                async with session_factory(engine)() as session, session.begin():
                    await defer_rollups(session, datetime.now(UTC))
            sql.reset()
            await consumer.start()
            task = asyncio.create_task(consumer.run(stop), name="bench rebuild projector")
            joined = Meter().start()
            while not consumer.consumer.assignment():
                if task.done() or joined.elapsed() > 60:
                    raise RuntimeError("rebuild consumer got no partitions within 60 s")
                await asyncio.sleep(0.01)
            joined.stop()
            with profiled(bench.args.profile) as prof:
                meter = Meter(other_pids=dict(WATCHED_PIDS)).start()
                while meter.elapsed() < bench.args.rebuild_timeout and not task.done():
                    if consumer.processed + consumer.duplicates + consumer.dead_lettered >= expected:
                        break
                    await asyncio.sleep(0.05)
                fill_s = None
                if rollups_at_end:
                    filled = time.perf_counter()
                    await fill_pending_rollups_concurrently(session_factory(engine))
                    fill_s = round(time.perf_counter() - filled, 2)
                meter.stop()
            statements = {
                kind: {"calls": calls, "s": round(sql.seconds[kind], 2)} for kind, calls in sql.calls.items()
            }
            stop.set()
            await asyncio.wait_for(task, timeout=60)
            async with engine.connect() as conn:
                visits = (
                    await conn.execute(
                        text("SELECT coalesce(sum(value), 0) FROM metric_facts WHERE measure = 'visits'")
                    )
                ).scalar_one()
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
    profile: dict[str, Any] | None = None
    if prof is not None:
        report, summary = profile_report(
            prof,
            title=f"reporting rebuild: EventConsumer + projector, {expected} mixed events",
            wall_s=meter.wall_s,
            cpu_s=meter.process_cpu_pct * meter.wall_s / 100,
            root=ROOT,
        )
        path = ARTIFACTS / f"bench_profile_{name}.txt"
        path.write_text(report)
        profile = {"file": str(path.relative_to(ROOT)), **summary}
    return {
        "profile": profile,
        "sql_statements": statements,
        "processed": consumer.processed,
        "duplicates": consumer.duplicates,
        "dead_lettered": consumer.dead_lettered,
        "visits_projected": int(visits),
        "join_s": round(joined.wall_s, 2),
        "rollups_fill_s": fill_s,
        "wall_s": round(meter.wall_s, 2),
        "events_per_s": round(consumer.processed / meter.wall_s, 1),
        "bench_process_cpu_pct": round(meter.process_cpu_pct, 1),
        "other_cpu_pct": {k: round(v, 1) for k, v in meter.other_cpu_pct.items()},
        "machine_cpu_busy_pct": None if meter.machine_busy_pct is None else round(meter.machine_busy_pct, 1),
        "timed_out": consumer.processed + consumer.duplicates + consumer.dead_lettered < expected,
    }


async def run_rebuild(bench: Bench) -> None:
    """``--rebuild-events`` events of a realistic mix (visits, tickets, calls, services, surveys,
    no-shows, applications, permits) on two topics; raw aiokafka consumption of them; then the reporting
    projector from the beginning into a fresh database (a rebuild), timed until every event is in. Run at
    a typical MPP's visits a day (``--rebuild-visits-per-day``), then over a sparse year
    (``--rebuild-sparse-visits-per-day``): fewer events per site, day and service type mean more
    read-model rows per event."""
    a = bench.args
    await _rebuild_at(bench, "rebuild", a.rebuild_visits_per_day)
    if a.rebuild_sparse_visits_per_day > 0:
        await _rebuild_at(bench, "rebuild_sparse", a.rebuild_sparse_visits_per_day)


async def _rebuild_at(bench: Bench, name: str, visits_per_day: int) -> None:
    from tools.bench import make_topic

    a, r = bench.args, bench.results
    topics = {"mpp.queue": bench.topic(f"{name}-queue"), "mpp.licensing": bench.topic(f"{name}-licensing")}
    for topic in topics.values():
        await make_topic(bench, topic)
    log(
        f"{REBUILD}: building and producing {a.rebuild_events} events, {visits_per_day} visits a day per site"
    )
    fill = await _produce_mix(bench, topics, a.rebuild_events, visits_per_day)
    n = fill["events"]
    log(f"{REBUILD}: {fill}")
    count, raw = await _raw_consume(bench.bootstrap, list(topics.values()), n, a.phase_timeout)
    if count < n:
        r.fail(f"{REBUILD}: raw consume read {count} of {n} events before its timeout")
    raw_per_s = count / raw.wall_s
    log(
        f"{REBUILD}: raw consume {raw_per_s:,.0f} events/s; projecting from offset 0 (max_records {a.rebuild_max_records})"
    )
    res = await _project_all(bench, list(topics.values()), n, a.rebuild_max_records, name)
    # The same events projected as a running service catches up: roll-ups added batch by batch.
    log(f"{REBUILD}: the same events with the roll-ups kept batch by batch (a service catching up)")
    live = await _project_all(
        bench, list(topics.values()), n, a.rebuild_max_records, f"{name}_live", rollups_at_end=False
    )
    runs = [(name, res), (f"{name}_live", live)]
    visits = fill["by_type"].get("VisitStarted", 0)
    for run, found in runs:
        if (
            found["timed_out"]
            or found["dead_lettered"]
            or found["duplicates"]
            or found["visits_projected"] != visits
        ):
            r.fail(
                f"{REBUILD} {run}: {n} events, processed {found['processed']}, dead-lettered "
                f"{found['dead_lettered']}, duplicates {found['duplicates']}, visits "
                f"{found['visits_projected']} of {visits}"
            )
    shape = f"{visits_per_day} visits/day x 20 sites, {fill['days']} days"
    for run, found in runs[1:]:
        r.add(
            REBUILD,
            f"{run}_events_per_s",
            found["events_per_s"],
            "events/s",
            f"projection from offset 0, roll-ups kept batch by batch ({shape})",
        )
        r.add(
            REBUILD,
            f"{run}_vs_raw_consume_ratio",
            found["events_per_s"] / raw_per_s,
            "ratio",
            "live projection (roll-ups batch by batch) / raw consume (same events)",
        )
        r.details[f"{REBUILD} {run}"] = found
    r.add(REBUILD, f"{name}_events", n, "count", f"events in the rebuild ({shape})")
    r.add(
        REBUILD,
        f"{name}_seconds",
        res["wall_s"],
        "s",
        f"full projection of {n:,} events, roll-ups filled at the end as the rebuild command does",
    )
    r.add(
        REBUILD,
        f"{name}_events_per_s",
        res["events_per_s"],
        "events/s",
        f"rebuild from offset 0, mixed events, roll-ups filled at the end ({shape})",
    )
    r.add(REBUILD, f"{name}_raw_consume_events_per_s", raw_per_s, "events/s", "aiokafka getmany, same events")
    r.add(
        REBUILD,
        f"{name}_vs_raw_consume_ratio",
        res["events_per_s"] / raw_per_s,
        "ratio",
        "projection / raw consume (same events)",
    )
    label = "measured" if n >= 1_000_000 else f"EXTRAPOLATED linearly from {n:,}"
    r.add(
        REBUILD,
        f"{name}_1m_events_s",
        1_000_000 / res["events_per_s"],
        "s",
        f"1,000,000 events, {label}",
    )
    r.details[f"{REBUILD} {name}"] = {
        **res,
        "fill": fill,
        "raw_consume_wall_s": round(raw.wall_s, 2),
        "max_records": a.rebuild_max_records,
    }
    if n < 1_000_000:
        r.notes.append(
            f"{REBUILD}: {n:,} events; {name}_1m_events_s is a linear extrapolation, not a measurement "
            "(--rebuild-events 1000000 measures it)"
        )
