"""The dashboard pages: their figures against hand-computed values and the JSON API, scopes, filters,
definitions and the late applications read model."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from mpp.kit.auth import Role
from mpp.kit.db import statement_hook
from tests.integration.reporting.dashboards import (
    BALIKPAPAN,
    BALIKPAPAN_IKM,
    BOGOR,
    MAR_2,
    SUKAMAJU,
    SUKAMAJU_IKM,
    SUKAMAJU_MEDIAN_WAITING,
    SUKAMAJU_TICKETS,
    SUKAMAJU_U3_INDEX,
    SUKAMAJU_VISITORS,
    dashboards,
    project,
    visit,
)
from tests.integration.reporting.harness import ReportingApi, bearer, ministry, officer, operator

pytestmark = pytest.mark.integration

RANGE = {"from": "2026-03-01", "to": "2026-04-30"}


def agency_wide(agency: str = "dpmptsp") -> dict[str, str]:
    return bearer(roles=[Role.SUPERVISOR], agency=agency, subject="agency-wide-1")


@pytest.fixture
async def api(fresh_database: Callable[[], Awaitable[str]], tmp_path: Path) -> AsyncIterator[ReportingApi]:
    async with dashboards(await fresh_database(), tmp_path) as reporting:
        yield reporting


class Cells(HTMLParser):
    """Every element carrying ``data-field``, by the id of its table (or ``cards``) and row key."""

    def __init__(self) -> None:
        super().__init__()
        self.table: str | None = None
        self.row: dict[str, str] = {}
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.figures: dict[tuple[str, str], str] = {}
        self.section: str = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.table = a.get("id", "")
        elif tag == "tr" and self.table is not None:
            self.row = {k: v for k, v in a.items() if k.startswith("data-")}
            self.rows.setdefault(self.table, []).append(self.row)
        elif tag == "section" and a.get("id", "").startswith("kartu-"):
            self.section = a["id"].removeprefix("kartu-")
        if "data-field" in a:
            if tag == "dd":
                self.figures[(a.get("data-metric", ""), a["data-field"])] = a.get("data-value", "")
            elif self.table is not None:
                self.row[a["data-field"]] = a.get("data-value", "")
        for key in ("data-site", "data-agency", "data-service-type"):
            if key in a and self.table is not None:
                self.row[key] = a[key]

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.table = None


async def page(api: ReportingApi, path: str, headers: dict[str, str], **params: str) -> Cells:
    response = await api.client.get(path, params={**RANGE, **params}, headers=headers)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    parsed = Cells()
    parsed.feed(response.text)
    return parsed


async def metric(
    api: ReportingApi, headers: dict[str, str], metric_id: str, **params: str
) -> list[dict[str, Any]]:
    response = await api.client.get(f"/v1/metrics/{metric_id}", params={**RANGE, **params}, headers=headers)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


def by(rows: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    return {r[key]: r for r in rows if key in r}


def num(value: str) -> float | None:
    return None if value == "" else float(value)


class TestNationalOverview:
    async def test_every_mpp_with_its_figures_and_the_totals(self, api: ReportingApi) -> None:
        cells = await page(api, "/dasbor/nasional", ministry())
        rows = by(cells.rows["tabel-nasional"], "data-site")

        assert set(rows) == {SUKAMAJU, BOGOR, BALIKPAPAN}
        assert num(rows[SUKAMAJU]["M3.visitors"]) == SUKAMAJU_VISITORS
        assert num(rows[SUKAMAJU]["M4.tickets_issued"]) == SUKAMAJU_TICKETS
        assert num(rows[SUKAMAJU]["M6.ikm"]) == SUKAMAJU_IKM
        assert rows[SUKAMAJU]["M6.grade"] == "B"
        assert num(rows[SUKAMAJU]["D1.median_seconds"]) == SUKAMAJU_MEDIAN_WAITING
        assert num(rows[SUKAMAJU]["M5.sla_compliance_pct"]) == 50.0
        assert num(rows[BOGOR]["M3.visitors"]) == 1
        assert rows[BOGOR]["M6.ikm"] == ""
        assert num(rows[BALIKPAPAN]["M6.ikm"]) == BALIKPAPAN_IKM
        (totals,) = [r for r in cells.rows["tabel-nasional"] if "data-site" not in r and r]
        assert num(totals["M3.visitors"]) == 10
        assert num(totals["M4.tickets_issued"]) == 4

    async def test_a_site_missing_from_the_catalogue_is_listed_and_counted(self, api: ReportingApi) -> None:
        await project(api, [visit(MAR_2, "mpp-kota-lain")])

        cells = await page(api, "/dasbor/nasional", ministry())
        rows = by(cells.rows["tabel-nasional"], "data-site")
        assert num(rows["mpp-kota-lain"]["M3.visitors"]) == 1
        (totals,) = [r for r in cells.rows["tabel-nasional"] if "data-site" not in r and r]
        assert num(totals["M3.visitors"]) == 11
        regional = await page(api, "/dasbor/nasional", ministry(), province="32")
        assert "mpp-kota-lain" not in by(regional.rows["tabel-nasional"], "data-site")

    async def test_figures_equal_the_json_api(self, api: ReportingApi) -> None:
        cells = await page(api, "/dasbor/nasional", ministry())
        rows = by(cells.rows["tabel-nasional"], "data-site")

        for metric_id, field in (("M3", "visitors"), ("M6", "ikm"), ("D1", "median_seconds")):
            for row in await metric(api, ministry(), metric_id, period="all", group_by="site"):
                shown = rows[row["site"]][f"{metric_id}.{field}"]
                assert num(shown) == row["figures"][field], (metric_id, row["site"])

    async def test_ranked_by_ikm_then_by_waiting_time(self, api: ReportingApi) -> None:
        cells = await page(api, "/dasbor/nasional", ministry())
        ranked = [(r["data-site"], r["rank"]) for r in cells.rows["tabel-nasional"] if "data-site" in r]
        assert ranked == [(BALIKPAPAN, "1"), (SUKAMAJU, "2"), (BOGOR, "")]

        cells = await page(api, "/dasbor/nasional", ministry(), peringkat="tunggu")
        ranked = [(r["data-site"], r["rank"]) for r in cells.rows["tabel-nasional"] if "data-site" in r]
        assert ranked == [(BALIKPAPAN, "1"), (SUKAMAJU, "2"), (BOGOR, "")]

    async def test_the_province_and_kabkota_filters(self, api: ReportingApi) -> None:
        cells = await page(api, "/dasbor/nasional", ministry(), province="32")
        rows = by(cells.rows["tabel-nasional"], "data-site")
        assert set(rows) == {SUKAMAJU, BOGOR}
        (totals,) = [r for r in cells.rows["tabel-nasional"] if "data-site" not in r and r]
        assert num(totals["M3.visitors"]) == 6

        cells = await page(api, "/dasbor/nasional", ministry(), kabkota="3271")
        assert set(by(cells.rows["tabel-nasional"], "data-site")) == {BOGOR}

    async def test_the_period_changes_the_trend_and_the_range_the_figures(self, api: ReportingApi) -> None:
        monthly = await page(api, "/dasbor/nasional", ministry(), period="month")
        assert [r["M3.visitors"] for r in monthly.rows["tabel-tren"] if r] == ["8", "2"]

        daily = await page(api, "/dasbor/nasional", ministry(), period="day")
        assert [r["M3.visitors"] for r in daily.rows["tabel-tren"] if r] == ["7", "1", "2"]

        march = await page(api, "/dasbor/nasional", ministry(), **{"from": "2026-03-01", "to": "2026-03-31"})
        rows = by(march.rows["tabel-nasional"], "data-site")
        assert num(rows[SUKAMAJU]["M3.visitors"]) == 3

    async def test_an_empty_filter_form_is_no_filter_and_bad_dates_are_refused(
        self, api: ReportingApi
    ) -> None:
        cells = await page(api, "/dasbor/nasional", ministry(), province="", kabkota="", peringkat="")
        assert set(by(cells.rows["tabel-nasional"], "data-site")) == {SUKAMAJU, BOGOR, BALIKPAPAN}
        for params in ({"from": "2026-02-30"}, {"from": "2026-05-01", "to": "2026-04-30"}):
            response = await api.client.get("/dasbor/nasional", params=params, headers=ministry())
            assert response.status_code == 422
            assert "Tanggal" in response.text

    async def test_export_links_carry_the_query(self, api: ReportingApi) -> None:
        response = await api.client.get(
            "/dasbor/nasional", params={**RANGE, "province": "32"}, headers=ministry()
        )
        assert (
            '/v1/exports/overview.csv?from=2026-03-01&amp;to=2026-04-30&amp;period=month&amp;province=32"'
            in (response.text)
        )
        assert "/v1/exports/overview.xlsx?" in response.text

    async def test_only_the_ministry(self, api: ReportingApi) -> None:
        for headers in (operator(), officer("dpmptsp"), agency_wide()):
            response = await api.client.get("/dasbor/nasional", headers=headers)
            assert response.status_code == 403
            assert response.headers["content-type"].startswith("text/html")
            assert "Akses ditolak" in response.text


async def test_the_statements_of_a_page_do_not_grow_with_its_rows(api: ReportingApi) -> None:
    """One pass of queries per page: the national table of three MPPs reads as much as that of one."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def sent(statement: str) -> None:  # the reads PostgreSQL answers come straight from the driver
        statements.append(statement)

    engine = api.app.state.reporting.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    statement_hook.append(sent)
    try:
        counts = []
        for params in ({"kabkota": "3271"}, {}):
            statements.clear()
            cells = await page(api, "/dasbor/nasional", ministry(), **params)
            counts.append((len(by(cells.rows["tabel-nasional"], "data-site")), len(statements)))
        statements.clear()
        await page(api, "/dasbor/instansi/dpmptsp", ministry())
        per_agency = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
        statement_hook.remove(sent)

    (one, one_count), (three, three_count) = counts
    assert (one, three) == (1, 3)
    assert one_count == three_count
    assert per_agency < 40


