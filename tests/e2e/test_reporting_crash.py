"""100,000 events reach the ministry's figures exactly once while the reporting service (a real process on
the real broker and PostgreSQL) is killed with SIGKILL three times as it projects them.

The events are a realistic mix over three MPPs in two time zones and ten days across a month's end:
visits, tickets (called, served, no-shows, cancellations, transfers of priority groups), applications,
permits, document issues, rejections, SKM surveys, complaints with responses and resolutions, counters
opened and closed; they are published shuffled (late and out-of-order events, visits just before local
midnight), and 1% of them a second time at later offsets, as a relay that restarts republishes.

Expected figures come two ways:

* independently, by counting the generated payloads in the test (visitors per site and local day, tickets
  issued, permits, complaints, SKM respondents);
* for every metric (each scope, period and grouping the test reads), by folding the same events once,
  deduplicated and in generation order, with the domain's own projector into a fresh database and reading
  it through the same API in-process. The crash-tested service must give exactly the same rows.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.queue import VisitStartedV1
from mpp.kit.consumer import ReceivedEvent
from mpp.kit.db import create_engine
from mpp.kit.kafka import create_producer, ensure_topics
from mpp.reporting.app import projector_factory
from mpp.reporting.persistence.tables import inbox
from tests.integration.reporting.harness import SECRET, ministry, running_reporting
from tests.support.kafka_tools import make_topics, wait_for
from tests.support.processes import ROOT, ServiceProcess
from tests.support.reporting import every_figure, projected_up_to, publish, start_at_the_end, topic_ends
from tests.unit.reporting.builders import catalogue_for, generate, sites_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EVENTS = 100_000
REPUBLISHED = 1_000
"""Of the EVENTS published, this many are second copies of events published before."""
DAYS = [date(2026, 3, 26) + timedelta(days=n) for n in range(10)]
VISITS_PER_DAY = 560
KILLS = ((0.10, 0.25), (0.35, 0.55), (0.65, 0.85))
"""Each kill happens once the service has applied a random share, within these bounds, of the events."""


async def test_figures_survive_three_kills_while_projecting_100k_events(
    kafka_bootstrap: str, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    rng = random.Random(20260326)
    run = secrets.token_hex(4)
    sites = sites_for(run)
    catalogue = catalogue_for(sites)
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue.model_dump_json())
    generated = generate(rng.randrange(1 << 30), sites, DAYS, VISITS_PER_DAY, catalogue).envelopes
    unique = generated[: EVENTS - REPUBLISHED]
    assert len(unique) == EVENTS - REPUBLISHED, len(generated)
    again = rng.sample(unique, REPUBLISHED)
    # The second copies arrive spread through the stream, each after its first.
    index = {env.id: i for i, env in enumerate(unique)}
    later: dict[int, list[Envelope]] = {}
    for env in again:
        later.setdefault(rng.randint(index[env.id] + 1, len(unique)), []).append(env)
    stream: list[Envelope] = [*later.get(0, [])]
    for i, env in enumerate(unique, start=1):
        stream += [env, *later.get(i, [])]
    assert len(stream) == EVENTS

    url = await fresh_database()
    group = f"mpp.reporting.projector.crash-{run}"
    await ensure_topics(kafka_bootstrap)
    await make_topics(kafka_bootstrap, f"{group}.dlq", partitions=1)
    await start_at_the_end(url, group, kafka_bootstrap)
    logs = ROOT / "artifacts" / "e2e-logs"
    logs.mkdir(parents=True, exist_ok=True)
    service = ServiceProcess(
        "reporting",
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "MPP_JWT_HS256_SECRET": SECRET,
            "MPP_REPORTING_DATABASE_URL": url,
            "MPP_REPORTING_CONSUMER_GROUP": group,
            "MPP_REPORTING_CATALOGUE_FILE": str(catalogue_file),
            "MPP_REPORTING_RELAY_ENABLED": "false",
        },
        logs,
    )
    engine = create_engine(url)
    producer = create_producer(kafka_bootstrap, client_id=f"reporting-crash-{run}")
    await producer.start()
    try:
        service.start()
        await service.wait_ready()

        async def applied() -> int:
            async with engine.connect() as conn:
                query = select(func.count()).select_from(inbox).where(inbox.c.consumer == group)
                return int((await conn.execute(query)).scalar_one())

        async def chaos() -> list[int]:
            at_kill = []
            for low, high in KILLS:
                target = int(len(unique) * rng.uniform(low, high))

                async def reached(target: int = target) -> bool:
                    return await applied() >= target

                await wait_for(reached, timeout_s=300, interval_s=0.05, what=f"{target} events applied")
                service.kill9()
                at_kill.append(await applied())
                service.start()
            return at_kill

        killer = asyncio.create_task(chaos())
        await publish(producer, stream)
        ends = await topic_ends(kafka_bootstrap)
        at_kill = await killer
        await service.wait_ready()
        await wait_for(
            lambda: projected_up_to(engine, group, ends), timeout_s=400, interval_s=0.5, what="catching up"
        )
        assert service.starts == 1 + len(KILLS)
        # Every kill came while events were still waiting to be applied.
        assert all(n < len(unique) for n in at_kill), at_kill
        assert await applied() >= len(unique)

        headers = ministry()
        scopes = [{"province": sites[0].province}, {"site": sites[2].code}]
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            served = await every_figure(client, headers, scopes)

            # Independent counts straight from the payloads.
            def count(event_type: str) -> Counter[str]:
                return Counter(e.site for e in unique if e.type == event_type)

            r = await client.get(
                "/v1/metrics/M3", params={"province": sites[0].province, "period": "day"}, headers=headers
            )
            by_day = {row["period"]: row["figures"]["visitors"] for row in r.json()["rows"]}
            tz = {s.code: s.tz for s in sites}
            west = {sites[0].code, sites[1].code}
            expected_days = Counter(
                e.payload.started_at.astimezone(tz[e.site]).date().isoformat()
                for e in unique
                if isinstance(e.payload, VisitStartedV1) and e.site in west
            )
            assert by_day == dict(expected_days)
            for metric, figure, event_type in (
                ("M3", "visitors", "VisitStarted"),
                ("M4", "tickets_issued", "TicketIssued"),
                ("M10", "permits_issued", "PermitIssued"),
                ("M7", "received", "ComplaintReceived"),
                ("M6", "respondents", "SurveySubmitted"),
            ):
                rows = served[
                    f"{metric} {sorted({**scopes[0], 'period': 'all', 'group_by': 'site'}.items())}"
                ]
                assert {row["site"]: row["figures"][figure] for row in rows} == {
                    site: n for site, n in count(event_type).items() if site in west
                }, metric
    finally:
        await producer.stop()
        await engine.dispose()
        if service.proc is not None and service.proc.poll() is None:
            assert service.terminate() is not None

    # The same events folded once, in generation order, by the domain's projector into a fresh database.
    project = projector_factory(catalogue)(None)
    async with running_reporting(await fresh_database(), catalogue_file=catalogue_file) as expected_api:
        for first in range(0, len(unique), 5000):
            batch = [
                ReceivedEvent(envelope=env, topic=env.topic, partition=0, offset=first + n)
                for n, env in enumerate(unique[first : first + 5000])
            ]
            async with expected_api.sessions() as session, session.begin():
                await project(session, batch)
        expected = await every_figure(expected_api.client, headers, scopes)
    assert served.keys() == expected.keys()
    differing = [key for key in expected if served[key] != expected[key]]
    assert not differing, differing[:5]
