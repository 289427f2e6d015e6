"""``python -m mpp.reporting rebuild`` on the real broker and PostgreSQL: it refuses to run beside a
projector, replays the topics into emptied read models and ends with every figure the API gave before;
the projection's metrics are read through ``/metrics``.

Each test projects with its own consumer group from the topics' ends at its start (its origin), on sites
only its own catalogue knows, so other runs' events on the shared topics never reach its figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.contracts.envelope import Envelope
from mpp.contracts.masterdata import Catalogue
from mpp.kit.db import create_engine, session_factory
from mpp.kit.kafka import create_producer, ensure_topics
from mpp.reporting.app import create_app, projector_factory
from mpp.reporting.config import ReportingSettings
from mpp.reporting.domain.facts import FACT_TYPES
from mpp.reporting.persistence import repository
from mpp.reporting.persistence.projector_lock import LOCK_KEY, ProjectorLock
from mpp.reporting.persistence.tables import inbox, metric_facts
from mpp.reporting.projection_metrics import ProjectionMetrics
from mpp.reporting.rebuild import RebuildRefused, rebuild
from tests.integration.reporting.harness import SECRET, ministry
from tests.integration.reporting.rollup_checks import rollup_differences
from tests.support.kafka_tools import make_topics, wait_for
from tests.support.processes import ROOT, free_port
from tests.support.reporting import (
    TOPICS,
    every_figure,
    projected_up_to,
    publish,
    start_at_the_end,
    topic_ends,
)
from tests.unit.reporting.builders import SiteInfo, catalogue_for, generate, sites_for

pytestmark = pytest.mark.integration

DAYS = [date(2026, 4, 6), date(2026, 4, 7), date(2026, 4, 8)]


@dataclass
class World:
    url: str
    group: str
    bootstrap: str
    sites: tuple[SiteInfo, ...]
    catalogue: Catalogue
    catalogue_file: Path

    def settings(self, **overrides: Any) -> ReportingSettings:
        values: dict[str, Any] = {
            "database_url": self.url,
            "relay_enabled": False,
            "consumer_enabled": True,
            "kafka_bootstrap_servers": self.bootstrap,
            "consumer_group": self.group,
            "catalogue_file": self.catalogue_file,
            "jwt_hs256_secret": SECRET,
            "log_json": False,
            "log_level": "WARNING",
            **overrides,
        }
        return ReportingSettings(**values)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MPP_REPORTING_DATABASE_URL": self.url,
            "MPP_REPORTING_CONSUMER_GROUP": self.group,
            "MPP_REPORTING_CATALOGUE_FILE": str(self.catalogue_file),
        }

    def scopes(self) -> list[dict[str, str]]:
        return [{"province": self.sites[0].province}, {"site": self.sites[2].code}]

    def run_rebuild(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mpp.reporting", "rebuild", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture
async def world(
    fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[World]:
    run = uuid.uuid4().hex[:8]
    sites = sites_for(run)
    catalogue = catalogue_for(sites)
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue.model_dump_json())
    url = await fresh_database()
    group = f"mpp.reporting.projector.rebuild-{run}"
    await ensure_topics(kafka_bootstrap)
    await make_topics(kafka_bootstrap, f"{group}.dlq", partitions=1)
    await start_at_the_end(url, group, kafka_bootstrap)
    yield World(url, group, kafka_bootstrap, sites, catalogue, catalogue_file)


async def _publish(world: World, envelopes: list[Envelope]) -> None:
    producer = create_producer(world.bootstrap, client_id=f"{world.group}-test")
    await producer.start()
    try:
        await publish(producer, envelopes)
    finally:
        await producer.stop()


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


async def test_a_rebuild_ends_with_the_figures_the_api_gave_before(world: World) -> None:
    generated = generate(11, world.sites, DAYS, 40, world.catalogue)
    envelopes = generated.envelopes
    assert len(envelopes) > 1500
    # A relay that restarts republishes: the same events again, at later offsets.
    await _publish(world, [*envelopes, *envelopes[:60]])
    ends = await topic_ends(world.bootstrap)
    engine = create_engine(world.url)
    try:
        app = create_app(world.settings(projection_lag_interval_s=0.2))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await wait_for(
                    lambda: projected_up_to(engine, world.group, ends),
                    timeout_s=180,
                    interval_s=0.3,
                    what="events projected",
                )
                before = await every_figure(client, ministry(), world.scopes())

                # Beside a running projector the rebuild refuses and changes nothing.
                refused = await asyncio.to_thread(world.run_rebuild)
                assert refused.returncode == 3, refused.stderr
                assert "rebuild refused" in refused.stderr
                assert await every_figure(client, ministry(), world.scopes()) == before

                await asyncio.sleep(0.5)  # one more refresh of the lag gauge
                samples = _samples((await client.get("/metrics")).text)
        async with engine.connect() as conn:
            claimed = (
                await conn.execute(
                    select(func.count()).select_from(inbox).where(inbox.c.consumer == world.group)
                )
            ).scalar_one()
    finally:
        await engine.dispose()

    applied = {
        labels["type"]: value for labels, value in samples["mpp_reporting_projection_events_applied_total"]
    }
    ours = Counter(env.type for env in envelopes)
    assert set(applied) <= FACT_TYPES
    assert all(applied.get(t, 0) >= n for t, n in ours.items()), (applied, ours)
    # Each applied event was claimed once in the inbox (duplicates are not applied) and counted once.
    assert sum(applied.values()) == claimed
    (batch_sum,) = [v for _l, v in samples["mpp_reporting_projection_batch_events_sum"]]
    (batch_count,) = [v for _l, v in samples["mpp_reporting_projection_batch_events_count"]]
    (apply_count,) = [v for _l, v in samples["mpp_reporting_projection_apply_seconds_count"]]
    assert batch_sum == claimed
    assert apply_count == batch_count >= 1
    lag = {(lab["topic"], int(lab["partition"])): v for lab, v in samples["mpp_reporting_projection_lag"]}
    assert {(tp.topic, tp.partition) for tp in ends} == set(lag)
    assert set(TOPICS) == {topic for topic, _p in lag}
    assert all(v >= 0 for v in lag.values())

    done = await asyncio.to_thread(world.run_rebuild, "--progress-every", "0")
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("rebuild: ")]
    assert progress, done.stderr
    assert "records/s" in progress[-1] and "lag 0 in 0 partitions" in progress[-1]
    summary = next(line for line in done.stderr.splitlines() if line.startswith("rebuild finished"))
    assert "records read" in summary
    duplicates = next(line for line in done.stderr.splitlines() if "duplicates skipped" in line)
    skipped = int(duplicates.split("duplicates skipped: ")[1].split(";")[0].replace(",", ""))
    assert skipped >= 60
    assert "  roll-ups filled from the daily read models in " in done.stderr
    # The batches wrote the daily read models only; the roll-ups, filled once at the end, are the sums
    # of their days again.
    engine = create_engine(world.url)
    try:
        assert await rollup_differences(session_factory(engine)) == []
        assert not await _pending(engine)
    finally:
        await engine.dispose()

    app = create_app(world.settings(consumer_enabled=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            after = await every_figure(client, ministry(), world.scopes())
    assert after == before
    visitors = sum(
        r["figures"]["visitors"]
        for r in after[f"M3 {sorted({**world.scopes()[0], 'period': 'all'}.items())}"]
    )
    assert visitors == sum(
        1 for e in envelopes if e.type == "VisitStarted" and e.site in {s.code for s in world.sites[:2]}
    )


async def _rollup_rows(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every roll-up, by table."""
    async with engine.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in (await conn.execute(select(t))).all())
            for t, _keys in (*repository._FACT_ROLLUPS, *repository._HISTOGRAM_ROLLUPS)
        }


