"""An application submitted at a licensing counter has its NIK verified by the identity service and reaches
the reporting figures exactly once, through a real broker, while licensing, identity and reporting are
killed with SIGKILL on the way."""

from __future__ import annotations

import asyncio
import functools
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from mpp.contracts.masterdata import load_demo_catalogue
from mpp.identity.config import IdentitySettings
from mpp.identity.seed import DECEASED_EVERY, FALLBACK_KABKOTA, synthetic_citizen
from mpp.kit.auth import issue_token
from tests.support.kafka_tools import wait_for
from tests.support.processes import ROOT, ServiceProcess

# 20,000 applications through three processes that are each killed once: minutes, more on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

APPLICATIONS = 20_000
APPROVE_EVERY = 10
CONCURRENCY = 24
CITIZENS = 500
"""Synthetic citizens seeded in identity; applications reuse their NIKs cyclically. Every
DECEASED_EVERY-th is recorded as deceased, so its applications end refused (nik_rejected)."""
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


def citizen_number(n: int) -> int:
    """The seeded citizen who applies in application ``n``."""
    return n % CITIZENS + 1


def verifiable(n: int) -> bool:
    """Whether identity verifies the NIK of application ``n`` (its citizen is alive)."""
    return citizen_number(n) % DECEASED_EVERY != 0


