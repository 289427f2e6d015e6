"""The printable monthly report in a real headless Chromium: an operator signs in, the page shows their
MPP and month, prints to an A4 PDF, downloads the report's XLSX from its link, and the browser never
asks anything of another origin."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from playwright.async_api import Browser, Request, async_playwright, expect

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import Channel
from mpp.contracts.events.queue import VisitStartedV1
from mpp.kit.auth import Role, issue_token
from mpp.kit.consumer import ReceivedEvent
from mpp.reporting.api.messaging import projector
from mpp.reporting.app import create_app
from mpp.reporting.config import ReportingSettings
from tests.integration.reporting.harness import SECRET, SITE, site_tz
from tests.support.board import serving
from tests.support.exports import read_csv
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
ARTIFACTS = ROOT / "artifacts"
SHOWN_MS = 15_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def _visits() -> list[Envelope]:
    start = datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo("Asia/Jakarta")).astimezone(UTC)
    return [
        Envelope.wrap(
            VisitStartedV1(
                visit_id=f"vis-{n}",
                channel=Channel.ONLINE if n % 3 == 0 else Channel.WALK_IN,
                started_at=start + timedelta(days=n % 20, minutes=n),
            ),
            producer="mpp.queue",
            agency="dpmptsp",
            site=SITE,
            subject=f"vis-{n}",
        )
        for n in range(40)
    ]


async def test_an_operator_prints_the_monthly_report_and_downloads_its_xlsx(
    browser: Browser, fresh_database: Callable[[], Awaitable[str]]
) -> None:
    settings = ReportingSettings(
        database_url=await fresh_database(),
        relay_enabled=False,
        consumer_enabled=False,
        jwt_hs256_secret=SECRET,
        log_json=False,
        log_level="WARNING",
    )
    app = create_app(settings)
    async with serving(app) as base:
        batch = [
            ReceivedEvent(envelope=e, topic=e.topic, partition=0, offset=i) for i, e in enumerate(_visits())
        ]
        async with app.state.reporting.sessions() as session, session.begin():
            await projector(site_tz)(session, batch)

        context = await browser.new_context(accept_downloads=True, locale="id-ID")
        page = await context.new_page()
        requested: list[str] = []

        def remember(request: Request) -> None:
            requested.append(request.url)

        page.on("request", remember)
        report = f"/laporan/bulanan/{SITE}/2026-03"
        await page.goto(f"{base}{report}")
        # Without the cookie the page sends the browser to the sign-in form, which brings it back.
        await expect(page.locator("#token")).to_be_visible(timeout=SHOWN_MS)
        token = issue_token(SECRET, subject="operator-1", roles=[Role.OPERATOR], site=SITE)
        await page.locator("#token").fill(token)
        await page.locator("button[type=submit]").click()

        await expect(page.locator("header.kop")).to_contain_text("Mal Pelayanan Publik Kota Sukamaju")
        await expect(page.locator("header.kop")).to_contain_text("Maret 2026")
        await expect(page.locator("header.kop")).to_contain_text("Jawa Barat")
        assert page.url == f"{base}{report}"
        await expect(page.locator("#M3 tbody tr").first).to_contain_text("40")
        await expect(page.locator(".sementara")).to_have_count(0)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "laporan-bulanan.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
        pdf = ARTIFACTS / "laporan-bulanan.pdf"
        await page.emulate_media(media="print")
        await expect(page.locator("nav.tautan")).to_be_hidden()
        await page.pdf(path=str(pdf), format="A4", print_background=True, prefer_css_page_size=True)
        content = pdf.read_bytes()
        assert content.startswith(b"%PDF") and len(content) > 10_000
        # Each of the five sections starts on a page of its own.
        assert len(re.findall(rb"/Type\s*/Page\b(?!s)", content)) >= 5
        await page.emulate_media(media="screen")

        async with page.expect_download() as info:
            await page.get_by_role("link", name="Unduh laporan (XLSX)").click()
        download = await info.value
        assert download.suggested_filename == f"laporan-bulanan_{SITE}_2026-03.xlsx"
        saved = ARTIFACTS / download.suggested_filename
        await download.save_as(str(saved))
        workbook = openpyxl.load_workbook(io.BytesIO(saved.read_bytes()))
        assert workbook.sheetnames[0] == "Ringkasan metrik"
        daily = workbook["Pengunjung per hari"]
        assert sum(row[2] for row in daily.iter_rows(min_row=2, values_only=True)) == 40

        async with page.expect_download() as info:
            await page.get_by_role("link", name="Unduh laporan (CSV)").click()
        csv_download = await info.value
        assert csv_download.suggested_filename == f"laporan-bulanan_{SITE}_2026-03.csv"
        saved_csv = ARTIFACTS / csv_download.suggested_filename
        await csv_download.save_as(str(saved_csv))
        rows = read_csv(saved_csv.read_bytes())
        assert rows[0] == ["Bagian", "Baris", "Kolom", "Nilai"]
        assert ["Ringkasan metrik", "1", "Kode", "M1"] in rows

        await context.close()

    assert requested, "the page made no request at all"
    outside = [url for url in requested if not url.startswith(f"{base}/")]
    assert not outside, f"requests outside the service: {outside}"