class TestSitePage:
    async def test_every_metric_of_the_catalogue(self, api: ReportingApi) -> None:
        cells = await page(api, f"/dasbor/mpp/{SUKAMAJU}", operator())

        for metric_id in ("M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8", "M9", "M10", "D1", "D2", "D3"):
            assert any(m == metric_id for m, _ in cells.figures), metric_id
        assert num(cells.figures[("M3", "visitors")]) == SUKAMAJU_VISITORS
        assert num(cells.figures[("M6", "ikm")]) == SUKAMAJU_IKM
        assert num(cells.figures[("M10", "permits_issued")]) == 2
        assert num(cells.figures[("D1", "median_seconds")]) == SUKAMAJU_MEDIAN_WAITING

    async def test_the_cards_equal_the_json_overview(self, api: ReportingApi) -> None:
        cells = await page(api, f"/dasbor/mpp/{SUKAMAJU}", ministry())
        response = await api.client.get(
            "/v1/overview", params={**RANGE, "site": SUKAMAJU}, headers=ministry()
        )
        for m in response.json()["metrics"]:
            for field, value in m["figures"].items():
                if isinstance(value, dict | list) or field == "max_error_seconds":
                    continue
                shown = cells.figures[(m["id"], field)]
                expected = "" if value is None else str(value)
                assert shown == expected, (m["id"], field)

    async def test_ikm_elements_with_the_weakest_highlighted(self, api: ReportingApi) -> None:
        response = await api.client.get(f"/dasbor/mpp/{SUKAMAJU}", params=RANGE, headers=operator())
        cells = Cells()
        cells.feed(response.text)
        elements = by(cells.rows["tabel-ikm"], "data-element")
        assert len(elements) == 9
        assert num(elements["U3"]["index"]) == SUKAMAJU_U3_INDEX
        assert num(elements["U1"]["index"]) == 87.5
        assert re.search(r'<tr class="terlemah" data-element="U3">', response.text)
        assert response.text.count('class="terlemah"') == 1

    async def test_late_applications_listed_without_personal_data(self, api: ReportingApi) -> None:
        response = await api.client.get(f"/dasbor/mpp/{SUKAMAJU}", params=RANGE, headers=operator())
        cells = Cells()
        cells.feed(response.text)
        (late,) = cells.rows["tabel-terlambat"][1:]
        assert late == {"due_day": "2026-03-02", "finished_day": "2026-03-05", "days_late": "3"}
        assert "lic-2026-000101" in response.text
        assert "lic-2026-000102" not in response.text
        assert "lic-2026-000901" not in response.text
        assert 'id="jumlah-terlambat" data-value="1"' in response.text
        assert "applicant_ref" not in response.text and "cit-" not in response.text

    async def test_waiting_by_hour(self, api: ReportingApi) -> None:
        cells = await page(api, f"/dasbor/mpp/{SUKAMAJU}", operator())
        hours = [r for r in cells.rows["tabel-jam"] if r]
        assert hours == [
            {"data-hour": "9", "count": "2", "median_seconds": "309", "p90_seconds": "909"},
            {"data-hour": "10", "count": "1", "median_seconds": "69", "p90_seconds": "69"},
        ]
        for row in await metric(api, operator(), "D1", period="all", group_by="hour"):
            (shown,) = [h for h in hours if h["data-hour"] == str(row["hour"])]
            assert num(shown["median_seconds"]) == row["figures"]["median_seconds"]

    async def test_agencies_at_the_site(self, api: ReportingApi) -> None:
        cells = await page(api, f"/dasbor/mpp/{SUKAMAJU}", operator())
        agencies = by(cells.rows["tabel-instansi"], "data-agency")
        assert len(agencies) == 10
        assert num(agencies["dpmptsp"]["M4.tickets_issued"]) == 2
        assert num(agencies["polres"]["M4.tickets_issued"]) == 1
        assert num(agencies["dpmptsp"]["M6.ikm"]) == SUKAMAJU_IKM
        assert agencies["disdukcapil"]["M4.tickets_issued"] == ""

    async def test_links_to_definitions_and_the_monthly_report(self, api: ReportingApi) -> None:
        response = await api.client.get(f"/dasbor/mpp/{SUKAMAJU}", params=RANGE, headers=operator())
        for metric_id in ("M1", "M5", "M6", "D1", "D3"):
            assert f'href="/dasbor/definisi/{metric_id}"' in response.text
        assert f'href="/laporan/bulanan/{SUKAMAJU}/2026-04"' in response.text
        assert "/v1/exports/metric-M3.csv?from=2026-03-01&amp;to=2026-04-30&amp;period=month&amp;site=" in (
            response.text
        )

    async def test_another_site_or_agency_staff_are_refused(self, api: ReportingApi) -> None:
        for headers in (operator(BALIKPAPAN), officer("dpmptsp"), agency_wide()):
            response = await api.client.get(f"/dasbor/mpp/{SUKAMAJU}", headers=headers)
            assert response.status_code == 403, headers
            assert "text/html" in response.headers["content-type"]
            assert "SUKAMAJU" not in response.text.upper() or "Akses ditolak" in response.text

    async def test_an_unknown_site_is_404_for_the_ministry(self, api: ReportingApi) -> None:
        response = await api.client.get("/dasbor/mpp/mpp-kota-entah", headers=ministry())
        assert response.status_code == 404
        assert "MPP tidak dikenal" in response.text


