"""The national roll-up on the real broker and PostgreSQL.

A site deployment projects three MPPs' days and publishes their daily summaries through its outbox
and relay; a national deployment (its own database and consumer group, starting at the summaries
topic's current end) aggregates them. Its figures equal the site deployment's own; a republished day
replaces and never adds; a redelivered or older revision is ignored; a malformed summary goes to the
dead-letter topic with its reason while the consumer keeps going; a day the national deployment
projects from its own events counts once.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import insert, select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import (
    Channel,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintClass,
    PriorityGroup,
    SkmElement,
)
from mpp.contracts.events.queue import (
    ComplaintOutcome,
    ComplaintReceivedV1,
    ComplaintResolvedV1,
    SurveySubmittedV1,
    TicketIssuedV1,
    VisitStartedV1,
)
from mpp.contracts.events.reporting import (
    ChannelTotals,
    DailySummaryPublishedV1,
    SkmElementTotal,
    SkmTotals,
    ikm,
)
from mpp.contracts.kafka import from_record, header_map, to_record
from mpp.contracts.topics import REPORTING_DAILY_SUMMARIES
from mpp.kit.consumer import BatchHandler, ReceivedEvent
from mpp.kit.db import create_engine
from mpp.kit.kafka import create_producer, ensure_topics
from mpp.kit.migrations import upgrade
from mpp.reporting.api.messaging import projector
from mpp.reporting.app import MIGRATIONS, create_app
from mpp.reporting.config import ReportingSettings
from mpp.reporting.domain.metrics import METRICS
from mpp.reporting.domain.sla import catalogue_sla
from mpp.reporting.persistence.tables import consumer_offsets, summary_days, summary_state
from tests.integration.reporting.harness import SECRET, ministry
from tests.support.kafka_tools import end_offsets, make_topics, read_all, read_since, wait_for
from tests.unit.reporting.builders import SiteInfo, catalogue_for, generate, sites_for

pytestmark = pytest.mark.integration

DAYS = [date(2026, 3, 2), date(2026, 3, 3)]
AFTER = datetime(2026, 3, 10, tzinfo=UTC)
"""The publishers' clock: every generated day has closed."""
RANGE = {"from": "2026-02-28", "to": "2026-03-08"}

METRIC_IDS = tuple(m.id for m in METRICS)
BY_HOUR = tuple(m.id for m in METRICS if m.hourly is not None)
GROUPINGS = ("agency", "service_type", "province", "kabkota", "weekday")


def _extras(sites: Sequence[SiteInfo]) -> list[Envelope]:
    """Events the generator does not make: tickets issued on a transfer from another service and
    complaints about a service type, received and resolved."""
    out = []
    for i, site in enumerate(sites):
        for day in DAYS:
            at = datetime(day.year, day.month, day.day, 10 + i, 7, tzinfo=site.tz).astimezone(UTC)
            n = f"{i}{day.day:02d}"
            ticket = TicketIssuedV1(
                visit_id=f"vis-x-{n}",
                ticket_id=f"tik-x-{n}",
                ticket_number="B-001",
                service_type="polres.skck",
                agency="polres",
                priority_group=PriorityGroup.ANAK,
                channel=Channel.WALK_IN,
                issued_at=at,
                transferred_from=f"tik-y-{n}",
            )
            out.append(
                Envelope.wrap(
                    ticket, producer="mpp.queue", agency="polres", site=site.code, subject=f"vis-x-{n}"
                )
            )
            common: dict[str, Any] = {
                "complaint_id": f"adu-x-{n}",
                "channel": ComplaintChannel.WHATSAPP,
                "category": ComplaintCategory.SERVICE_TIME,
                "complaint_class": ComplaintClass.COMPLAINT,
                "agency": "dpmptsp",
                "service_type": "dpmptsp.nib",
            }
            received = ComplaintReceivedV1(**common, resolution_limit_days=5, anonymous=True, received_at=at)
            resolved = ComplaintResolvedV1(
                **common,
                anonymous=True,
                outcome=ComplaintOutcome.UPHELD,
                received_at=at,
                resolved_at=at + timedelta(hours=3),
                working_days_elapsed=0,
                within_limit=True,
            )
            for payload in (received, resolved):
                out.append(
                    Envelope.wrap(
                        payload, producer="mpp.queue", agency="dpmptsp", site=site.code, subject=f"adu-x-{n}"
                    )
                )
    return out


