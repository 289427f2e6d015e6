"""Site mode on PostgreSQL and SQLite: provisional summaries only when the figures changed, a final one
once the site's local day has closed, a higher revision when a late event changes a closed day, and
nothing for sites the deployment does not publish."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import Channel
from mpp.contracts.events.queue import ServiceCompletedV1, VisitStartedV1
from mpp.contracts.events.reporting import DailySummaryPublishedV1
from mpp.contracts.examples import example_payload
from mpp.contracts.kafka import from_record
from mpp.kit.consumer import ReceivedEvent
from mpp.kit.outbox import decode_headers
from mpp.reporting.api.messaging import projector
from mpp.reporting.persistence.tables import outbox
from tests.integration.reporting.harness import ReportingApi, running_reporting
from tests.support.kafka_tools import wait_for
from tests.unit.reporting.builders import SiteInfo, catalogue_for, sites_for

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