class TestAgencyPages:
    async def test_an_officer_sees_their_agency_at_their_site(self, api: ReportingApi) -> None:
        cells = await page(api, f"/dasbor/mpp/{SUKAMAJU}/instansi/dpmptsp", officer("dpmptsp"))
        assert num(cells.figures[("M4", "tickets_issued")]) == 2
        assert num(cells.figures[("D1", "median_seconds")]) == 309
        services = by(cells.rows["tabel-layanan"], "data-service-type")
        assert num(services["dpmptsp.nib"]["M4.tickets_issued"]) == 2
        rows = await metric(api, officer("dpmptsp"), "M4", period="all")
        assert num(cells.figures[("M4", "tickets_issued")]) == rows[0]["figures"]["tickets_issued"]

    async def test_an_officer_cannot_see_another_agency_or_site(self, api: ReportingApi) -> None:
        for path in (f"/dasbor/mpp/{SUKAMAJU}/instansi/polres", f"/dasbor/mpp/{BALIKPAPAN}/instansi/dpmptsp"):
            response = await api.client.get(path, headers=officer("dpmptsp"))
            assert response.status_code == 403, path
            assert "instansi Anda sendiri" in response.text or "MPP Anda sendiri" in response.text

    async def test_an_agency_wide_user_sees_their_agency_at_every_site(self, api: ReportingApi) -> None:
        cells = await page(api, "/dasbor/instansi/dpmptsp", agency_wide())
        sites = by(cells.rows["tabel-mpp"], "data-site")
        assert set(sites) == {SUKAMAJU, BOGOR, BALIKPAPAN}
        assert num(sites[SUKAMAJU]["M4.tickets_issued"]) == 2
        assert num(sites[BALIKPAPAN]["M4.tickets_issued"]) == 1
        assert num(cells.figures[("M4", "tickets_issued")]) == 3
        # The other site's late application is theirs too, polres' figures are not.
        late = [r for r in cells.rows["tabel-terlambat"] if r]
        assert len(late) == 2
        json_rows = await metric(api, agency_wide(), "M4", period="all", group_by="site")
        assert {r["site"]: r["figures"]["tickets_issued"] for r in json_rows} == {SUKAMAJU: 2, BALIKPAPAN: 1}

    async def test_an_agency_wide_user_at_one_site_and_not_another_agency(self, api: ReportingApi) -> None:
        cells = await page(api, f"/dasbor/mpp/{BALIKPAPAN}/instansi/dpmptsp", agency_wide())
        assert num(cells.figures[("M6", "ikm")]) == BALIKPAPAN_IKM
        for path in ("/dasbor/instansi/polres", f"/dasbor/mpp/{SUKAMAJU}/instansi/polres"):
            response = await api.client.get(path, headers=agency_wide())
            assert response.status_code == 403, path
        refused = await api.client.get("/v1/metrics/M4", params={"agency": "polres"}, headers=agency_wide())
        assert refused.status_code == 403

    async def test_site_bound_staff_and_operators_do_not_get_the_cross_site_page(
        self, api: ReportingApi
    ) -> None:
        for headers in (officer("dpmptsp"), operator()):
            response = await api.client.get("/dasbor/instansi/dpmptsp", headers=headers)
            assert response.status_code == 403