@dataclass
class Deployment:
    app: FastAPI
    client: httpx.AsyncClient
    projector: BatchHandler

    @property
    def sessions(self) -> Any:
        return self.app.state.reporting.sessions

    async def metric(self, metric: str, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/v1/metrics/{metric}", params=params, headers=ministry())
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows

    async def overview(self, **params: str) -> dict[str, dict[str, Any]]:
        response = await self.client.get("/v1/overview", params=params, headers=ministry())
        assert response.status_code == 200, response.text
        return {m["id"]: m["figures"] for m in response.json()["metrics"]}

    async def project(self, envelopes: Sequence[Envelope]) -> None:
        """One consumed batch through the deployment's projector, in one transaction."""
        batch = [ReceivedEvent(env, env.topic, 0, i) for i, env in enumerate(envelopes)]
        async with self.sessions() as session, session.begin():
            await self.projector(session, batch)


@dataclass
class Rollup:
    site: Deployment
    national: Deployment
    sites: tuple[SiteInfo, ...]
    envelopes: list[Envelope]
    group: str
    bootstrap: str
    producer: AIOKafkaProducer
    since: dict[int, int]

    async def held(self) -> dict[tuple[str, date], int]:
        t = summary_days
        codes = [s.code for s in self.sites]
        async with self.national.sessions() as session:
            rows = (
                await session.execute(select(t.c.site, t.c.day, t.c.revision).where(t.c.site.in_(codes)))
            ).all()
        return {(r.site, r.day): int(r.revision) for r in rows}

    async def published(self) -> dict[tuple[str, date], int]:
        t = summary_state
        async with self.site.sessions() as session:
            rows = (await session.execute(select(t.c.site, t.c.day, t.c.revision))).all()
        return {(r.site, r.day): int(r.revision) for r in rows}

    async def publish_and_wait(self) -> dict[tuple[str, date], int]:
        publisher = self.site.app.state.reporting.publisher
        await publisher.publish_due(AFTER)
        expected = await self.published()

        async def caught_up() -> bool:
            return await self.held() == expected

        await wait_for(caught_up, timeout_s=120, interval_s=0.3, what="summaries aggregated")
        return expected

    async def send(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await (await self.producer.send(REPORTING_DAILY_SUMMARIES, value=value, key=key, headers=headers))


async def _start_at_the_end(url: str, group: str, bootstrap: str) -> dict[int, int]:
    ends = await end_offsets(bootstrap, REPORTING_DAILY_SUMMARIES)
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.begin() as conn:
            await conn.execute(
                insert(consumer_offsets),
                [
                    {"consumer": group, "topic": REPORTING_DAILY_SUMMARIES, "partition": p, "offset": end - 1}
                    for p, end in ends.items()
                ],
            )
    finally:
        await engine.dispose()
    return ends


@pytest.fixture
async def rollup(
    fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[Rollup]:
    run = uuid.uuid4().hex[:8]
    sites = sites_for(run)
    catalogue = catalogue_for(sites)
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue.model_dump_json())
    await ensure_topics(kafka_bootstrap)
    group = f"mpp.reporting.rollup.test-{run}"
    await make_topics(kafka_bootstrap, f"{group}.dlq", partitions=1)
    site_url, national_url = await fresh_database(), await fresh_database()
    since = await _start_at_the_end(national_url, group, kafka_bootstrap)
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "catalogue_file": catalogue_file,
        "jwt_hs256_secret": SECRET,
        "log_json": False,
        "log_level": "WARNING",
        # Published by the test's own calls, not by the timer.
        "summary_interval_s": 3600,
    }
    site_settings = ReportingSettings(
        database_url=site_url,
        modes="site",
        summary_sites=",".join(s.code for s in sites),
        relay_enabled=True,
        consumer_enabled=False,
        outbox_poll_interval_s=0.1,
        **common,
    )
    national_settings = ReportingSettings(
        database_url=national_url,
        modes="national",
        rollup_consumer_group=group,
        # Summaries other deployments publish on the shared broker meanwhile are left out.
        rollup_sites=",".join(s.code for s in sites),
        relay_enabled=False,
        consumer_enabled=True,
        **common,
    )
    site_app, national_app = create_app(site_settings), create_app(national_settings)
    producer = create_producer(kafka_bootstrap, client_id=f"reporting-rollup-test-{run}")
    await producer.start()
    try:
        async with (
            site_app.router.lifespan_context(site_app),
            national_app.router.lifespan_context(national_app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=site_app), base_url="http://site") as sc,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=national_app), base_url="http://nat") as nc,
        ):
            generated = generate(11, sites, DAYS, 40, catalogue)
            generated.envelopes.extend(_extras(sites))
            zones = {s.code: s.tz for s in sites}
            # The national deployment runs no projector consumer; the test projects a site's events into
            # it with the same handler a "site,national" deployment would use.
            local = projector(zones.__getitem__, catalogue_sla(catalogue, zones.__getitem__))
            yield Rollup(
                Deployment(site_app, sc, site_app.state.reporting.runtime.consumer_specs[0].handler),
                Deployment(national_app, nc, local),
                sites,
                generated.envelopes,
                group,
                kafka_bootstrap,
                producer,
                since,
            )
    finally:
        await producer.stop()


