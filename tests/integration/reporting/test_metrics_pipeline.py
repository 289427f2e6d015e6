"""Events published on the real broker, consumed by the reporting service into PostgreSQL and read back
through the metric API, equal the figures computed directly from the generated events.

The service runs with its own consumer group, starting at the topics' current end, on sites that
exist only in this test's catalogue, so events published by other tests never enter these figures.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import insert, select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import Channel, PriorityGroup, SkmElement
from mpp.contracts.events.identity import DocumentIssuedV1
from mpp.contracts.events.licensing import ApplicationRejectedV1, PermitIssuedV1
from mpp.contracts.events.queue import (
    ComplaintReceivedV1,
    ComplaintResolvedV1,
    ComplaintRespondedV1,
    CounterOpenedV1,
    ServiceCompletedV1,
    SurveySubmittedV1,
    TicketCalledV1,
    TicketIssuedV1,
    VisitStartedV1,
)
from mpp.contracts.events.reporting import SkmElementTotal, SkmTotals, ikm, ikm_grade
from mpp.contracts.kafka import to_record
from mpp.contracts.topics import DOMAIN_TOPICS
from mpp.kit.auth import Role
from mpp.kit.db import create_engine
from mpp.kit.kafka import create_producer, ensure_topics, stop_consumer, topic_partitions
from mpp.kit.migrations import upgrade
from mpp.reporting.app import MIGRATIONS, create_app
from mpp.reporting.config import ReportingSettings
from mpp.reporting.domain.percentiles import MAX_ERROR_SECONDS, exact_percentile
from mpp.reporting.persistence.tables import consumer_offsets
from tests.integration.reporting.harness import SECRET, bearer, ministry
from tests.support.kafka_tools import make_topics, wait_for
from tests.unit.reporting.builders import Generated, SiteInfo, catalogue_for, generate, sites_for

pytestmark = pytest.mark.integration

DAYS = [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5)]
VISITS_PER_DAY = 60


async def _ends(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [tp for topic in DOMAIN_TOPICS for tp in await topic_partitions(bootstrap, topic)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await stop_consumer(consumer)


async def _start_at_the_end(database_url: str, group: str, bootstrap: str) -> None:
    """Record every domain topic's current end as consumed by ``group`` in Kafka and in the database."""
    ends = await _ends(bootstrap)
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign(list(ends))
        await committer.commit(dict(ends))
    finally:
        await stop_consumer(committer)
    engine = create_engine(database_url)
    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.begin() as conn:
            await conn.execute(
                insert(consumer_offsets),
                [
                    {"consumer": group, "topic": tp.topic, "partition": tp.partition, "offset": end - 1}
                    for tp, end in ends.items()
                ],
            )
    finally:
        await engine.dispose()


@dataclass
class Pipeline:
    client: httpx.AsyncClient
    producer: AIOKafkaProducer
    bootstrap: str
    group: str
    app: Any
    sites: tuple[SiteInfo, ...]
    generated: Generated

    async def publish(self, envelopes: list[Envelope]) -> None:
        futures = []
        for envelope in envelopes:
            key, value, headers = to_record(envelope)
            futures.append(await self.producer.send(envelope.topic, value=value, key=key, headers=headers))
        for f in futures:
            await f

    async def settled(self, ends: dict[TopicPartition, int]) -> bool:
        t = consumer_offsets
        async with self.app.state.reporting.sessions() as session:
            rows = (await session.execute(select(t).where(t.c.consumer == self.group))).all()
        stored = {(r.topic, r.partition): r.offset for r in rows}
        return all(stored.get((tp.topic, tp.partition), -1) >= end - 1 for tp, end in ends.items())

    async def publish_and_wait(self, envelopes: list[Envelope]) -> None:
        await self.publish(envelopes)
        ends = await _ends(self.bootstrap)
        await wait_for(lambda: self.settled(ends), timeout_s=180, interval_s=0.5, what="events projected")

    async def metric(self, metric: str, headers: dict[str, str] | None = None, **params: str) -> list[Any]:
        response = await self.client.get(
            f"/v1/metrics/{metric}", params=params, headers=headers or ministry()
        )
        assert response.status_code == 200, response.text
        rows: list[Any] = response.json()["rows"]
        return rows


@pytest.fixture
async def pipeline(
    fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    run = uuid.uuid4().hex[:8]
    sites = sites_for(run)
    catalogue = catalogue_for(sites)
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue.model_dump_json())
    url = await fresh_database()
    group = f"mpp.reporting.projector.test-{run}"
    await ensure_topics(kafka_bootstrap)
    await make_topics(kafka_bootstrap, f"{group}.dlq", partitions=1)
    await _start_at_the_end(url, group, kafka_bootstrap)
    settings = ReportingSettings(
        database_url=url,
        relay_enabled=False,
        consumer_enabled=True,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=group,
        catalogue_file=catalogue_file,
        jwt_hs256_secret=SECRET,
        log_json=False,
        log_level="WARNING",
    )
    app = create_app(settings)
    producer = create_producer(kafka_bootstrap, client_id=f"reporting-metrics-test-{run}")
    await producer.start()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                generated = generate(7, sites, DAYS, VISITS_PER_DAY, catalogue)
                yield Pipeline(client, producer, kafka_bootstrap, group, app, sites, generated)
    finally:
        await producer.stop()


