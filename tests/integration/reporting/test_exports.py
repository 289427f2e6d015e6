"""CSV and XLSX exports: every cell equals the JSON API's figure for the same query and caller, read back
with ``csv`` and openpyxl; scopes as in the JSON API; formula injection neutralised; bad requests 4xx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.contracts.events.queue import TicketIssuedV1
from mpp.kit.auth import Role
from mpp.kit.consumer import ReceivedEvent
from mpp.reporting.api.messaging import projector
from mpp.reporting.domain.metrics import METRICS
from mpp.reporting.domain.sla import catalogue_sla
from mpp.reporting.export.labels import header
from tests.integration.reporting.harness import SITE, ReportingApi, bearer, ministry, running_reporting
from tests.support.exports import as_csv_text, as_xlsx_value, read_csv, read_xlsx, walk
from tests.unit.reporting.builders import SiteInfo, catalogue_for, generate, sites_for

pytestmark = pytest.mark.integration

DAYS = [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 9)]
SITES = sites_for("eks")
A, B, C = (s.code for s in SITES)
RANGE = {"from": "2026-03-01", "to": "2026-03-31"}


def _operator(site: str) -> dict[str, str]:
    return bearer(roles=[Role.OPERATOR], site=site, subject="operator-eks")


def _officer(agency: str, site: str) -> dict[str, str]:
    return bearer(roles=[Role.OFFICER], agency=agency, site=site, subject="officer-eks")


async def _project(api: ReportingApi, sites: tuple[SiteInfo, ...], envelopes: list[Envelope]) -> None:
    zones = {s.code: s.tz for s in sites}

    def site_tz(site: str) -> ZoneInfo:
        return zones[site]

    handler = projector(site_tz, catalogue_sla(api.app.state.reporting.geography.catalogue, site_tz))
    batch = [ReceivedEvent(envelope=e, topic=e.topic, partition=0, offset=i) for i, e in enumerate(envelopes)]
    async with api.sessions() as session, session.begin():
        await handler(session, batch)


@pytest.fixture
async def api(fresh_database: Callable[[], Awaitable[str]], tmp_path: Path) -> AsyncIterator[ReportingApi]:
    catalogue = catalogue_for(SITES)
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue.model_dump_json())
    async with running_reporting(await fresh_database(), catalogue_file=catalogue_file) as reporting:
        await _project(reporting, SITES, generate(5, SITES, DAYS, 20, catalogue).envelopes)
        yield reporting


async def _json_rows(api: ReportingApi, metric: str, headers: dict[str, str], params: dict[str, str]) -> Any:
    response = await api.client.get(f"/v1/metrics/{metric}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


async def _download(
    api: ReportingApi, table: str, kind: str, headers: dict[str, str], params: dict[str, str]
) -> Any:
    response = await api.client.get(f"/v1/exports/{table}.{kind}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=") and disposition.endswith(f'.{kind}"')
    if kind == "csv":
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        return read_csv(response.content), disposition
    (sheet,) = read_xlsx(response.content).values()
    return sheet, disposition


def _group_header(group_by: str | None) -> str | None:
    return {
        None: None,
        "site": "Kode MPP",
        "agency": "Instansi",
        "service_type": "Jenis layanan",
        "hour": "Jam",
        "weekday": "Hari (1 = Senin)",
        "province": "Kode provinsi",
    }[group_by]


def _assert_equal_cells(
    rows: list[dict[str, Any]], sheet: list[list[Any]], group_by: str | None, kind: str
) -> int:
    """Every figure of every JSON row sits in the matching cell; returns the cells compared."""
    head, *body = sheet
    assert len(body) == len(rows)
    col = {h: i for i, h in enumerate(head)}
    paths = {p for r in rows for p, _ in walk(r["figures"])}
    assert len(head) == 2 + (0 if group_by is None else 1) + (1 if "Nama" in col else 0) + len(paths)
    compared = 0
    for row, cells in zip(rows, body, strict=True):
        expected_lead: list[Any] = [row["period"], row["period_start"]]
        if group_by is not None:
            expected_lead.append(row[group_by])
            assert cells[col[_group_header(group_by)]] == (
                as_csv_text(row[group_by]) if kind == "csv" else row[group_by]
            )
        assert cells[col["Periode"]] == row["period"]
        assert cells[col["Awal periode"]] == (
            as_csv_text(row["period_start"]) if kind == "csv" else row["period_start"]
        )
        expected = dict(walk(row["figures"]))
        for path in paths:
            value = expected.get(path, 0 if path.split(".")[0] not in ("elements",) and "." in path else None)
            cell = cells[col[header(path)]]
            if kind == "csv":
                assert cell == as_csv_text(value), (path, cell, value)
            else:
                assert cell == as_xlsx_value(value), (path, cell, value)
                if isinstance(value, float):
                    assert isinstance(cell, float)
            compared += 1
    return compared


QUERIES: list[tuple[str, dict[str, str]]] = [
    (m.id, q)
    for m in METRICS
    for q in (
        {"period": "day", "group_by": "site"},
        {"period": "week", "group_by": "service_type"},
        {"period": "month", "group_by": "agency"},
        {"period": "all", "group_by": "province"},
        *([{"period": "all", "group_by": "hour"}] if m.id in ("M3", "M4", "D1", "D2") else []),
        {"period": "all", "group_by": "weekday"},
        {"period": "month"},
    )
]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_every_metric_export_equals_the_json_api_cell_by_cell(api: ReportingApi, kind: str) -> None:
    compared = 0
    for metric, query in QUERIES:
        params = {**query, **RANGE}
        rows = await _json_rows(api, metric, ministry(), params)
        assert rows, (metric, query)
        sheet, disposition = await _download(api, f"metric-{metric}", kind, ministry(), params)
        assert f"metric-{metric}_nasional_2026-03-01_sd_2026-03-31" in disposition
        compared += _assert_equal_cells(rows, sheet, query.get("group_by"), kind)
    assert compared > 2000


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_the_overview_has_one_row_per_mpp_with_every_metric(api: ReportingApi, kind: str) -> None:
    sheet, disposition = await _download(api, "overview", kind, ministry(), RANGE)
    head, *body = sheet
    col = {h: i for i, h in enumerate(head)}

    assert [r[0] for r in body] == [A, B, C]
    assert body[0][col["Nama MPP"]] == "MPP Uji A"
    assert "overview_nasional_2026-03-01_sd_2026-03-31_seluruh-rentang" in disposition
    for metric in METRICS:
        rows = await _json_rows(api, metric.id, ministry(), {"period": "all", "group_by": "site", **RANGE})
        assert {r["site"] for r in rows} == {A, B, C}
        for row in rows:
            cells = body[[r[0] for r in body].index(row["site"])]
            for path, value in walk(row["figures"]):
                cell = cells[col[f"{metric.id} {header(path)}"]]
                assert cell == (as_csv_text(value) if kind == "csv" else as_xlsx_value(value)), (
                    metric.id,
                    path,
                )


@pytest.mark.parametrize("group_by", ["agency", "service_type", "province"])
async def test_the_overview_by_agency_service_type_or_province_equals_the_json_api(
    api: ReportingApi, group_by: str
) -> None:
    sheet, disposition = await _download(api, "overview", "csv", ministry(), {**RANGE, "group_by": group_by})
    head, *body = sheet
    col = {h: i for i, h in enumerate(head)}
    keys = [r[0] for r in body]

    assert f"per-{group_by}" in disposition
    assert keys == sorted(keys)
    assert len(keys) > 1
    for metric in METRICS:
        rows = await _json_rows(api, metric.id, ministry(), {"period": "all", "group_by": group_by, **RANGE})
        for row in rows:
            cells = body[keys.index(str(row[group_by]))]
            for path, value in walk(row["figures"]):
                assert cells[col[f"{metric.id} {header(path)}"]] == as_csv_text(value), (metric.id, path)


async def test_mpps_without_data_in_the_range_still_have_their_row(api: ReportingApi) -> None:
    quiet = {"from": "2026-03-20", "to": "2026-03-21"}
    sheet, _ = await _download(api, "overview", "xlsx", ministry(), quiet)
    head, *body = sheet
    col = {h: i for i, h in enumerate(head)}

    assert [r[0] for r in body] == [A, B, C]
    for metric in METRICS:
        for cells in body:
            (row,) = await _json_rows(
                api, metric.id, ministry(), {"period": "all", "site": cells[0], **quiet}
            )
            for path, value in walk(row["figures"]):
                assert cells[col[f"{metric.id} {header(path)}"]] == as_xlsx_value(value), (metric.id, path)
    assert body[0][col["M3 Pengunjung"]] == 0
    assert body[0][col["M1 Instansi terdaftar"]] > 0


async def test_the_named_tables_equal_their_metric_queries(api: ReportingApi) -> None:
    waiting, _ = await _download(api, "waiting-by-hour", "xlsx", ministry(), RANGE)
    d1 = await _json_rows(api, "D1", ministry(), {"period": "all", "group_by": "hour", **RANGE})
    _assert_equal_cells(d1, waiting, "hour", "xlsx")

    sla, _ = await _download(api, "sla-by-service-type", "csv", ministry(), RANGE)
    m5 = await _json_rows(api, "M5", ministry(), {"period": "all", "group_by": "service_type", **RANGE})
    _assert_equal_cells(m5, sla, "service_type", "csv")
    assert sla[0][sla[0].index("Kepatuhan SLA (%)")] == "Kepatuhan SLA (%)"

    ikm, _ = await _download(api, "ikm-elements", "xlsx", ministry(), {"site": A, **RANGE})
    (m6,) = await _json_rows(api, "M6", ministry(), {"period": "all", "site": A, **RANGE})
    head, *body = ikm
    assert head == [
        "Periode",
        "Awal periode",
        "Unsur",
        "Nama unsur",
        "Jumlah jawaban",
        "Jumlah nilai",
        "Indeks (25 x NRR)",
        "Mutu",
    ]
    assert [r[2] for r in body] == [*(f"U{i}" for i in range(1, 10)), "IKM"]
    for cells, element in zip(body, m6["figures"]["elements"], strict=False):
        assert cells[4:7] == [element["answers"], element["score_sum"], element["index"]]
    assert body[-1][4] == m6["figures"]["respondents"]
    assert body[-1][6:8] == [m6["figures"]["ikm"], m6["figures"]["grade"]]
    assert isinstance(body[-1][6], float)


async def test_an_operator_exports_their_own_site_only(api: ReportingApi) -> None:
    sheet, disposition = await _download(api, "overview", "csv", _operator(B), RANGE)
    assert [r[0] for r in sheet[1:]] == [B]
    assert f"overview_{B}_" in disposition

    refused = await api.client.get("/v1/exports/overview.csv", params={"site": A}, headers=_operator(B))
    assert refused.status_code == 403
    assert "MPP Anda sendiri" in refused.json()["error"]["message"]


async def test_an_officer_exports_their_agency_at_their_site(api: ReportingApi) -> None:
    headers = _officer("dpmptsp", C)
    params = {"period": "all", "group_by": "service_type", **RANGE}
    rows = await _json_rows(api, "M4", headers, params)
    sheet, disposition = await _download(api, "metric-M4", "xlsx", headers, params)

    assert {r["service_type"].partition(".")[0] for r in rows} == {"dpmptsp"}
    _assert_equal_cells(rows, sheet, "service_type", "xlsx")
    assert f"metric-M4_{C}_dpmptsp_" in disposition
    other = await api.client.get("/v1/exports/metric-M4.xlsx", params={"agency": "polres"}, headers=headers)
    assert other.status_code == 403


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/exports/nothing.csv", {}, 404),
        ("/v1/exports/metric-M99.xlsx", {}, 404),
        ("/v1/exports/metric-M6.csv", {"group_by": "hour"}, 422),
        ("/v1/exports/overview.csv", {"group_by": "hour"}, 422),
        ("/v1/exports/waiting-by-hour.csv", {"group_by": "site"}, 422),
        ("/v1/exports/metric-M4.csv", {"period": "fortnight"}, 422),
        ("/v1/exports/overview.xlsx", {"from": "2026-04-02", "to": "2026-04-01"}, 422),
    ],
)
async def test_bad_export_requests_are_4xx_with_an_indonesian_message(
    api: ReportingApi, path: str, params: dict[str, str], status: int
) -> None:
    response = await api.client.get(path, params=params, headers=ministry())

    assert response.status_code == status
    assert response.json()["error"]["message"]


def _ticket(service_type: str, agency: str, at: datetime, n: int) -> Envelope:
    payload = TicketIssuedV1.model_construct(
        visit_id=f"vis-inj-{n}",
        ticket_id=f"tik-inj-{n}",
        ticket_number=f"A-{n:03d}",
        service_type=service_type,
        agency=agency,
        priority_group=PriorityGroup.NONE,
        channel=Channel.WALK_IN,
        appointment_id=None,
        issued_at=at,
        transferred_from=None,
    )
    return Envelope.wrap(payload, producer="mpp.queue", agency="dpmptsp", site=SITE, subject=f"vis-inj-{n}")


@pytest.mark.parametrize("payload", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"])
async def test_formula_like_codes_from_events_are_neutralised(reporting: ReportingApi, payload: str) -> None:
    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    await reporting.project(
        [_ticket(payload, "dpmptsp", at, 1), _ticket("dpmptsp.pbg", "dpmptsp", at + timedelta(minutes=1), 2)]
    )
    params = {"period": "all", "group_by": "service_type", "site": SITE}
    rows = await _json_rows(reporting, "M4", ministry(), params)
    assert payload in {r["service_type"] for r in rows}

    csv_sheet, _ = await _download(reporting, "metric-M4", "csv", ministry(), params)
    xlsx_sheet, _ = await _download(reporting, "metric-M4", "xlsx", ministry(), params)
    for sheet in (csv_sheet, xlsx_sheet):
        codes = [r[2] for r in sheet[1:]]
        assert f"'{payload}" in codes
        assert payload not in codes
        assert not any(isinstance(c, str) and c.startswith(("=", "+", "-", "@")) for r in sheet for c in r)
