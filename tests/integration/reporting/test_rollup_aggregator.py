"""The roll-up's aggregator on PostgreSQL and SQLite, fed directly: the highest revision of a site's day is
kept (equal and lower ones ignored), and a site missing from the national catalogue is filtered and grouped
by the region its summaries state."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.reporting import DailySummaryPublishedV1, summary_key
from mpp.kit.consumer import ReceivedEvent
from mpp.reporting.api.messaging import aggregator
from mpp.reporting.app import refresh_regions
from tests.integration.reporting.harness import ReportingApi, ministry, running_reporting
from tests.unit.reporting.builders import catalogue_for, sites_for

pytestmark = pytest.mark.integration

DAY = date(2026, 6, 1)
REMOTE = "mpp-kota-jauh"


def _summary(revision: int, visitors: int) -> Envelope:
    hours = (0,) * 9 + (visitors,) + (0,) * 14
    payload = DailySummaryPublishedV1(
        site=REMOTE,
        kabkota="6471",
        province="64",
        day=DAY,
        timezone="Asia/Makassar",
        revision=revision,
        final=True,
        generated_at=datetime(2026, 6, 2, tzinfo=UTC),
        visitors=visitors,
        visitors_by_hour=hours,
        services=(),
    )
    return Envelope.wrap(
        payload, producer="mpp.reporting", agency="mpp", site=REMOTE, subject=summary_key(REMOTE, DAY)
    )


@pytest.fixture(params=["postgresql", "sqlite"])
async def national(
    request: pytest.FixtureRequest, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> AsyncIterator[ReportingApi]:
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue_for(sites_for(uuid.uuid4().hex[:8])).model_dump_json())
    url = await fresh_database() if request.param == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/n.db"
    async with running_reporting(url, modes="national", catalogue_file=catalogue_file) as api:
        yield api


async def _consume(api: ReportingApi, *envelopes: Envelope) -> None:
    batch = [ReceivedEvent(e, e.topic, 0, i) for i, e in enumerate(envelopes)]
    async with api.sessions() as session, session.begin():
        await aggregator()(session, batch)


async def _visitors(api: ReportingApi, **params: str) -> list[dict[str, Any]]:
    response = await api.client.get("/v1/metrics/M3", params={"period": "all", **params}, headers=ministry())
    assert response.status_code == 200, response.text
    return [
        {k: v for k, v in row.items() if k not in ("period", "period_start", "figures")}
        | {"visitors": row["figures"]["visitors"]}
        for row in response.json()["rows"]
    ]


async def test_highest_revision_wins_and_regions_come_from_the_summaries(national: ReportingApi) -> None:
    await _consume(national, _summary(2, 7))
    assert await _visitors(national, site=REMOTE) == [{"visitors": 7}]

    # Within one batch and across batches, an older or equal revision changes nothing.
    await _consume(national, _summary(1, 100), _summary(2, 50))
    await _consume(national, _summary(1, 100))
    assert await _visitors(national, site=REMOTE) == [{"visitors": 7}]

    # A higher revision replaces; within a batch the highest one is kept, whatever the order.
    await _consume(national, _summary(4, 9), _summary(3, 30))
    assert await _visitors(national, site=REMOTE) == [{"visitors": 9}]
    by_hour = await national.client.get(
        "/v1/metrics/M3", params={"period": "all", "group_by": "hour", "site": REMOTE}, headers=ministry()
    )
    assert [(r["hour"], r["figures"]["visitors"]) for r in by_hour.json()["rows"]] == [(9, 9)]

    # The national catalogue does not list the site: its summaries' region places it.
    await refresh_regions(national.app.state.reporting)
    assert await _visitors(national, group_by="province", province="64") == [
        {"province": "64", "visitors": 9}
    ]
    assert await _visitors(national, group_by="kabkota") == [{"kabkota": "6471", "visitors": 9}]
    assert await _visitors(national, province="32") == [{"visitors": 0}]


async def test_a_deployment_for_some_sites_leaves_the_others_out(national: ReportingApi) -> None:
    batch = [ReceivedEvent(e, e.topic, 0, i) for i, e in enumerate([_summary(1, 7)])]
    async with national.sessions() as session, session.begin():
        await aggregator(frozenset({"mpp-kota-lain"}))(session, batch)
    assert await _visitors(national, site=REMOTE) == [{"visitors": 0}]
    await _consume(national, _summary(1, 7))
    assert await _visitors(national, site=REMOTE) == [{"visitors": 7}]
