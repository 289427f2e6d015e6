"""The reporting dashboards in a real headless Chromium: sign-in, figures equal to the JSON API, sorting,
the text and province filters, period selection, scopes of an operator and an agency officer, and no
request leaving the service."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from mpp.kit.auth import Role, issue_token
from mpp.reporting.app import create_app
from mpp.reporting.config import ReportingSettings
from tests.e2e.test_board_browser import CHROMIUM, CHROMIUM_ARGS
from tests.integration.reporting.dashboards import (
    BALIKPAPAN,
    BOGOR,
    SUKAMAJU,
    SUKAMAJU_IKM,
    SUKAMAJU_VISITORS,
    catalogue,
    events,
    project,
)
from tests.integration.reporting.harness import SECRET, ReportingApi
from tests.support.board import serving
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "artifacts"
RANGE = "from=2026-03-01&to=2026-04-30"
SHOWN_MS = 15_000


def token(*roles: Role, site: str | None = None, agency: str | None = None) -> str:
    return issue_token(SECRET, subject="dasbor-uji", roles=list(roles), site=site, agency=agency)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def service(fresh_database: Callable[[], Awaitable[str]], tmp_path: Path) -> AsyncIterator[str]:
    path = tmp_path / "catalogue.json"
    path.write_text(catalogue().model_dump_json())
    settings = ReportingSettings(
        database_url=await fresh_database(),
        relay_enabled=False,
        consumer_enabled=False,
        jwt_hs256_secret=SECRET,
        log_json=False,
        log_level="WARNING",
        catalogue_file=path,
    )
    app = create_app(settings)
    async with serving(app) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            await project(ReportingApi(client, app.state.reporting.sessions, app), events())
        yield base


class Session:
    """One signed-in browser context, recording every request its pages make."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))

    async def sign_in(self, bearer: str, landing: str) -> None:
        await self.page.goto(f"{self.base}/dasbor")
        await expect(self.page).to_have_url(f"{self.base}/dasbor/masuk?next=/dasbor")
        await self.page.fill("#token", bearer)
        await self.page.click("button[type=submit]")
        await expect(self.page).to_have_url(f"{self.base}{landing}")

    def outside(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(self.base + "/")]


async def new_session(browser: Browser, base: str) -> Session:
    context = await browser.new_context(viewport={"width": 1440, "height": 1000}, locale="id-ID")
    return Session(await context.new_page(), base)