def _day(pipeline: Pipeline, env: Envelope, at: datetime) -> date:
    tz = next(s.tz for s in pipeline.sites if s.code == env.site)
    return at.astimezone(tz).date()


def _hour(pipeline: Pipeline, env: Envelope, at: datetime) -> int:
    tz = next(s.tz for s in pipeline.sites if s.code == env.site)
    return at.astimezone(tz).hour


def _by(rows: list[dict[str, Any]], key: str, figure: str) -> dict[Any, Any]:
    return {r[key]: r["figures"][figure] for r in rows}


def _pct(part: int, whole: int) -> float | None:
    return (
        None
        if whole == 0
        else float((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    )


async def test_figures_through_the_api_equal_figures_from_the_events(pipeline: Pipeline) -> None:
    g = pipeline.generated
    assert len(g.envelopes) > 2000
    await pipeline.publish_and_wait(g.envelopes)
    a, b, c = (s.code for s in pipeline.sites)
    west_java = "32"

    # M3 visitors per site over the whole range.
    visits = Counter(e.site for e, _ in g.payloads(VisitStartedV1))
    for site in (a, b, c):
        rows = await pipeline.metric("M3", site=site, period="all")
        assert rows[0]["figures"]["visitors"] == visits[site]
    # ... by local hour of arrival at one site.
    by_hour = Counter(_hour(pipeline, e, p.started_at) for e, p in g.payloads(VisitStartedV1) if e.site == a)
    assert (
        _by(await pipeline.metric("visitors", site=a, period="all", group_by="hour"), "hour", "visitors")
        == by_hour
    )

    # M4 tickets per day and agency at one site, days in the site's own time zone.
    tickets = Counter(
        (_day(pipeline, e, p.issued_at).isoformat(), p.agency)
        for e, p in g.payloads(TicketIssuedV1)
        if e.site == c
    )
    rows = await pipeline.metric("M4", site=c, period="day", group_by="agency")
    assert {(r["period"], r["agency"]): r["figures"]["tickets_issued"] for r in rows} == tickets

    # M5 SLA compliance per site; outcomes missing from the event come from the catalogue (NIB: 60 minutes,
    # PBG: 28 working days).
    known: Counter[str] = Counter()
    within: Counter[str] = Counter()
    finished: Counter[str] = Counter()
    for e, p in g.payloads(PermitIssuedV1):
        ok = p.within_sla
        if ok is None:
            ok = (
                (p.issued_at - p.submitted_at).total_seconds() <= 3600
                if p.service_type == "dpmptsp.nib"
                else True
            )
        known[e.site] += 1
        within[e.site] += ok
        finished[e.site] += 1
    for e, p in g.payloads(DocumentIssuedV1):
        known[e.site] += 1
        within[e.site] += bool(p.within_sla)
        finished[e.site] += 1
    for e, _ in g.payloads(ApplicationRejectedV1):
        finished[e.site] += 1
    rows = await pipeline.metric("M5", period="all", group_by="site", province=west_java)
    assert _by(rows, "site", "sla_compliance_pct") == {s: _pct(within[s], known[s]) for s in (a, b)}
    assert _by(rows, "site", "applications_finished") == {s: finished[s] for s in (a, b)}

    # M6 IKM per province, recomputed independently with the contracts' additive totals.
    for province, sites in (("32", {a, b}), ("64", {c})):
        answers: Counter[SkmElement] = Counter()
        sums: Counter[SkmElement] = Counter()
        respondents = 0
        for e, p in g.payloads(SurveySubmittedV1):
            if e.site in sites:
                respondents += 1
                for element, score in p.scores.answered().items():
                    answers[element] += 1
                    sums[element] += score
        totals = SkmTotals(
            respondents=respondents,
            elements=tuple(
                SkmElementTotal(element=el, answers=answers[el], score_sum=sums[el]) for el in answers
            ),
        )
        expected = ikm(totals)
        assert expected is not None
        (row,) = await pipeline.metric("M6", province=province, period="all")
        figures = row["figures"]
        assert figures["respondents"] == respondents
        assert Decimal(str(figures["ikm"])) == expected
        assert figures["grade"] == ikm_grade(expected).value
        assert [el["answers"] for el in figures["elements"]] == [answers[el] for el in SkmElement]

    # M7 complaints per site.
    received = Counter(e.site for e, _ in g.payloads(ComplaintReceivedV1))
    responded = Counter(e.site for e, _ in g.payloads(ComplaintRespondedV1))
    on_time = Counter(e.site for e, p in g.payloads(ComplaintRespondedV1) if p.within_limit)
    resolved = Counter(e.site for e, _ in g.payloads(ComplaintResolvedV1))
    rows = await pipeline.metric("M7", period="all", group_by="site", province=west_java)
    assert _by(rows, "site", "received") == {s: received[s] for s in (a, b)}
    assert _by(rows, "site", "responded") == {s: responded[s] for s in (a, b)}
    assert _by(rows, "site", "responded_within_limit") == {s: on_time[s] for s in (a, b)}
    assert _by(rows, "site", "resolved") == {s: resolved[s] for s in (a, b)}

    # M8 online share per kabupaten/kota.
    issued_at = Counter(e.site for e, _ in g.payloads(TicketIssuedV1))
    online = Counter(e.site for e, p in g.payloads(TicketIssuedV1) if p.channel is not Channel.WALK_IN)
    rows = await pipeline.metric("M8", period="all", group_by="kabkota", province=west_java)
    assert _by(rows, "kabkota", "tickets_online_pct") == {
        "3298": _pct(online[a], issued_at[a]),
        "3299": _pct(online[b], issued_at[b]),
    }

    # M9 priority tickets served, per group, at one site.
    served = Counter(
        p.priority_group.value
        for e, p in g.payloads(ServiceCompletedV1)
        if e.site == b and p.priority_group is not PriorityGroup.NONE
    )
    (row,) = await pipeline.metric("M9", site=b, period="all")
    assert {k: v for k, v in row["figures"]["priority_served_by_group"].items() if v} == served

    # M10 permits per province and month.
    permits = Counter(e.site in {a, b} for e, _ in g.payloads(PermitIssuedV1))
    rows = await pipeline.metric("M10", period="month", province="32")
    assert sum(r["figures"]["permits_issued"] for r in rows) == permits[True]

    # D1 and D2: median and P90 per site within the stated error of the exact values.
    waits: dict[str, list[int]] = defaultdict(list)
    for e, p in g.payloads(TicketCalledV1):
        if p.call_count == 1:
            waits[e.site].append(p.waiting_seconds)
    services: dict[str, list[int]] = defaultdict(list)
    for e, p in g.payloads(ServiceCompletedV1):
        services[e.site].append(p.service_seconds)
    for metric, raw in (("D1", waits), ("D2", services)):
        for site in (a, b, c):
            (row,) = await pipeline.metric(metric, site=site, period="all")
            figures = row["figures"]
            assert figures["count"] == len(raw[site])
            assert figures["mean_seconds"] == float(
                (Decimal(sum(raw[site])) / len(raw[site])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            )
            for key, p in (("median_seconds", 0.5), ("p90_seconds", 0.9)):
                exact = exact_percentile(raw[site], p)
                assert exact is not None
                assert figures[key] - MAX_ERROR_SECONDS <= exact <= figures[key], (metric, site, key)
    # ... and merged across the province's two sites.
    (row,) = await pipeline.metric("D1", province="32", period="all")
    exact = exact_percentile(waits[a] + waits[b], 0.9)
    assert exact is not None
    assert row["figures"]["p90_seconds"] - MAX_ERROR_SECONDS <= exact <= row["figures"]["p90_seconds"]

    # D3 counters opened per site.
    opened = Counter(e.site for e, _ in g.payloads(CounterOpenedV1))
    rows = await pipeline.metric("D3", period="all", group_by="site", province="64")
    assert _by(rows, "site", "counters_opened") == {c: opened[c]}

    # Redelivery of already projected events (same event ids) changes nothing.
    before = await pipeline.metric("M4", site=c, period="day", group_by="agency")
    await pipeline.publish_and_wait(g.envelopes[:500])
    assert await pipeline.metric("M4", site=c, period="day", group_by="agency") == before
    (row,) = await pipeline.metric("M3", site=a, period="all")
    assert row["figures"]["visitors"] == visits[a]

    # Scopes: an operator sees their site's overview; an officer their agency; foreign filters are refused.
    overview = await pipeline.client.get("/v1/overview", headers=bearer(roles=[Role.OPERATOR], site=a))
    assert overview.status_code == 200, overview.text
    m3 = next(m for m in overview.json()["metrics"] if m["id"] == "M3")
    assert m3["figures"]["visitors"] == visits[a]
    officer = bearer(roles=[Role.OFFICER], site=a, agency="polres")
    rows = await pipeline.metric("M4", officer, period="all", group_by="agency")
    polres = sum(1 for e, p in g.payloads(TicketIssuedV1) if e.site == a and p.agency == "polres")
    assert [(r["agency"], r["figures"]["tickets_issued"]) for r in rows] == [("polres", polres)]
    refused = await pipeline.client.get("/v1/metrics/M4", params={"site": b}, headers=officer)
    assert refused.status_code == 403
    assert "MPP Anda" in refused.json()["error"]["message"]


def test_the_generated_mix_spans_three_sites_and_several_days() -> None:
    sites = sites_for("check")
    g = generate(7, sites, DAYS, VISITS_PER_DAY, catalogue_for(sites))
    days = {
        e.payload.started_at.astimezone(UTC).date()
        for e in g.envelopes
        if isinstance(e.payload, VisitStartedV1)
    }

    assert {e.site for e in g.envelopes} == {s.code for s in sites}
    assert len(days) >= len(DAYS)