async def _pending(engine: AsyncEngine) -> bool:
    async with session_factory(engine)() as session:
        return await repository.rollups_are_pending(session)


async def _visits(engine: AsyncEngine, sites: list[str]) -> int:
    """Visits of ``sites`` in the daily facts."""
    f = metric_facts
    query = select(func.coalesce(func.sum(f.c.value), 0)).where(f.c.measure == "visits", f.c.site.in_(sites))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


@contextlib.asynccontextmanager
async def _service(world: World, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The reporting service of ``world`` (its projector on unless ``consumer_enabled=False``) and a
    client of its API."""
    app = create_app(world.settings(**overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def _projected(engine: AsyncEngine, world: World, ends: Any, what: str = "events projected") -> None:
    await wait_for(
        lambda: projected_up_to(engine, world.group, ends), timeout_s=180, interval_s=0.3, what=what
    )


async def test_a_rebuild_stopped_before_its_end_leaves_the_rollups_to_the_service(world: World) -> None:
    generated = generate(13, world.sites, DAYS, 40, world.catalogue)
    await _publish(world, generated.envelopes)
    ends = await topic_ends(world.bootstrap)
    engine = create_engine(world.url)
    try:
        async with _service(world) as client:
            await _projected(engine, world, ends)
            before = await every_figure(client, ministry(), world.scopes())
        assert all((await _rollup_rows(engine)).values())

        # A rebuild in small batches, killed once it has written some of them.
        west = [s.code for s in world.sites[:2]]
        proc = subprocess.Popen(
            [sys.executable, "-m", "mpp.reporting", "rebuild", "--max-records", "20"],
            cwd=ROOT,
            env=world.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Emptied, and some visits of the scope's sites written again.
            async def replaying() -> bool:
                return await _pending(engine) and await _visits(engine, west) > 0

            await wait_for(replaying, timeout_s=120, interval_s=0.05, what="the rebuild's first batches")
        finally:
            proc.kill()
            proc.wait()
        assert await _pending(engine)
        assert all(rows == [] for rows in (await _rollup_rows(engine)).values())

        # While the roll-ups are pending, figures come from the daily read models (the roll-ups, empty,
        # would give none).
        async with _service(world, consumer_enabled=False) as client:
            response = await client.get(
                "/v1/metrics/M3", params={**world.scopes()[0], "period": "all"}, headers=ministry()
            )
        assert response.status_code == 200, response.text
        projected = await _visits(engine, west)
        assert projected > 0
        assert sum(r["figures"]["visitors"] for r in response.json()["rows"]) == projected

        # The service fills them when it starts, then replays the rest: the figures of before, and roll-ups
        # that are the sums of their days.
        async with _service(world) as client:
            assert not await _pending(engine)
            await _projected(engine, world, ends, "the rest of the rebuild projected")
            assert await every_figure(client, ministry(), world.scopes()) == before
        assert await rollup_differences(session_factory(engine)) == []
    finally:
        await engine.dispose()


async def test_rebuild_progress_and_projection_metrics_in_its_registry(world: World) -> None:
    generated = generate(5, world.sites, DAYS[:1], 20, world.catalogue)
    await _publish(world, generated.envelopes)
    registry = CollectorRegistry()
    metrics = ProjectionMetrics(registry)
    out = io.StringIO()
    summary = await rebuild(
        world.settings(consumer_enabled=False),
        projector_factory(world.catalogue),
        out=out,
        metrics=metrics,
        max_records=300,
        progress_every_s=0,
    )
    assert summary.records_total >= len(generated.envelopes)
    assert summary.records_read == summary.records_total
    assert summary.events_applied >= len(generated.envelopes)
    assert summary.rows["metric_facts"] > 0
    samples = _samples(generate_latest(registry).decode())
    assert samples["mpp_reporting_rebuild_progress_ratio"] == [({}, 1.0)]
    assert samples["mpp_reporting_rebuild_records_total"] == [({}, float(summary.records_total))]
    assert samples["mpp_reporting_rebuild_records_read"] == [({}, float(summary.records_total))]
    applied = sum(v for _l, v in samples["mpp_reporting_projection_events_applied_total"])
    assert applied == summary.events_applied
    assert "rebuild finished" in out.getvalue()


async def test_a_projector_starting_during_a_rebuild_waits_for_it(world: World) -> None:
    engine = create_engine(world.url)
    lock = ProjectorLock(engine, exclusive=True)
    assert await lock.acquire()
    app = create_app(world.settings(projection_lag_interval_s=0))
    started = asyncio.Event()

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            started.set()

    task = asyncio.create_task(serve())
    try:
        await asyncio.sleep(2.5)
        assert not started.is_set()
        await lock.release()
        await asyncio.wait_for(started.wait(), timeout=60)
        await task
    finally:
        task.cancel()
        await lock.release()
        await engine.dispose()


HOLDERS = text(
    "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.mode = 'ShareLock' AND l.granted AND l.objsubid = 1"
    " AND l.classid = :high AND l.objid = :low"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND a.state = 'idle'"
)
"""Sessions holding the projector lock shared between statements: the running projectors' own."""


async def _lock_holders(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(HOLDERS, {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF})
        return {int(pid) for pid in rows.scalars()}


async def _cut(engine: AsyncEngine, pids: set[int]) -> None:
    """End the sessions (as a database restart would): their session locks go with them."""
    async with engine.connect() as conn:
        for pid in pids:
            # With a timeout it waits for the session to end (and its locks to go), not only signals it.
            await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


async def _claimed(engine: AsyncEngine, group: str, ids: set[str] | None = None) -> int:
    """Events the group has applied (of ``ids`` only, if given)."""
    query = select(func.count()).select_from(inbox).where(inbox.c.consumer == group)
    if ids is not None:
        query = query.where(inbox.c.event_id.in_(sorted(ids)))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_a_projector_that_lost_its_lock_writes_nothing_during_a_rebuild(world: World) -> None:
    """The session lock can be lost silently (a database restart): each batch fences itself too."""
    envelopes = generate(5, world.sites, DAYS[:1], 12, world.catalogue).envelopes
    engine = create_engine(world.url)
    rebuild_lock = ProjectorLock(engine, exclusive=True)
    # No check of the session lock during the test: only the per-batch fence stands in the way.
    app = create_app(world.settings(projection_lag_interval_s=0, projector_lock_check_s=3600))
    try:
        async with app.router.lifespan_context(app):
            holders: set[int] = set()

            async def held() -> bool:
                holders.update(await _lock_holders(engine))
                return bool(holders)

            await wait_for(held, timeout_s=30, what="the projector's lock")
            await _cut(engine, holders)
            assert await rebuild_lock.acquire()  # nothing else keeps a rebuild from starting now
            # Events of other runs on the shared topics may have been applied before this point; none
            # may be from now on.
            at_lock = await _claimed(engine, world.group)
            await _publish(world, envelopes)
            ends = await topic_ends(world.bootstrap)
            await asyncio.sleep(4)  # the projector fetches the records and tries its batch meanwhile
            during = await _claimed(engine, world.group) - at_lock
            await rebuild_lock.release()
            await wait_for(
                lambda: projected_up_to(engine, world.group, ends),
                timeout_s=120,
                interval_s=0.3,
                what="events projected after the rebuild",
            )
            ours = {str(e.id) for e in envelopes}
            after = await _claimed(engine, world.group, ours)
    finally:
        await rebuild_lock.release()
        await engine.dispose()
    assert during == 0
    assert after == len(ours)


async def test_a_projector_takes_its_lock_again_after_losing_it(world: World) -> None:
    engine = create_engine(world.url)
    app = create_app(world.settings(projection_lag_interval_s=0, projector_lock_check_s=0.2))
    rebuild_lock = ProjectorLock(engine, exclusive=True)
    try:
        async with app.router.lifespan_context(app):
            first: set[int] = set()

            async def held() -> bool:
                first.update(await _lock_holders(engine))
                return bool(first)

            await wait_for(held, timeout_s=30, what="the projector's lock")
            await _cut(engine, first)

            async def taken_again() -> bool:
                return bool(await _lock_holders(engine) - first)

            await wait_for(taken_again, timeout_s=30, what="the projector's lock taken again")
            refused = not await rebuild_lock.acquire()
    finally:
        await rebuild_lock.release()
        await engine.dispose()
    assert refused


async def test_on_sqlite_a_rebuild_refuses_beside_a_projector_then_replays(
    world: World, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    group = world.group + "-sqlite"
    await make_topics(world.bootstrap, f"{group}.dlq", partitions=1)
    await start_at_the_end(url, group, world.bootstrap)
    generated = generate(3, world.sites, DAYS[:1], 15, world.catalogue)
    await _publish(world, generated.envelopes)
    settings = world.settings(database_url=url, consumer_group=group, consumer_enabled=False)
    engine = create_engine(url)
    projector_lock = ProjectorLock(engine, exclusive=False)
    try:
        assert await projector_lock.acquire()
        with pytest.raises(RebuildRefused):
            await rebuild(settings, projector_factory(world.catalogue), out=io.StringIO())
        await projector_lock.release()
        summary = await rebuild(settings, projector_factory(world.catalogue), out=io.StringIO())
    finally:
        await projector_lock.release()
        await engine.dispose()
    assert summary.events_applied >= len(generated.envelopes)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get(
                "/v1/metrics/M3",
                params={"province": world.sites[0].province, "period": "all"},
                headers=ministry(),
            )
    assert response.status_code == 200, response.text
    west = {s.code for s in world.sites[:2]}
    visits = sum(1 for e in generated.envelopes if e.type == "VisitStarted" and e.site in west)
    assert response.json()["rows"][0]["figures"]["visitors"] == visits


async def test_the_rebuild_command_serves_its_progress_at_metrics(world: World) -> None:
    generated = generate(9, world.sites, DAYS[:2], 30, world.catalogue)
    await _publish(world, generated.envelopes)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mpp.reporting",
            "rebuild",
            "--metrics-port",
            str(port),
            "--max-records",
            "50",
        ],
        cwd=ROOT,
        env=world.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    scraped: list[dict[str, list[tuple[dict[str, str], float]]]] = []
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            while proc.poll() is None:
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/metrics")
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
                    continue
                scraped.append(_samples(response.text))
                await asyncio.sleep(0.05)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert scraped, "the rebuild's /metrics never answered"
    for samples in scraped:
        ((_l, ratio),) = samples["mpp_reporting_rebuild_progress_ratio"]
        ((_l, read),) = samples["mpp_reporting_rebuild_records_read"]
        ((_l, total),) = samples["mpp_reporting_rebuild_records_total"]
        assert 0 <= ratio <= 1
        assert read <= total or total == 0
    totals = [samples["mpp_reporting_rebuild_records_total"][0][1] for samples in scraped]
    assert totals == sorted(totals)  # set once, when the rebuild has planned its replay
