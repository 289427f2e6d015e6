"""Site mode on PostgreSQL and SQLite: provisional summaries only when the figures changed, a final one
once the site's local day has closed, a higher revision when a late event changes a closed day,
nothing for sites the deployment does not publish, and every figure a day's summary carries equal to a
count of the raw payloads."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import (
    Channel,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintClass,
    PriorityGroup,
)
from mpp.contracts.events.identity import DocumentIssuedV1
from mpp.contracts.events.licensing import ApplicationSubmittedV1
from mpp.contracts.events.queue import (
    ComplaintReceivedV1,
    ServiceCompletedV1,
    TicketCalledV1,
    TicketIssuedV1,
    VisitStartedV1,
)
from mpp.contracts.events.reporting import ChannelTotals, DailySummaryPublishedV1, PriorityTickets
from mpp.contracts.examples import example_payload
from mpp.contracts.kafka import from_record
from mpp.kit.consumer import ReceivedEvent
from mpp.kit.outbox import decode_headers
from mpp.reporting.api.messaging import projector
from mpp.reporting.domain.summary import build_summary
from mpp.reporting.persistence.summaries import day_rows
from mpp.reporting.persistence.tables import outbox
from tests.integration.reporting.harness import ReportingApi, running_reporting
from tests.support.kafka_tools import wait_for
from tests.unit.reporting.builders import SiteInfo, catalogue_for, generate, sites_for

pytestmark = pytest.mark.integration

DAY = date(2026, 5, 4)


def _local(site: SiteInfo, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=site.tz).astimezone(UTC)


def _visit(site: SiteInfo, at: datetime) -> Envelope:
    vid = f"vis-{uuid.uuid4().hex[:12]}"
    payload = VisitStartedV1(visit_id=vid, channel=Channel.WALK_IN, started_at=at)
    return Envelope.wrap(payload, producer="mpp.queue", agency="mpp", site=site.code, subject=vid)


@pytest.fixture(params=["postgresql", "sqlite"])
async def site_deployment(
    request: pytest.FixtureRequest, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> AsyncIterator[tuple[ReportingApi, tuple[SiteInfo, ...]]]:
    sites = sites_for(uuid.uuid4().hex[:8])
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue_for(sites).model_dump_json())
    url = await fresh_database() if request.param == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/r.db"
    async with running_reporting(
        url,
        modes="site",
        summary_sites=f"{sites[0].code},{sites[2].code}",
        catalogue_file=catalogue_file,
        summary_close_delay_s=900,
    ) as api:
        yield api, sites


async def _project(api: ReportingApi, envelopes: Sequence[Envelope]) -> None:
    handler = api.app.state.reporting.runtime.consumer_specs[0].handler
    batch = [ReceivedEvent(e, e.topic, 0, i) for i, e in enumerate(envelopes)]
    async with api.sessions() as session, session.begin():
        await handler(session, batch)


async def _published(api: ReportingApi) -> list[tuple[str, DailySummaryPublishedV1]]:
    """Every summary in the outbox, in the order written (the relay is off)."""
    async with api.sessions() as session:
        rows = (await session.execute(select(outbox).order_by(outbox.c.seq))).all()
    out = []
    for row in rows:
        env = from_record(row.value, decode_headers(row.headers))
        assert isinstance(env.payload, DailySummaryPublishedV1)
        assert row.key.decode() == env.subject == f"{env.payload.site}:{env.payload.day.isoformat()}"
        out.append((env.site, env.payload))
    return out


async def test_provisional_final_and_late_revisions(
    site_deployment: tuple[ReportingApi, tuple[SiteInfo, ...]],
) -> None:
    api, sites = site_deployment
    a, b, _c = sites
    publisher = api.app.state.reporting.publisher
    noon = _local(a, DAY, 12)

    await _project(
        api, [_visit(a, _local(a, DAY, 9)), _visit(a, _local(a, DAY, 10)), _visit(b, _local(b, DAY, 9))]
    )
    assert await publisher.publish_due(noon) == 1
    assert await publisher.publish_due(noon + timedelta(minutes=5)) == 0
    await _project(api, [_visit(a, _local(a, DAY, 11))])
    assert await publisher.publish_due(noon + timedelta(minutes=10)) == 1
    # Just after midnight the day is still within its grace: nothing changed, nothing is published.
    assert await publisher.publish_due(_local(a, DAY + timedelta(days=1), 0, 10)) == 0
    # Past the grace: final, with the same figures.
    assert await publisher.publish_due(_local(a, DAY + timedelta(days=1), 0, 20)) == 1
    assert await publisher.publish_due(_local(a, DAY + timedelta(days=1), 6)) == 0
    # A late event for the closed day.
    await _project(api, [_visit(a, _local(a, DAY, 15))])
    assert await publisher.publish_due(_local(a, DAY + timedelta(days=2), 9)) == 1

    published = await _published(api)
    # Revisions are the publication times in seconds (they keep increasing across a recreated database).
    times = [noon + timedelta(minutes=10), _local(a, DAY + timedelta(days=1), 0, 20)]
    revisions = [int(t.timestamp()) for t in [noon, *times, _local(a, DAY + timedelta(days=2), 9)]]
    assert [(s.site, s.day, s.revision, s.final, s.visitors) for _site, s in published] == [
        (a.code, DAY, revisions[0], False, 2),
        (a.code, DAY, revisions[1], False, 3),
        (a.code, DAY, revisions[2], True, 3),
        (a.code, DAY, revisions[3], True, 4),
    ]
    assert published[3][1].visitors_by_hour[15] == 1
    # Site B's events are projected but B is not published; C had no activity.
    assert {site for site, _s in published} == {a.code}


async def test_a_summary_too_large_for_one_record_uses_wider_buckets(
    site_deployment: tuple[ReportingApi, tuple[SiteInfo, ...]],
) -> None:
    api, sites = site_deployment
    c = sites[2]
    base = example_payload(ServiceCompletedV1)
    assert isinstance(base, ServiceCompletedV1)
    done = []
    for i in range(30):
        issued = _local(c, DAY, 9, i)
        payload = base.model_copy(update={"issued_at": issued, "service_seconds": 17 * i + 3})
        done.append(
            Envelope.wrap(payload, producer="mpp.queue", agency=base.agency, site=c.code, subject=f"t-{i}")
        )
    await _project(api, done)
    publisher = api.app.state.reporting.publisher
    publisher.max_bytes = 1

    assert await publisher.publish_due(_local(c, DAY, 12)) == 1

    ((_site, summary),) = await _published(api)
    assert all((bound + 1) % 300 == 0 for bound in summary.service_buckets_seconds)
    (service,) = summary.services
    assert service.service.count == 30 and sum(service.service.histogram) == 30
    # Too large even then: without the split by hour of day (the day's totals stay complete).
    assert service.service.by_hour == ()

    # Room for the widest buckets with their hours: those come before dropping the hours.
    async with api.sessions() as session:
        rows = await day_rows(session, c.code, DAY)
    now = _local(c, DAY, 12)
    with_hours = build_summary(
        publisher.meta[c.code],
        DAY,
        revision=10**9,
        final=False,
        generated_at=now,
        facts=rows.facts,
        visits_by_hour=rows.visits_by_hour,
        histograms=rows.histograms,
        hourly=rows.hourly,
        resolution=300,
    )
    publisher.max_bytes = len(with_hours.model_dump_json())
    built = publisher.build(publisher.meta[c.code], DAY, 10**9, False, now, rows)
    assert built == with_hours
    (service,) = built.services
    assert [(h.hour, sum(h.counts)) for h in service.service.by_hour] == [(9, 30)]


async def test_the_timer_publishes_what_is_due(
    fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    sites = sites_for(uuid.uuid4().hex[:8])
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue_for(sites).model_dump_json())
    async with running_reporting(
        await fresh_database(),
        summary_sites=sites[0].code,
        catalogue_file=catalogue_file,
        summary_interval_s=0.2,
    ) as api:
        await _project(api, [_visit(sites[0], _local(sites[0], DAY, 9))])

        async def published() -> bool:
            return len(await _published(api)) == 1

        await wait_for(published, timeout_s=30, what="a summary published by the timer")
        ((_site, summary),) = await _published(api)
        # DAY is long past: the timer publishes it final at once.
        assert (summary.site, summary.day, summary.final) == (sites[0].code, DAY, True)
        assert summary.revision >= int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


async def test_days_projected_before_publishing_are_published_once(
    site_deployment: tuple[ReportingApi, tuple[SiteInfo, ...]],
) -> None:
    api, sites = site_deployment
    a, b, c = sites
    zones = {s.code: s.tz for s in sites}
    # Projected by a projector that marks nothing (read models filled before publishing existed).
    plain = projector(zones.__getitem__)
    envelopes = [_visit(a, _local(a, DAY, 9)), _visit(a, _local(a, DAY + timedelta(days=1), 9))]
    envelopes += [_visit(b, _local(b, DAY, 9)), _visit(c, _local(c, DAY, 10))]
    async with api.sessions() as session, session.begin():
        await plain(session, [ReceivedEvent(e, e.topic, 0, i) for i, e in enumerate(envelopes)])

    publisher = api.app.state.reporting.publisher
    now = _local(a, DAY + timedelta(days=5), 9)
    assert await publisher.publish_due(now) == 3
    assert await publisher.publish_due(now + timedelta(hours=1)) == 0

    published = await _published(api)
    revision = int(now.timestamp())
    assert sorted((s.site, s.day, s.revision, s.final) for _site, s in published) == [
        (a.code, DAY, revision, True),
        (a.code, DAY + timedelta(days=1), revision, True),
        (c.code, DAY, revision, True),
    ]


async def test_days_changed_while_publishing_is_off_are_published_when_it_is_on(tmp_path: Path) -> None:
    sites = sites_for(uuid.uuid4().hex[:8])
    a = sites[0]
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue_for(sites).model_dump_json())
    url = f"sqlite+aiosqlite:///{tmp_path}/r.db"
    settings = {"summary_sites": a.code, "catalogue_file": catalogue_file}
    async with running_reporting(url, **settings) as api:
        publisher = api.app.state.reporting.publisher
        await _project(api, [_visit(a, _local(a, DAY, 9))])
        assert await publisher.publish_due(_local(a, DAY + timedelta(days=1), 9)) == 1
    # Off (a rebuild, say): the late visit is noted but nothing is published.
    async with running_reporting(url, summary_publish=False, **settings) as api:
        assert api.app.state.reporting.publisher is None
        await _project(api, [_visit(a, _local(a, DAY, 10))])
    async with running_reporting(url, **settings) as api:
        publisher = api.app.state.reporting.publisher
        assert await publisher.publish_due(_local(a, DAY + timedelta(days=2), 9)) == 1
        assert [s.visitors for _site, s in await _published(api)] == [1, 2]


def _on(site: SiteInfo, at: datetime, day: date) -> bool:
    return at.astimezone(site.tz).date() == day


def _hour(site: SiteInfo, at: datetime) -> int:
    return at.astimezone(site.tz).hour


async def test_a_summary_carries_every_figure_of_its_day(
    site_deployment: tuple[ReportingApi, tuple[SiteInfo, ...]],
) -> None:
    """Channels, transfers, priority tickets issued, tickets and durations by hour, working days and
    complaints per service type with their anonymous ones, each equal to a count of the raw payloads."""
    api, sites = site_deployment
    a = sites[0]
    catalogue = api.app.state.reporting.geography.catalogue
    envelopes = generate(5, (a,), [DAY], 30, catalogue).envelopes
    for i in range(3):
        at = _local(a, DAY, 10 + i, 15)
        ticket = TicketIssuedV1(
            visit_id=f"vis-t-{i}",
            ticket_id=f"tik-t-{i}",
            ticket_number="B-001",
            service_type="polres.skck",
            agency="polres",
            priority_group=PriorityGroup.DISABILITAS,
            channel=Channel.ONLINE,
            issued_at=at,
            transferred_from=f"tik-s-{i}",
        )
        complaint = ComplaintReceivedV1(
            complaint_id=f"adu-t-{i}",
            channel=ComplaintChannel.COUNTER,
            category=ComplaintCategory.FEES,
            complaint_class=ComplaintClass.COMPLAINT,
            resolution_limit_days=5,
            anonymous=i > 0,
            agency="polres",
            service_type="polres.skck",
            received_at=at,
        )
        envelopes += [
            Envelope.wrap(ticket, producer="mpp.queue", agency="polres", site=a.code, subject=f"vis-t-{i}"),
            Envelope.wrap(
                complaint, producer="mpp.queue", agency="polres", site=a.code, subject=f"adu-t-{i}"
            ),
        ]
    await _project(api, envelopes)
    publisher = api.app.state.reporting.publisher
    assert await publisher.publish_due(_local(a, DAY + timedelta(days=5), 9)) >= 1
    (summary,) = [s for _site, s in await _published(api) if s.day == DAY]

    def payloads(cls: type[Any]) -> list[tuple[Envelope, Any]]:
        return [(e, e.payload) for e in envelopes if isinstance(e.payload, cls)]

    visits = Counter(p.channel.value for _e, p in payloads(VisitStartedV1) if _on(a, p.started_at, DAY))
    assert summary.visitors_by_channel == ChannelTotals(**visits)
    services = {(s.agency, s.service_type): s for s in summary.services}

    issued = [p for _e, p in payloads(TicketIssuedV1) if _on(a, p.issued_at, DAY)]
    for key in {(p.agency, p.service_type) for p in issued}:
        mine = [p for p in issued if (p.agency, p.service_type) == key]
        hours = Counter(_hour(a, p.issued_at) for p in mine)
        assert services[key].tickets_issued_by_hour == tuple(hours[h] for h in range(24)), key
        assert services[key].tickets_transferred_in == sum(1 for p in mine if p.transferred_from), key
        groups = Counter(p.priority_group.value for p in mine if p.priority_group is not PriorityGroup.NONE)
        assert services[key].priority_issued == PriorityTickets(**groups), key
    assert services[("polres", "polres.skck")].tickets_transferred_in == 3

    submitted = [(e.agency, p) for e, p in payloads(ApplicationSubmittedV1) if _on(a, p.submitted_at, DAY)]
    for key in {(agency, p.service_type) for agency, p in submitted}:
        channels = Counter(p.channel.value for agency, p in submitted if (agency, p.service_type) == key)
        assert services[key].applications_by_channel == ChannelTotals(**channels), key

    documents = [
        (e.agency, p)
        for e, p in payloads(DocumentIssuedV1)
        if _on(a, p.issued_at, DAY) and p.working_days_elapsed is not None
    ]
    assert documents
    for key in {(agency, p.service_type) for agency, p in documents}:
        mine = [p for agency, p in documents if (agency, p.service_type) == key]
        assert services[key].applications_working_days_count == len(mine), key
        assert services[key].applications_working_days_sum == sum(p.working_days_elapsed for p in mine), key

    waits: Counter[tuple[str, str, int]] = Counter()
    for _e, p in payloads(TicketCalledV1):
        issued_at = p.called_at - timedelta(seconds=p.waiting_seconds)
        if p.call_count == 1 and _on(a, issued_at, DAY):
            waits[(p.agency, p.service_type, _hour(a, issued_at))] += 1
    carried = Counter(
        {
            (s.agency, s.service_type, h.hour): sum(h.counts)
            for s in summary.services
            for h in s.waiting.by_hour
        }
    )
    assert carried == waits and sum(waits.values()) > 0

    received = [p for _e, p in payloads(ComplaintReceivedV1) if _on(a, p.received_at, DAY)]
    by_group: Counter[tuple[str | None, str | None]] = Counter()
    anonymous: Counter[tuple[str | None, str | None]] = Counter()
    for c in summary.complaints:
        by_group[(c.agency, c.service_type)] += c.received
        anonymous[(c.agency, c.service_type)] += c.anonymous
    assert by_group == Counter((p.agency, p.service_type) for p in received)
    assert +anonymous == Counter((p.agency, p.service_type) for p in received if p.anonymous)
    assert anonymous[("polres", "polres.skck")] == 2