async def _same_rows(r: Rollup, metric: str, **params: str) -> None:
    site_rows = await r.site.metric(metric, **RANGE, **params)
    assert site_rows, (metric, params)
    assert await r.national.metric(metric, **RANGE, **params) == site_rows, (metric, params)


async def _same_figures(r: Rollup, **params: str) -> None:
    """Every figure of every metric, per site and day, per grouping, per hour of day and summed, is the
    same in both deployments."""
    for metric in METRIC_IDS:
        await _same_rows(r, metric, period="day", group_by="site", **params)
    site_overview, national_overview = await r.site.overview(**RANGE), await r.national.overview(**RANGE)
    assert national_overview == site_overview


async def _same_in_every_grouping(r: Rollup) -> None:
    for metric in METRIC_IDS:
        for group_by in GROUPINGS:
            await _same_rows(r, metric, period="all", group_by=group_by)
    for metric in BY_HOUR:
        await _same_rows(r, metric, period="all", group_by="hour")
        await _same_rows(r, metric, period="day", group_by="hour", site=r.sites[2].code)


def _ikm_of(envelopes: Sequence[Envelope]) -> Decimal | None:
    answers: Counter[SkmElement] = Counter()
    sums: Counter[SkmElement] = Counter()
    respondents = 0
    for env in envelopes:
        if isinstance(env.payload, SurveySubmittedV1):
            respondents += 1
            for element, score in env.payload.scores.answered().items():
                answers[element] += 1
                sums[element] += score
    elements = tuple(SkmElementTotal(element=e, answers=answers[e], score_sum=sums[e]) for e in answers)
    return ikm(SkmTotals(respondents=respondents, elements=elements))


