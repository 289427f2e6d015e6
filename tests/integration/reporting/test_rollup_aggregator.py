"""The roll-up's aggregator on PostgreSQL and SQLite, fed directly: the highest revision of a site's day is
kept (equal and lower ones ignored), a site missing from the national catalogue is filtered and grouped
by the region its summaries state, and a summary without the optional fields added to v1 (an earlier
producer's) aggregates as before while one with them carries every figure."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.reporting import (
    ChannelTotals,
    DailySummaryPublishedV1,
    DurationTotals,
    HourHistogram,
    PriorityTickets,
    summary_key,
)
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


def _earlier_producer(day: date, revision: int) -> Envelope:
    """A summary as a producer before the optional fields wrote it (parsed from its JSON, none of them)."""
    hours = [0] * 24
    hours[9] = 3
    payload = DailySummaryPublishedV1.model_validate(
        {
            "site": REMOTE,
            "kabkota": "6471",
            "province": "64",
            "day": day.isoformat(),
            "timezone": "Asia/Makassar",
            "revision": revision,
            "final": True,
            "generated_at": "2026-06-03T00:00:00Z",
            "visitors": 3,
            "visitors_by_hour": hours,
            "waiting_buckets_seconds": [59, 69],
            "services": [
                {
                    "agency": "dpmptsp",
                    "service_type": "dpmptsp.nib",
                    "tickets_issued": 2,
                    "tickets_walk_in": 1,
                    "tickets_online": 1,
                    "tickets_served": 2,
                    "priority_tickets": {"lansia": 1},
                    "applications_submitted": 2,
                    "applications_finished": 3,
                    "applications_finished_within_sla": 1,
                    "permits_issued": 2,
                    "waiting": {"count": 2, "sum_seconds": 125, "histogram": [0, 2, 0]},
                }
            ],
            "complaints": [
                {
                    "agency": "dpmptsp",
                    "channel": "whatsapp",
                    "category": "fees",
                    "complaint_class": "complaint",
                    "received": 2,
                    "resolved": 1,
                    "resolved_within_limit": 1,
                    "resolution_working_days_sum": 2,
                }
            ],
        }
    )
    return Envelope.wrap(
        payload, producer="mpp.reporting", agency="mpp", site=REMOTE, subject=summary_key(REMOTE, day)
    )


def _with_every_figure(day: date, revision: int) -> Envelope:
    """The same day as this version's producer publishes it, with the optional fields."""
    env = _earlier_producer(day, revision)
    old = env.payload
    assert isinstance(old, DailySummaryPublishedV1)
    service = old.services[0].model_copy(
        update={
            "tickets_transferred_in": 1,
            "tickets_issued_by_hour": (0,) * 9 + (2,) + (0,) * 14,
            "priority_issued": PriorityTickets(lansia=1, anak=1),
            "applications_by_channel": ChannelTotals(walk_in=1, mpp_digital=1),
            "applications_with_sla_outcome": 1,
            "waiting": DurationTotals(
                count=2,
                sum_seconds=125,
                histogram=(0, 2, 0),
                by_hour=(HourHistogram(hour=9, buckets=(1,), counts=(2,)),),
            ),
        }
    )
    complaint = old.complaints[0].model_copy(update={"service_type": "dpmptsp.nib", "anonymous": 1})
    payload = DailySummaryPublishedV1.model_validate(
        {
            **old.model_dump(),
            "visitors_by_channel": ChannelTotals(walk_in=2, online=1),
            "services": (service,),
            "complaints": (complaint,),
        }
    )
    return Envelope.wrap(
        payload, producer="mpp.reporting", agency="mpp", site=REMOTE, subject=summary_key(REMOTE, day)
    )


async def _figures(api: ReportingApi, metric: str, **params: str) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"/v1/metrics/{metric}", params={"period": "all", "site": REMOTE, **params}, headers=ministry()
    )
    assert response.status_code == 200, response.text
    return [
        {k: v for k, v in row.items() if k not in ("period", "period_start")}
        for row in response.json()["rows"]
    ]