async def api_rows(base: str, metric: str, bearer: str, **params: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get(
            f"/v1/metrics/{metric}",
            params={"from": "2026-03-01", "to": "2026-04-30", **params},
            headers={"Authorization": f"Bearer {bearer}"},
        )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


async def site_order(page: Page) -> list[str]:
    await page.wait_for_load_state()
    cells = page.locator("#tabel-nasional tbody tr:visible td[data-site]")
    return [await c.get_attribute("data-site") or "" for c in await cells.all()]


async def test_the_national_overview_sorts_filters_and_matches_the_api(
    browser: Browser, service: str
) -> None:
    ministry = token(Role.MINISTRY)
    s = await new_session(browser, service)
    await s.sign_in(ministry, "/dasbor/nasional")
    await s.page.goto(f"{service}/dasbor/nasional?{RANGE}")

    visitors = s.page.locator(f'#tabel-nasional td[data-site="{SUKAMAJU}"] ~ td[data-field="M3.visitors"]')
    await expect(visitors).to_have_text(str(SUKAMAJU_VISITORS))
    ikm = s.page.locator(f'#tabel-nasional td[data-site="{SUKAMAJU}"] ~ td[data-field="M6.ikm"]')
    await expect(ikm).to_have_text(f"{SUKAMAJU_IKM:.2f}".replace(".", ","))
    for row in await api_rows(service, "M3", ministry, period="all", group_by="site"):
        cell = s.page.locator(f'#tabel-nasional td[data-site="{row["site"]}"] ~ td[data-field="M3.visitors"]')
        await expect(cell).to_have_attribute("data-value", str(row["figures"]["visitors"]))
    await expect(s.page.locator('#tabel-nasional tfoot td[data-field="M3.visitors"]')).to_have_text("10")
    ARTIFACTS.mkdir(exist_ok=True)
    await s.page.screenshot(path=str(ARTIFACTS / "dasbor-nasional.png"), full_page=True)

    # Ranked by IKM first; a click on the visitors' heading sorts by them, a second click reverses.
    assert await site_order(s.page) == [BALIKPAPAN, SUKAMAJU, BOGOR]
    heading = s.page.locator("#tabel-nasional thead th span", has_text="Pengunjung")
    await heading.click()
    assert await site_order(s.page) == [BOGOR, BALIKPAPAN, SUKAMAJU]
    await heading.click()
    assert await site_order(s.page) == [SUKAMAJU, BALIKPAPAN, BOGOR]

    # The text filter hides rows in the page.
    await s.page.fill("input[data-saring=tabel-nasional]", "bogor")
    assert await site_order(s.page) == [BOGOR]
    await s.page.fill("input[data-saring=tabel-nasional]", "")

    # The province filter: kab/kota choices follow it, and the table and totals narrow.
    await s.page.select_option("select[name=province]", "64")
    await expect(s.page.locator('select[name=kabkota] option[value="3271"]')).to_be_hidden()
    await s.page.click("#saring button[type=submit]")
    await expect(s.page).to_have_url(re.compile(r".*[?&]province=64(&|$)"))
    await expect(s.page.locator("#tabel-nasional tbody td[data-site]")).to_have_count(1)
    assert await site_order(s.page) == [BALIKPAPAN]
    await expect(s.page.locator('#tabel-nasional tfoot td[data-field="M3.visitors"]')).to_have_text("4")

    # Period selection: the trend by day has one row per day with visitors.
    await s.page.goto(f"{service}/dasbor/nasional?{RANGE}")
    await s.page.select_option("select[name=period]", "day")
    await s.page.click("#saring button[type=submit]")
    await expect(s.page).to_have_url(re.compile(r".*[?&]period=day(&|$)"))
    trend = s.page.locator('#tabel-tren td[data-field="M3.visitors"]')
    assert await trend.all_text_contents() == ["7", "1", "2"]
    # A shorter range changes the figures.
    await s.page.fill("input[name=to]", "2026-03-31")
    await s.page.click("#saring button[type=submit]")
    await expect(visitors).to_have_text("3")

    # The MPP page from its row: every card, the weakest IKM element highlighted, the late application.
    await s.page.goto(f"{service}/dasbor/nasional?{RANGE}")
    await s.page.click(f'#tabel-nasional td[data-site="{SUKAMAJU}"] a')
    await expect(s.page).to_have_url(re.compile(f".*/dasbor/mpp/{SUKAMAJU}\\?.*"))
    await expect(s.page.locator('#ringkasan dd[data-metric="M3"][data-field="visitors"]')).to_have_text(
        str(SUKAMAJU_VISITORS)
    )
    await expect(s.page.locator("#tabel-ikm tr.terlemah")).to_have_attribute("data-element", "U3")
    await expect(s.page.locator("#tabel-terlambat tbody tr")).to_have_count(1)
    await expect(s.page.locator("svg.grafik").first).to_be_visible()
    await s.page.screenshot(path=str(ARTIFACTS / "dasbor-mpp.png"), full_page=True)
    await s.page.click('a[href="/dasbor/definisi/M6"] >> nth=0')
    await expect(s.page.locator("h1")).to_contain_text("Indeks Kepuasan Masyarakat")

    assert s.outside() == [], "requests outside the service"
    assert len(s.requests) > 10


async def test_an_operator_and_an_agency_officer_see_only_their_own(browser: Browser, service: str) -> None:
    operator = await new_session(browser, service)
    await operator.sign_in(token(Role.OPERATOR, site=BALIKPAPAN), f"/dasbor/mpp/{BALIKPAPAN}")
    await operator.page.goto(f"{service}/dasbor/mpp/{BALIKPAPAN}?{RANGE}")
    await expect(
        operator.page.locator('#ringkasan dd[data-metric="M3"][data-field="visitors"]')
    ).to_have_text("4")
    response = await operator.page.goto(f"{service}/dasbor/mpp/{SUKAMAJU}?{RANGE}")
    assert response is not None and response.status == 403
    await expect(operator.page.locator(".pesan")).to_contain_text("MPP Anda sendiri")
    await expect(operator.page.locator("#ringkasan")).to_have_count(0)
    response = await operator.page.goto(f"{service}/dasbor/nasional?{RANGE}")
    assert response is not None and response.status == 403

    officer = await new_session(browser, service)
    landing = f"/dasbor/mpp/{SUKAMAJU}/instansi/dpmptsp"
    await officer.sign_in(token(Role.OFFICER, site=SUKAMAJU, agency="dpmptsp"), landing)
    await officer.page.goto(f"{service}{landing}?{RANGE}")
    await expect(
        officer.page.locator('#ringkasan dd[data-metric="M4"][data-field="tickets_issued"]')
    ).to_have_text("2")
    await officer.page.screenshot(path=str(ARTIFACTS / "dasbor-instansi.png"), full_page=True)
    for path in (
        f"/dasbor/mpp/{SUKAMAJU}/instansi/polres",
        f"/dasbor/mpp/{SUKAMAJU}",
        "/dasbor/instansi/dpmptsp",
    ):
        response = await officer.page.goto(f"{service}{path}?{RANGE}")
        assert response is not None and response.status == 403, path
        await expect(officer.page.locator("h1")).to_have_text("Akses ditolak")

    agency = await new_session(browser, service)
    await agency.sign_in(token(Role.SUPERVISOR, agency="dpmptsp"), "/dasbor/instansi/dpmptsp")
    await agency.page.goto(f"{service}/dasbor/instansi/dpmptsp?{RANGE}")
    sites = agency.page.locator("#tabel-mpp td[data-site]")
    await expect(sites).to_have_count(3)
    await expect(
        agency.page.locator('#ringkasan dd[data-metric="M4"][data-field="tickets_issued"]')
    ).to_have_text("3", timeout=SHOWN_MS)
    response = await agency.page.goto(f"{service}/dasbor/instansi/polres?{RANGE}")
    assert response is not None and response.status == 403

    for session in (operator, officer, agency):
        assert session.outside() == [], "requests outside the service"
