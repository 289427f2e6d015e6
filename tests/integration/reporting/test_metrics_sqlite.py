"""The metric read models on SQLite (the embedded default) give the same figures as on PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.queue import VisitStartedV1
from mpp.kit.consumer import ReceivedEvent
from mpp.reporting.api.messaging import projector
from mpp.reporting.domain.metrics import METRICS
from mpp.reporting.domain.sla import catalogue_sla
from tests.integration.reporting.harness import ReportingApi, ministry, running_reporting
from tests.unit.reporting.builders import SiteInfo, catalogue_for, generate, sites_for

pytestmark = pytest.mark.integration

DAYS = [date(2026, 4, 6), date(2026, 4, 7), date(2026, 4, 8)]


async def _project(api: ReportingApi, sites: tuple[SiteInfo, ...], envelopes: list[Envelope]) -> None:
    zones = {s.code: s.tz for s in sites}

    def site_tz(site: str) -> ZoneInfo:
        return zones[site]

    handler = projector(site_tz, catalogue_sla(api.app.state.reporting.geography.catalogue, site_tz))
    # Several batches, as the consumer delivers them.
    for first in range(0, len(envelopes), 700):
        batch = [
            ReceivedEvent(envelope=e, topic=e.topic, partition=0, offset=first + i)
            for i, e in enumerate(envelopes[first : first + 700])
        ]
        async with api.sessions() as session, session.begin():
            await handler(session, batch)


async def _every_figure(api: ReportingApi) -> dict[str, Any]:
    figures = {}
    for metric in METRICS:
        for params in ({"period": "day", "group_by": "site"}, {"period": "week", "group_by": "service_type"}):
            response = await api.client.get(f"/v1/metrics/{metric.id}", params=params, headers=ministry())
            assert response.status_code == 200, response.text
            figures[f"{metric.id} {params}"] = response.json()["rows"]
    return figures


async def test_sqlite_and_postgresql_give_the_same_figures(
    fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    sites = sites_for("lite")
    catalogue = catalogue_for(sites)
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue.model_dump_json())
    generated = generate(11, sites, DAYS, 40, catalogue)
    results = []
    for url in (f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}", await fresh_database()):
        async with running_reporting(url, catalogue_file=catalogue_file) as api:
            await _project(api, sites, generated.envelopes)
            results.append(await _every_figure(api))
    lite, pg = results

    assert lite == pg
    visits = Counter(e.site for e in generated.envelopes if isinstance(e.payload, VisitStartedV1))
    by_site = Counter[str]()
    for row in lite["M3 {'period': 'day', 'group_by': 'site'}"]:
        by_site[row["site"]] += row["figures"]["visitors"]
    assert by_site == visits
