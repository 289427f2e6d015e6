"""The SKM survey page in a real headless Chromium, sized like a phone: a citizen whose service was just
completed taps an answer for each of the nine elements and sends them; the answer is recorded once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from playwright.async_api import Browser, async_playwright, expect

from mpp.queue.app import create_app
from mpp.queue.config import QueueSettings
from tests.integration.queue.harness import KTP, SECRET, SITE, kiosk, officer
from tests.support.board import serving

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
SHOWN_MS = 15_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def completed_survey_url(api: httpx.AsyncClient) -> str:
    visit = await api.post("/v1/visits", json={"service_types": [KTP]}, headers=kiosk())
    assert visit.status_code == 201, visit.text
    assert (await api.post("/v1/counters/loket-01/open", headers=officer())).status_code == 200
    called = (await api.post("/v1/counters/loket-01/call-next", headers=officer())).json()["ticket"]
    assert (await api.post(f"/v1/tickets/{called['id']}/start", headers=officer())).status_code == 200
    done = await api.post(f"/v1/tickets/{called['id']}/complete", headers=officer())
    assert done.status_code == 200, done.text
    url: str = done.json()["survey"]["url"]
    return url


async def test_a_citizen_answers_the_survey_on_a_phone(
    browser: Browser, fresh_database: Callable[[], Awaitable[str]]
) -> None:
    settings = QueueSettings(
        database_url=await fresh_database(),
        relay_enabled=False,
        consumer_enabled=False,
        jwt_hs256_secret=SECRET,
        site=SITE,
        log_json=False,
        log_level="WARNING",
        appointment_sweep_seconds=0,
    )
    async with serving(create_app(settings)) as base, httpx.AsyncClient(base_url=base, timeout=30) as api:
        url = await completed_survey_url(api)
        page = await browser.new_page(viewport={"width": 390, "height": 844}, locale="id-ID")
        await page.goto(f"{base}{url}?kiosk=1")

        await expect(page.locator("#service")).to_contain_text("Perekaman KTP", timeout=SHOWN_MS)
        send = page.locator("#send")
        await expect(send).to_be_disabled()
        for n in range(1, 10):
            await page.locator(f'[data-element="U{n}"] button[data-value="{1 + n % 4}"]').click()
        await page.locator('[data-profile="age_band"] button[data-value="26_35"]').click()
        await expect(send).to_be_enabled()
        await send.click()

        await expect(page.locator("#status")).to_have_text("Terima kasih atas penilaian Anda")
        await page.reload()
        await expect(page.locator("#status")).to_contain_text("sudah diisi", timeout=SHOWN_MS)
        token = url.removeprefix("/survei/")
        again = await api.post(f"/v1/public/surveys/{token}", json={"scores": {"U1": 4}})
        assert again.status_code == 409
        assert (await api.get(f"/v1/public/surveys/{token}")).json()["state"] == "answered"
