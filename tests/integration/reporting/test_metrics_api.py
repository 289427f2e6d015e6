"""The metric API's edges: definitions, periods and roll-ups from projected events, scope refusals with
Indonesian messages, and bad queries answered with 4xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import Channel
from mpp.contracts.events.queue import TicketCalledV1, TicketIssuedV1, VisitStartedV1
from mpp.kit.auth import Role
from tests.integration.reporting.harness import (
    OTHER_SITE,
    SITE,
    ReportingApi,
    bearer,
    ministry,
    officer,
    operator,
)

pytestmark = pytest.mark.integration

# 09:00 WIB on Monday 30 March and Wednesday 1 April 2026 (two months, one ISO week, two quarters).
MAR_30 = datetime(2026, 3, 30, 2, 0, tzinfo=UTC)
APR_1 = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)


def _visit(at: datetime, site: str = SITE) -> Envelope:
    return Envelope.wrap(
        VisitStartedV1(visit_id="vis-1", channel=Channel.WALK_IN, started_at=at),
        producer="mpp.queue",
        agency="dpmptsp",
        site=site,
        subject="vis-1",
    )


def _ticket(at: datetime, agency: str, waiting: int) -> list[Envelope]:
    common: dict[str, Any] = {
        "visit_id": "vis-1",
        "ticket_id": "tik-1",
        "ticket_number": "A-001",
        "service_type": f"{agency}.layanan",
        "agency": agency,
    }
    issued = TicketIssuedV1(**common, channel=Channel.WALK_IN, issued_at=at)
    called = TicketCalledV1(
        **common,
        counter="loket-01",
        officer_ref="pet-1",
        called_at=at + timedelta(seconds=waiting),
        waiting_seconds=waiting,
    )
    return [
        Envelope.wrap(p, producer="mpp.queue", agency=agency, site=SITE, subject="vis-1")
        for p in (issued, called)
    ]


@pytest.fixture
async def api(reporting: ReportingApi) -> ReportingApi:
    await reporting.project(
        [
            _visit(MAR_30),
            _visit(MAR_30),
            _visit(APR_1),
            _visit(APR_1, OTHER_SITE),
            *_ticket(MAR_30, "dpmptsp", 300),
            *_ticket(APR_1, "dpmptsp", 900),
            *_ticket(APR_1, "polres", 60),
        ]
    )
    return reporting


async def _get(api: ReportingApi, path: str, headers: dict[str, str], **params: str) -> Any:
    return await api.client.get(path, params=params, headers=headers)


async def test_definitions_are_listed_in_indonesian(api: ReportingApi) -> None:
    response = await _get(api, "/v1/metrics", officer("polres"))

    assert response.status_code == 200
    by_id = {m["id"]: m for m in response.json()["metrics"]}
    assert by_id["M6"]["name"] == "Indeks Kepuasan Masyarakat (IKM)"
    assert "1/9" in by_id["M6"]["formula"]
    one = await _get(api, by_id["D1"]["href"], ministry())
    assert one.json()["key"] == "waiting-time"


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("day", {"2026-03-30": 2, "2026-04-01": 1}),
        ("week", {"2026-W14": 3}),
        ("month", {"2026-03": 2, "2026-04": 1}),
        ("quarter", {"2026-Q1": 2, "2026-Q2": 1}),
        ("semester", {"2026-S1": 3}),
        ("year", {"2026": 3}),
        ("all", {"all": 3}),
    ],
)
async def test_visitors_per_period(api: ReportingApi, period: str, expected: dict[str, int]) -> None:
    response = await _get(api, "/v1/metrics/visitors", operator(), period=period)

    assert response.status_code == 200, response.text
    assert {r["period"]: r["figures"]["visitors"] for r in response.json()["rows"]} == expected


async def test_the_ministry_rolls_up_by_province_and_an_operator_is_narrowed_to_their_site(
    api: ReportingApi,
) -> None:
    national = await _get(api, "/v1/metrics/M3", ministry(), period="all", group_by="province")
    own = await _get(api, "/v1/metrics/M3", operator(), period="all", group_by="site")

    # The demo catalogue knows SITE (province 32); OTHER_SITE is unknown and groups under "".
    assert {r["province"]: r["figures"]["visitors"] for r in national.json()["rows"]} == {"32": 3, "": 1}
    assert {r["site"]: r["figures"]["visitors"] for r in own.json()["rows"]} == {SITE: 3}
    assert own.json()["scope"]["site"] == SITE


async def test_visitors_by_weekday(api: ReportingApi) -> None:
    response = await _get(api, "/v1/metrics/M3", operator(), period="all", group_by="weekday")

    # 30 March 2026 is a Monday (1), 1 April a Wednesday (3).
    assert {r["weekday"]: r["figures"]["visitors"] for r in response.json()["rows"]} == {1: 2, 3: 1}


async def test_by_hour_only_figures_kept_per_hour(api: ReportingApi) -> None:
    tickets = await _get(api, "/v1/metrics/M4", operator(), period="all", group_by="hour")
    waiting = await _get(api, "/v1/metrics/D1", operator(), period="all", group_by="hour")

    assert [(r["hour"], r["figures"]) for r in tickets.json()["rows"]] == [(9, {"tickets_issued": 3})]
    (row,) = waiting.json()["rows"]
    assert (row["hour"], row["figures"]["count"], row["figures"]["median_seconds"]) == (9, 3, 309)
    assert "mean_seconds" not in row["figures"]


async def test_waiting_time_of_an_agency_for_its_officer(api: ReportingApi) -> None:
    response = await _get(api, "/v1/metrics/D1", officer("dpmptsp"), period="all")

    (row,) = response.json()["rows"]
    assert row["figures"]["count"] == 2
    assert row["figures"]["median_seconds"] == 309
    assert row["figures"]["p90_seconds"] == 909
    assert response.json()["scope"]["agency"] == "dpmptsp"


async def test_the_overview_of_a_site(api: ReportingApi) -> None:
    response = await _get(api, "/v1/overview", operator())

    assert response.status_code == 200
    body = response.json()
    assert body["level"] == "site"
    figures = {m["id"]: m["figures"] for m in body["metrics"]}
    assert figures["M3"]["visitors"] == 3
    assert figures["M4"]["tickets_issued"] == 3
    assert set(figures) == {*(f"M{i}" for i in range(1, 11)), "D1", "D2", "D3"}


@pytest.mark.parametrize(
    ("headers", "params", "message"),
    [
        (operator(), {"site": OTHER_SITE}, "MPP Anda sendiri"),
        (operator(), {"province": "64"}, "di luar wilayah MPP Anda"),
        (officer("polres"), {"agency": "dpmptsp"}, "instansi Anda sendiri"),
        (officer("polres"), {"site": OTHER_SITE}, "MPP Anda sendiri"),
        (bearer(roles=[Role.OFFICER], site=SITE), {}, "tidak memuat MPP atau instansi"),
    ],
)
async def test_filters_outside_the_scope_are_refused(
    api: ReportingApi, headers: dict[str, str], params: dict[str, str], message: str
) -> None:
    response = await _get(api, "/v1/metrics/M4", headers, **params)

    assert response.status_code == 403
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/metrics/M99", {}, 404),
        ("/v1/metrics/M6", {"group_by": "hour"}, 422),
        ("/v1/metrics/M4", {"period": "fortnight"}, 422),
        ("/v1/metrics/M4", {"from": "2026-04-02", "to": "2026-04-01"}, 422),
        ("/v1/metrics/M4", {"province": "Jawa Barat"}, 422),
        ("/v1/overview", {"from": "2026-13-01"}, 422),
    ],
)
async def test_bad_queries_are_4xx_with_a_message(
    api: ReportingApi, path: str, params: dict[str, str], status: int
) -> None:
    response = await _get(api, path, ministry(), **params)

    assert response.status_code == status
    assert response.json()["error"]["message"]


async def test_citizens_are_refused(api: ReportingApi) -> None:
    response = await _get(api, "/v1/metrics/M3", bearer(roles=[Role.CITIZEN]))

    assert response.status_code == 403
