"""An application submitted at a licensing counter reaches the reporting figures exactly once, through a
real broker, while both services are killed with SIGKILL on the way."""

from __future__ import annotations

import asyncio
import functools
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from mpp.contracts.masterdata import load_demo_catalogue
from mpp.contracts.nik import generate_test_nik
from mpp.kit.auth import issue_token
from tests.support.kafka_tools import wait_for
from tests.support.processes import ROOT, ServiceProcess

pytestmark = pytest.mark.e2e

APPLICATIONS = 20_000
APPROVE_EVERY = 10
CONCURRENCY = 24
SECRET = "e2e-" + secrets.token_hex(16)
# The path to an issued permit in each demo licensing workflow, with the role that takes each step.
PATH_TO_PERMIT = {
    "izin-usaha-sektor": [("verify", "officer"), ("approve", "supervisor"), ("issue", "officer")],
    "pbg": [
        ("verify", "officer"),
        ("approve", "supervisor"),
        ("confirm_payment", "officer"),
        ("issue", "supervisor"),
    ],
    "izin-penelitian": [("verify", "officer"), ("issue", "supervisor")],
}


@dataclass
class Platform:
    licensing: ServiceProcess
    reporting: ServiceProcess
    site: str
    ministry: str
    tokens: dict[tuple[str, str], str]  # (agency, role) -> token
    services: list[tuple[str, str, str]]  # (service type code, agency, workflow)

    async def totals(self, client: httpx.AsyncClient) -> dict[str, int]:
        r = await client.get(
            f"{self.reporting.url}/v1/figures/totals",
            params={"site": self.site},
            headers={"Authorization": f"Bearer {self.ministry}"},
        )
        r.raise_for_status()
        return dict(r.json()["totals"])


@pytest.fixture
async def platform(
    kafka_bootstrap: str, fresh_database: Callable[[], Awaitable[str]]
) -> AsyncIterator[Platform]:
    catalogue = load_demo_catalogue()
    # A site code of this run's own: the shared test broker may hold other runs' events on the same topics,
    # and the figures are read for this site only.
    site = f"mpp-e2e-{secrets.token_hex(4)}"
    logs = ROOT / "artifacts" / "e2e-logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "MPP_JWT_HS256_SECRET": SECRET}
    licensing = ServiceProcess(
        "licensing", {**common, "MPP_LICENSING_DATABASE_URL": await fresh_database()}, logs
    )
    reporting = ServiceProcess(
        "reporting", {**common, "MPP_REPORTING_DATABASE_URL": await fresh_database()}, logs
    )
    # Licensing service types with a workflow; the others are refused at submit.
    services = [
        (st.code, st.agency, st.workflow)
        for st in catalogue.service_types
        if st.licensing and st.workflow is not None
    ]
    tokens = {
        (agency, role): issue_token(
            SECRET, subject=f"{role}-{agency}", roles=[role], agency=agency, site=site
        )
        for _code, agency, _workflow in services
        for role in ("officer", "supervisor")
    }
    try:
        licensing.start()
        reporting.start()
        await licensing.wait_ready()
        await reporting.wait_ready()
        yield Platform(
            licensing,
            reporting,
            site,
            issue_token(SECRET, subject="kementerian", roles=["ministry"]),
            tokens,
            services,
        )
    finally:
        for proc in (licensing, reporting):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()


@dataclass
class Ledger:
    """What the client saw acknowledged: the ground truth for the figures."""

    submitted: dict[str, str] = field(default_factory=dict)  # application id -> service type
    approved: dict[str, str] = field(default_factory=dict)
    retries: int = 0