class TestHomeAndDefinitions:
    @pytest.mark.parametrize(
        ("headers", "target"),
        [
            (ministry(), "/dasbor/nasional"),
            (operator(), f"/dasbor/mpp/{SUKAMAJU}"),
            (officer("polres"), f"/dasbor/mpp/{SUKAMAJU}/instansi/polres"),
            (agency_wide(), "/dasbor/instansi/dpmptsp"),
        ],
        ids=["ministry", "operator", "officer", "agency-wide"],
    )
    async def test_home_redirects_by_role(
        self, api: ReportingApi, headers: dict[str, str], target: str
    ) -> None:
        response = await api.client.get("/dasbor", headers=headers)
        assert response.status_code == 303
        assert response.headers["location"] == target

    async def test_definitions_in_indonesian(self, api: ReportingApi) -> None:
        response = await api.client.get("/dasbor/definisi", headers=officer("polres"))
        assert response.status_code == 200
        for metric_id in ("M1", "M6", "D3"):
            assert f'<section id="{metric_id}">' in response.text
        one = await api.client.get("/dasbor/definisi/m6", headers=operator())
        assert "Indeks Kepuasan Masyarakat" in one.text
        assert "25 x (NRR_1 + ... + NRR_9)" in one.text
        missing = await api.client.get("/dasbor/definisi/M99", headers=operator())
        assert missing.status_code == 404

    async def test_assets_are_served_by_the_service(self, api: ReportingApi) -> None:
        css = await api.client.get("/dasbor/aset/dasbor.css")
        js = await api.client.get("/dasbor/aset/dasbor.js")
        assert css.status_code == js.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert "sortBy" in js.text
        page_html = (await api.client.get("/dasbor/definisi", headers=ministry())).text
        assert not re.search(r'(src|href)="(https?:)?//', page_html)