async def test_a_summary_of_an_earlier_producer_aggregates_as_before(national: ReportingApi) -> None:
    await _consume(national, _earlier_producer(DAY, 1))

    (m3,) = await _figures(national, "M3")
    assert m3["figures"] == {
        "visitors": 3,
        "visitors_walk_in": 0,
        "visitors_online": 0,
        "visitors_mpp_digital": 0,
    }
    (m4,) = await _figures(national, "M4")
    assert (m4["figures"]["tickets_issued"], m4["figures"]["tickets_transferred_in"]) == (2, 0)
    (m5,) = await _figures(national, "M5")
    # Every issued permit counts as having an SLA outcome; the rejection does not.
    assert (m5["figures"]["applications_with_sla_outcome"], m5["figures"]["applications_rejected"]) == (2, 1)
    assert m5["figures"]["mean_working_days"] is None
    (m7,) = await _figures(national, "M7")
    assert (m7["figures"]["received"], m7["figures"]["anonymous"], m7["figures"]["resolved"]) == (2, 0, 1)
    # Complaints of such a summary are kept per agency: none under the service type.
    (by_type,) = await _figures(national, "M7", service_type="dpmptsp.nib")
    assert by_type["figures"]["received"] == 0
    (m9,) = await _figures(national, "M9")
    assert (m9["figures"]["priority_served"], m9["figures"]["priority_issued"]) == (1, 0)
    (d1,) = await _figures(national, "D1")
    assert (d1["figures"]["count"], d1["figures"]["median_seconds"]) == (2, 69)
    # By hour of day: the visits it always carried, no tickets or durations.
    assert [(r["hour"], r["figures"]) for r in await _figures(national, "M3", group_by="hour")] == [
        (9, {"visitors": 3})
    ]
    assert await _figures(national, "M4", group_by="hour") == []
    assert await _figures(national, "D1", group_by="hour") == []

    # Republished by an upgraded site: the new revision replaces it with every figure.
    await _consume(national, _with_every_figure(DAY, 2))
    (m3,) = await _figures(national, "M3")
    assert m3["figures"] == {
        "visitors": 3,
        "visitors_walk_in": 2,
        "visitors_online": 1,
        "visitors_mpp_digital": 0,
    }
    (m4,) = await _figures(national, "M4")
    assert m4["figures"]["tickets_transferred_in"] == 1
    (m5,) = await _figures(national, "M5")
    assert m5["figures"]["applications_with_sla_outcome"] == 1
    (m8,) = await _figures(national, "M8")
    assert (m8["figures"]["applications_walk_in"], m8["figures"]["applications_mpp_digital"]) == (1, 1)
    (by_type,) = await _figures(national, "M7", service_type="dpmptsp.nib")
    assert (by_type["figures"]["received"], by_type["figures"]["anonymous"]) == (2, 1)
    (m9,) = await _figures(national, "M9")
    assert m9["figures"]["priority_issued_by_group"]["anak"] == 1
    assert [
        (r["hour"], r["figures"]["tickets_issued"]) for r in await _figures(national, "M4", group_by="hour")
    ] == [(9, 2)]
    (d1_hour,) = await _figures(national, "D1", group_by="hour")
    assert (d1_hour["hour"], d1_hour["figures"]["count"], d1_hour["figures"]["median_seconds"]) == (9, 2, 69)

    # And an earlier producer's revision after it (a site rolled back) takes the hours away again.
    await _consume(national, _earlier_producer(DAY, 3))
    assert await _figures(national, "D1", group_by="hour") == []
    assert await _figures(national, "M4", group_by="hour") == []
    (m4,) = await _figures(national, "M4")
    assert m4["figures"]["tickets_transferred_in"] == 0