async def submit_with_retries(
    client: httpx.AsyncClient, platform: Platform, ledger: Ledger, rng: random.Random, n: int
) -> None:
    code, agency, workflow = platform.services[n % len(platform.services)]
    auth = {"Authorization": f"Bearer {platform.tokens[(agency, 'officer')]}"}
    key = f"e2e-{n}-{secrets.token_hex(6)}"
    body = {
        "service_type": code,
        "channel": "walk_in" if n % 3 else "online",
        "applicant": {"nik": generate_test_nik(rng), "name": "Warga Uji"},
        "documents": [
            {
                "requirement": "ktp",
                "file_name": "ktp.pdf",
                "content_type": "application/pdf",
                "size_bytes": 1000,
            }
        ],
    }
    app_id = await _retry(
        ledger,
        lambda: client.post(
            f"{platform.licensing.url}/v1/applications", json=body, headers={**auth, "Idempotency-Key": key}
        ),
        {201},
    )
    ledger.submitted[app_id] = code
    if n % APPROVE_EVERY == 0:
        for action, role in PATH_TO_PERMIT[workflow]:
            headers = {"Authorization": f"Bearer {platform.tokens[(agency, role)]}"}
            url = f"{platform.licensing.url}/v1/applications/{app_id}/actions/{action}"
            # A retried action may find it already taken (409): both mean "taken once".
            await _retry(ledger, functools.partial(client.post, url, headers=headers), {200, 409})
        ledger.approved[app_id] = code


async def _retry(
    ledger: Ledger, call: Callable[[], Awaitable[httpx.Response]], ok: set[int], attempts: int = 200
) -> str:
    for _ in range(attempts):
        try:
            r = await call()
        except httpx.HTTPError:
            ledger.retries += 1
            await asyncio.sleep(0.2)
            continue
        if r.status_code in ok:
            return str(r.json().get("id", ""))
        if r.status_code >= 500 or r.status_code == 503:
            ledger.retries += 1
            await asyncio.sleep(0.2)
            continue
        raise AssertionError(f"unexpected {r.status_code}: {r.text}")
    raise AssertionError("gave up after retries")


class TestApplicationsReachTheFiguresExactlyOnce:
    async def test_killing_licensing_and_reporting_mid_stream_loses_and_duplicates_nothing(
        self, platform: Platform
    ) -> None:
        ledger = Ledger()
        rng = random.Random(20261123)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(APPLICATIONS):
            queue.put_nowait(n)

        async def worker(client: httpx.AsyncClient) -> None:
            while True:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await submit_with_retries(client, platform, ledger, rng, n)

        async def chaos(client: httpx.AsyncClient) -> None:
            async def reporting_busy() -> bool:
                try:
                    return (await platform.totals(client)).get(
                        "applications_submitted", 0
                    ) >= APPLICATIONS // 5
                except httpx.HTTPError:
                    return False

            await wait_for(reporting_busy, timeout_s=600, interval_s=0.1, what="reporting to project a fifth")
            platform.reporting.kill9()
            platform.reporting.start()

            async def half_submitted() -> bool:
                return len(ledger.submitted) >= APPLICATIONS // 2

            await wait_for(half_submitted, timeout_s=600, interval_s=0.1, what="half the applications")
            platform.licensing.kill9()
            platform.licensing.start()
            await platform.licensing.wait_ready()
            await platform.reporting.wait_ready()

        limits = httpx.Limits(max_connections=CONCURRENCY + 4)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            chaos_task = asyncio.create_task(chaos(client))
            await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
            await chaos_task
            assert platform.reporting.starts == 2 and platform.licensing.starts == 2

            expected = {
                "applications_submitted": APPLICATIONS,
                "permits_issued": APPLICATIONS // APPROVE_EVERY,
            }
            assert len(ledger.submitted) == APPLICATIONS

            async def figures_complete() -> bool:
                totals = await platform.totals(client)
                return all(totals.get(k, 0) >= v for k, v in expected.items())

            await wait_for(figures_complete, timeout_s=300, interval_s=0.5, what="reporting to catch up")
            await asyncio.sleep(2)  # any duplicate still in flight would land now
            assert await platform.totals(client) == expected

            r = await client.get(
                f"{platform.reporting.url}/v1/figures/daily",
                params={"site": platform.site},
                headers={"Authorization": f"Bearer {platform.ministry}"},
            )
            by_service: Counter[tuple[str, str]] = Counter()
            for row in r.json()["rows"]:
                by_service[(row["service_type"], row["metric"])] += row["count"]
            assert by_service == Counter(
                {
                    **{
                        (c, "applications_submitted"): n
                        for c, n in Counter(ledger.submitted.values()).items()
                    },
                    **{(c, "permits_issued"): n for c, n in Counter(ledger.approved.values()).items()},
                }
            )

        assert platform.licensing.terminate() is not None
        assert platform.reporting.terminate() is not None