@dataclass
class Platform:
    licensing: ServiceProcess
    identity: ServiceProcess
    reporting: ServiceProcess
    niks: list[str]  # the seeded citizens' NIKs, citizen number n at index n - 1
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
    run = secrets.token_hex(4)
    licensing = ServiceProcess(
        "licensing",
        {
            **common,
            "MPP_LICENSING_DATABASE_URL": await fresh_database(),
            # This run's own groups: the shared test broker may hold other runs' verification traffic.
            "MPP_LICENSING_VERIFICATION_RESULTS_GROUP": f"mpp.licensing.verification-results.e2e-{run}",
        },
        logs,
    )
    identity = ServiceProcess(
        "identity",
        {
            **common,
            "MPP_IDENTITY_DATABASE_URL": await fresh_database(),
            "MPP_IDENTITY_VERIFIER_GROUP": f"mpp.identity.verifier.e2e-{run}",
        },
        logs,
    )
    reporting = ServiceProcess(
        "reporting",
        {
            **common,
            "MPP_REPORTING_DATABASE_URL": await fresh_database(),
            "MPP_REPORTING_CONSUMER_GROUP": f"mpp.reporting.projector.e2e-{run}",
        },
        logs,
    )
    seeded = subprocess.run(
        [sys.executable, "-m", "mpp.identity.seed", "--count", str(CITIZENS)],
        cwd=ROOT,
        env=identity.env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr.decode()[-2000:]
    # The seed command registers its citizens in the kabupaten/kota of identity's default site.
    home = IdentitySettings().site
    kabkota = next((s.kabkota for s in catalogue.sites if s.code == home), FALLBACK_KABKOTA)
    niks = [synthetic_citizen(n, site=home, kabkota=kabkota).nik for n in range(1, CITIZENS + 1)]
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
        identity.start()
        reporting.start()
        await licensing.wait_ready()
        await identity.wait_ready()
        await reporting.wait_ready()
        yield Platform(
            licensing,
            identity,
            reporting,
            niks,
            site,
            issue_token(SECRET, subject="kementerian", roles=["ministry"]),
            tokens,
            services,
        )
    finally:
        for proc in (licensing, identity, reporting):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()


@dataclass
class Ledger:
    """What the client saw acknowledged: the ground truth for the figures."""

    submitted: dict[str, str] = field(default_factory=dict)  # application id -> service type
    verifiable: dict[str, str] = field(default_factory=dict)  # the submitted whose NIK identity verifies
    approved: dict[str, str] = field(default_factory=dict)
    retries: int = 0


async def submit_with_retries(client: httpx.AsyncClient, platform: Platform, ledger: Ledger, n: int) -> None:
    code, agency, workflow = platform.services[n % len(platform.services)]
    auth = {"Authorization": f"Bearer {platform.tokens[(agency, 'officer')]}"}
    key = f"e2e-{n}-{secrets.token_hex(6)}"
    body = {
        "service_type": code,
        "channel": "walk_in" if n % 3 else "online",
        "applicant": {"nik": platform.niks[citizen_number(n) - 1], "name": "Warga Uji"},
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
    if verifiable(n):
        ledger.verifiable[app_id] = code
    if n % APPROVE_EVERY == 0:
        state = await _wait_for_nik_verification(client, platform, ledger, app_id, auth)
        assert state == ("nik_rejected" if not verifiable(n) else PATH_TO_PERMIT_START), state
        if not verifiable(n):
            return
        for action, role in PATH_TO_PERMIT[workflow]:
            headers = {"Authorization": f"Bearer {platform.tokens[(agency, role)]}"}
            url = f"{platform.licensing.url}/v1/applications/{app_id}/actions/{action}"
            # A retried action may find it already taken (409): both mean "taken once".
            await _retry(ledger, functools.partial(client.post, url, headers=headers), {200, 409})
        ledger.approved[app_id] = code


PATH_TO_PERMIT_START = "submitted"
"""The initial state of every demo licensing workflow: where an application goes once its NIK is verified."""


async def _wait_for_nik_verification(
    client: httpx.AsyncClient, platform: Platform, ledger: Ledger, app_id: str, auth: dict[str, str]
) -> str:
    """Poll the application until it leaves ``verifying_nik``; its state then."""
    url = f"{platform.licensing.url}/v1/applications/{app_id}"
    for _ in range(3000):
        try:
            r = await client.get(url, headers=auth)
        except httpx.HTTPError:
            ledger.retries += 1
            await asyncio.sleep(0.2)
            continue
        if r.status_code == 200 and r.json()["state"] != "verifying_nik":
            return str(r.json()["state"])
        if r.status_code not in (200, 503) and r.status_code < 500:
            raise AssertionError(f"unexpected {r.status_code}: {r.text}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"application {app_id} still waits for its NIK verification")


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
    async def test_killing_licensing_identity_and_reporting_mid_stream_loses_and_duplicates_nothing(
        self, platform: Platform
    ) -> None:
        ledger = Ledger()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(APPLICATIONS):
            queue.put_nowait(n)

        async def worker(client: httpx.AsyncClient) -> None:
            while True:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await submit_with_retries(client, platform, ledger, n)

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

            async def a_third_submitted() -> bool:
                return len(ledger.submitted) >= APPLICATIONS // 3

            await wait_for(
                a_third_submitted, timeout_s=600, interval_s=0.1, what="a third of the applications"
            )
            # Licensing keeps taking applications while identity is down; they wait in verifying_nik.
            platform.identity.kill9()
            await asyncio.sleep(1)
            platform.identity.start()

            async def half_submitted() -> bool:
                return len(ledger.submitted) >= APPLICATIONS // 2

            await wait_for(half_submitted, timeout_s=600, interval_s=0.1, what="half the applications")
            platform.licensing.kill9()
            platform.licensing.start()
            await platform.licensing.wait_ready()
            await platform.identity.wait_ready()
            await platform.reporting.wait_ready()

        limits = httpx.Limits(max_connections=CONCURRENCY + 4)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            chaos_task = asyncio.create_task(chaos(client))
            await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
            await chaos_task
            assert platform.reporting.starts == platform.licensing.starts == platform.identity.starts == 2

            # Reporting counts ApplicationSubmitted, which licensing emits once identity verified the NIK.
            expected = {
                "applications_submitted": len(ledger.verifiable),
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
                        for c, n in Counter(ledger.verifiable.values()).items()
                    },
                    **{(c, "permits_issued"): n for c, n in Counter(ledger.approved.values()).items()},
                }
            )

            refused = len(ledger.submitted) - len(ledger.verifiable)
            assert refused == sum(not verifiable(n) for n in range(APPLICATIONS))

            async def rejected_total() -> int:
                total = 0
                for agency in {agency for _code, agency, _workflow in platform.services}:
                    r = await client.get(
                        f"{platform.licensing.url}/v1/applications",
                        params={"status": "nik_rejected", "size": 1},
                        headers={"Authorization": f"Bearer {platform.tokens[(agency, 'officer')]}"},
                    )
                    r.raise_for_status()
                    total += int(r.json()["total"])
                return total

            async def refusals_applied() -> bool:
                return await rejected_total() >= refused

            await wait_for(refusals_applied, timeout_s=120, interval_s=0.5, what="the refused NIKs")
            assert await rejected_total() == refused

        assert platform.licensing.terminate() is not None
        assert platform.identity.terminate() is not None
        assert platform.reporting.terminate() is not None
