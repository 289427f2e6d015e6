"""The display board in a real headless Chromium: a call made through the API shows on the page, and the
page reconnects by itself after the queue service process restarts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.support.board import SECRET, call_one, isolated_catalogue
from tests.support.processes import ROOT, ServiceProcess

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous bounds for a loaded test machine; the page normally shows a call well within a second.
SHOWN_MS = 15_000
RECONNECT_MS = 60_000
SCREENSHOT = ROOT / "artifacts" / "board.png"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        # The system's Chromium (deploy/local/chromium.sh installs it); no browser is downloaded.
        launched = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_board_shows_calls_live_and_reconnects_after_a_restart(
    browser: Browser,
    kafka_bootstrap: str,
    fresh_database: Callable[[], Awaitable[str]],
    tmp_path: Path,
) -> None:
    site, catalogue = isolated_catalogue(tmp_path)
    logs = ROOT / "artifacts" / "e2e-logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue = ServiceProcess(
        "queue",
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "MPP_JWT_HS256_SECRET": SECRET,
            "MPP_QUEUE_DATABASE_URL": await fresh_database(),
            "MPP_QUEUE_CATALOGUE_FILE": str(catalogue),
            "MPP_QUEUE_SITE": site,
        },
        logs,
    )
    queue.start()
    try:
        await queue.wait_ready()
        page = await browser.new_page(viewport={"width": 1920, "height": 1080}, locale="id-ID")
        await page.goto(f"{queue.url}/board/{site}")
        await expect(page.locator("#current-counter")).to_have_text("BELUM ADA PANGGILAN")
        await expect(page.locator("#clock")).not_to_have_text("--.--")

        async with httpx.AsyncClient(base_url=queue.url, timeout=30) as api:
            first = await call_one(api, site, "loket-01")

        await expect(page.locator("#current-number")).to_have_text(first["number"], timeout=SHOWN_MS)
        await expect(page.locator("#current-counter")).to_have_text("LOKET 1")
        await expect(page.locator("#announcement")).to_have_text(
            "Nomor antrean A nol nol satu, silakan ke loket satu"
        )
        await expect(page.locator("#now")).to_have_class(re.compile(r"\bflash\b"))
        await expect(page.locator("#counters li[data-counter='loket-01'] .tnum")).to_have_text(
            first["number"]
        )
        await expect(page.locator("#status")).to_be_hidden()

        # The service goes away: the page says it is reconnecting, then comes back by itself.
        queue.terminate()
        await expect(page.locator("#status")).to_be_visible(timeout=RECONNECT_MS)
        await expect(page.locator("#status")).to_have_text("menghubungkan ulang…")
        queue.start()
        await queue.wait_ready()
        async with httpx.AsyncClient(base_url=queue.url, timeout=30) as api:
            second = await call_one(api, site, "loket-02")

        await expect(page.locator("#current-number")).to_have_text(second["number"], timeout=RECONNECT_MS)
        await expect(page.locator("#current-counter")).to_have_text("LOKET 2")
        await expect(page.locator("#status")).to_be_hidden(timeout=RECONNECT_MS)
        await expect(page.locator("#history li").first).to_contain_text(first["number"])
        await expect(page.locator("#history li").first).to_contain_text("LOKET 1")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        queue.terminate()