async def test_national_figures_are_the_sum_of_the_sites_and_republished_days_replace(rollup: Rollup) -> None:
    r = rollup
    a = r.sites[0].code
    await r.site.project(r.envelopes)

    first = await r.publish_and_wait()
    revision = int(AFTER.timestamp())
    assert len(first) >= len(r.sites) * len(DAYS) and set(first.values()) == {revision}
    await _same_figures(r)
    await _same_in_every_grouping(r)
    # The figures the summaries carry since their optional fields were added are there, not zero.
    national = await r.national.overview(**RANGE)
    assert national["M4"]["tickets_transferred_in"] == len(r.sites) * len(DAYS)
    assert national["M9"]["priority_issued"] > national["M9"]["priority_issued_by_group"]["lansia"] > 0
    assert national["M7"]["anonymous"] > 0 and national["M5"]["mean_working_days"] is not None
    assert national["M3"]["visitors_online"] > 0 and national["M8"]["applications_online"] > 0
    (complaints,) = await r.national.metric("M7", period="all", service_type="dpmptsp.nib", **RANGE)
    assert complaints["figures"]["received"] >= len(r.sites) * len(DAYS)
    # IKM nationally: exactly the index of the summed per-unsur totals of every site's raw answers.
    expected_ikm = _ikm_of(r.envelopes)
    assert expected_ikm is not None
    national = await r.national.overview(**RANGE)
    assert Decimal(str(national["M6"]["ikm"])) == expected_ikm
    visits = sum(1 for e in r.envelopes if isinstance(e.payload, VisitStartedV1))
    assert national["M3"]["visitors"] == visits
    # Percentiles from the summaries keep the local 10-second error bound.
    assert national["D1"]["max_error_seconds"] == 9

    # Publishing again with nothing new publishes nothing.
    assert await r.site.app.state.reporting.publisher.publish_due(AFTER) == 0

    # Late events for a closed day: the day is republished with a higher revision and replaces.
    day = DAYS[0]
    late_at = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    late = [
        Envelope.wrap(
            VisitStartedV1(
                visit_id=f"vis-late-{i}", channel=Channel.WALK_IN, started_at=late_at + timedelta(minutes=i)
            ),
            producer="mpp.queue",
            agency="mpp",
            site=a,
            subject=f"vis-late-{i}",
        )
        for i in range(5)
    ]
    await r.site.project(late)
    second = await r.publish_and_wait()
    changed = {k for k, v in second.items() if v != first[k]}
    assert changed == {(a, day)} and second[(a, day)] == revision + 1
    await _same_figures(r)
    national = await r.national.overview(**RANGE)
    assert national["M3"]["visitors"] == visits + 5
    (row,) = await r.national.metric("M3", site=a, period="day", **{"from": "2026-03-02", "to": "2026-03-02"})
    (own,) = await r.site.metric("M3", site=a, period="day", **{"from": "2026-03-02", "to": "2026-03-02"})
    assert row["figures"]["visitors"] == own["figures"]["visitors"]

    # Every summary of this run as published (the outbox's relay wrote them to the topic).
    records = [
        rec
        for rec in await read_since(r.bootstrap, REPORTING_DAILY_SUMMARIES, r.since)
        if rec.key.decode().startswith(a)
    ]
    by_revision = {}
    for rec in records:
        env = from_record(rec.value, rec.headers)
        assert isinstance(env.payload, DailySummaryPublishedV1)
        if env.subject == f"{a}:{day.isoformat()}":
            by_revision[env.payload.revision] = (rec, env)
    assert set(by_revision) == {revision, revision + 1}
    old_record, old_env = by_revision[revision]
    before = await r.national.overview(**RANGE)

    # A redelivered summary (same event id) and an older revision under a new id, with other figures:
    # both ignored.
    await r.send(old_record.key, old_record.value, list(old_record.headers))
    assert isinstance(old_env.payload, DailySummaryPublishedV1)
    stale = old_env.payload.model_copy(
        update={
            "visitors": 999,
            "visitors_by_hour": (999, *(0,) * 23),
            "visitors_by_channel": ChannelTotals(walk_in=999),
            "generated_at": AFTER,
        }
    )
    stale_env = Envelope.wrap(stale, producer="mpp.reporting", agency="mpp", site=a, subject=old_env.subject)
    await r.send(*to_record(stale_env))

    # A malformed summary (hours that do not add up) and one whose envelope names another site.
    bad_payload = orjson.loads(old_record.value)
    bad_payload["visitors"] = bad_payload["visitors"] + 1
    bad_headers = [(k, v) for k, v in old_record.headers if k != "ce_id"] + [
        ("ce_id", str(uuid.uuid4()).encode())
    ]
    await r.send(old_record.key, orjson.dumps(bad_payload), bad_headers)
    foreign = old_env.payload.model_copy(update={"revision": 50})
    wrong = Envelope.wrap(
        foreign, producer="mpp.reporting", agency="mpp", site=r.sites[1].code, subject=old_env.subject
    )
    await r.send(*to_record(wrong))

    # A valid summary sent after them shows the consumer kept going.
    sentinel_day = date(2026, 3, 20)
    sentinel = old_env.payload.model_copy(update={"day": sentinel_day, "revision": 1})
    key = f"{a}:{sentinel_day.isoformat()}"
    await r.send(
        *to_record(Envelope.wrap(sentinel, producer="mpp.reporting", agency="mpp", site=a, subject=key))
    )

    async def sentinel_held() -> bool:
        return (a, sentinel_day) in await r.held()

    await wait_for(sentinel_held, timeout_s=120, interval_s=0.3, what="the summary sent after the bad ones")
    held = await r.held()
    assert held[(a, day)] == revision + 1
    assert await r.national.overview(**RANGE) == before
    await _same_figures(r)

    dead = [rec for rec in await read_all(r.bootstrap, f"{r.group}.dlq") if rec.key == old_record.key]
    reasons = sorted(header_map(rec.headers)["dlq_reason"] for rec in dead)
    assert reasons == ["handler_error", "malformed"]
    errors = " ".join(header_map(rec.headers)["dlq_error"] for rec in dead)
    assert "visitors_by_hour must add up to visitors" in errors
    assert "differs from the summary's site" in errors

    # The national deployment also projects site A's events itself: its local events win for those days,
    # so nothing counts twice.
    await r.national.project([e for e in [*r.envelopes, *late] if e.site == a])
    assert await r.national.overview(**RANGE) == before
    await _same_figures(r)
    await _same_in_every_grouping(r)
