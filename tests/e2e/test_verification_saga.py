"""The NIK verification saga between licensing and identity, as real processes on the real broker and
PostgreSQL: applications submitted while identity is down wait in ``verifying_nik`` while licensing asks
again with the same request ids; once identity is back each one ends verified or rejected exactly once. A
civil registry declared unavailable is answered ``registry_unavailable``, and licensing keeps asking until
it gets a real answer."""

from __future__ import annotations

import asyncio
import random
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mpp.contracts.kafka import from_record
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.contracts.nik import generate_test_nik
from mpp.contracts.topics import LICENSING_APPLICATIONS
from mpp.identity.config import IdentitySettings
from mpp.identity.persistence.tables import access_log
from mpp.identity.seed import DECEASED_EVERY, FALLBACK_KABKOTA, synthetic_citizen
from mpp.kit.auth import issue_token
from mpp.kit.db import create_engine
from tests.support.kafka_tools import end_offsets, read_since, wait_for
from tests.support.processes import ROOT, ServiceProcess

pytestmark = pytest.mark.e2e

CITIZENS = 120
"""Seeded citizens; every DECEASED_EVERY-th is recorded as deceased, so identity refuses it."""
BATCH = 200
UNKNOWN = 20
"""Applications of the batch whose (well-formed) NIK the registry does not know."""
SECRET = "e2e-" + secrets.token_hex(16)
CAUGHT_UP = 100
"""Consumer lag (records) under which a service counts as caught up with the shared topics."""
INITIAL_STATE = "submitted"
"""The initial state of every demo licensing workflow."""
FAST_SAGA = {
    # Ask again after 2 s of silence (doubling up to 2 s), 0.5 s after a passing refusal; enough attempts
    # that no application stalls during the outages of these tests.
    "MPP_LICENSING_VERIFICATION_TIMEOUT_S": "2",
    "MPP_LICENSING_VERIFICATION_RETRY_BASE_S": "0.5",
    "MPP_LICENSING_VERIFICATION_RETRY_MAX_S": "2",
    "MPP_LICENSING_VERIFICATION_MAX_ATTEMPTS": "500",
    "MPP_LICENSING_VERIFICATION_SWEEP_INTERVAL_S": "0.5",
}


@dataclass
class Saga:
    bootstrap: str
    licensing: ServiceProcess
    identity: ServiceProcess
    identity_db: str
    niks: list[str]  # the seeded citizens' NIKs, citizen number n at index n - 1
    site: str
    tokens: dict[str, str]  # agency -> officer token
    services: list[tuple[str, str]]  # (service type code, agency)


@pytest.fixture
async def saga(kafka_bootstrap: str, fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[Saga]:
    catalogue = load_demo_catalogue()
    site = f"mpp-e2e-{secrets.token_hex(4)}"
    logs = ROOT / "artifacts" / "e2e-logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "MPP_JWT_HS256_SECRET": SECRET}
    run = secrets.token_hex(4)
    licensing = ServiceProcess(
        "licensing",
        {
            **common,
            **FAST_SAGA,
            "MPP_LICENSING_DATABASE_URL": await fresh_database(),
            "MPP_LICENSING_VERIFICATION_RESULTS_GROUP": f"mpp.licensing.verification-results.e2e-{run}",
        },
        logs,
    )
    identity_db = await fresh_database()
    identity = ServiceProcess(
        "identity",
        {
            **common,
            "MPP_IDENTITY_DATABASE_URL": identity_db,
            "MPP_IDENTITY_VERIFIER_GROUP": f"mpp.identity.verifier.e2e-{run}",
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
    home = IdentitySettings().site
    kabkota = next((s.kabkota for s in catalogue.sites if s.code == home), FALLBACK_KABKOTA)
    niks = [synthetic_citizen(n, site=home, kabkota=kabkota).nik for n in range(1, CITIZENS + 1)]
    services = [(st.code, st.agency) for st in catalogue.service_types if st.licensing and st.workflow]
    tokens = {
        agency: issue_token(SECRET, subject=f"officer-{agency}", roles=["officer"], agency=agency, site=site)
        for _code, agency in services
    }
    try:
        licensing.start()
        identity.start()
        await licensing.wait_ready()
        await identity.wait_ready()
        # Fresh consumer groups start at the beginning of the shared topics: let both catch up with
        # other runs' verification traffic first, so the outages below are what the tests measure.
        async with httpx.AsyncClient(timeout=10) as client:
            for proc, name in (
                (identity, "mpp_identity_consumer_lag"),
                (licensing, "mpp_licensing_consumer_lag"),
            ):

                async def caught_up(proc: ServiceProcess = proc, name: str = name) -> bool:
                    samples = await metric_samples(client, proc, name)
                    return bool(samples) and sum(samples) <= CAUGHT_UP

                await wait_for(caught_up, timeout_s=120, interval_s=0.5, what=f"{proc.name} to catch up")
        yield Saga(kafka_bootstrap, licensing, identity, identity_db, niks, site, tokens, services)
    finally:
        for proc in (licensing, identity):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()


@dataclass(frozen=True)
class Submitted:
    application_id: str
    agency: str
    expected: str  # the state it must end in


async def submit_all(client: httpx.AsyncClient, saga: Saga, niks: list[tuple[str, bool]]) -> list[Submitted]:
    """Submit one application per (NIK, verifiable), 16 at a time."""
    gate = asyncio.Semaphore(16)

    async def one(n: int, nik: str, ok: bool) -> Submitted:
        code, agency = saga.services[n % len(saga.services)]
        body = {
            "service_type": code,
            "channel": "walk_in",
            "applicant": {"nik": nik, "name": "Warga Uji"},
            "documents": [
                {
                    "requirement": "ktp",
                    "file_name": "ktp.pdf",
                    "content_type": "application/pdf",
                    "size_bytes": 1,
                }
            ],
        }
        async with gate:
            r = await client.post(
                f"{saga.licensing.url}/v1/applications",
                json=body,
                headers={"Authorization": f"Bearer {saga.tokens[agency]}"},
            )
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "verifying_nik"
        return Submitted(str(r.json()["id"]), agency, INITIAL_STATE if ok else "nik_rejected")

    return list(await asyncio.gather(*(one(n, nik, ok) for n, (nik, ok) in enumerate(niks))))


async def states(client: httpx.AsyncClient, saga: Saga, apps: list[Submitted]) -> dict[str, dict[str, Any]]:
    async def one(app: Submitted) -> tuple[str, dict[str, Any]]:
        r = await client.get(
            f"{saga.licensing.url}/v1/applications/{app.application_id}",
            headers={"Authorization": f"Bearer {saga.tokens[app.agency]}"},
        )
        r.raise_for_status()
        return app.application_id, r.json()

    return dict(await asyncio.gather(*(one(a) for a in apps)))


async def metric_samples(
    client: httpx.AsyncClient, process: ServiceProcess, name: str, **labels: str
) -> list[float]:
    """The values of a metric's samples with these labels, from the process's /metrics."""
    text = (await client.get(f"{process.url}/metrics")).text
    values = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            values.append(float(line.rsplit(" ", 1)[-1]))
    return values


async def metric(client: httpx.AsyncClient, process: ServiceProcess, name: str, **labels: str) -> float:
    """The sum of a counter's samples with these labels."""
    return sum(await metric_samples(client, process, name, **labels))


async def applications_submitted(saga: Saga, since: dict[int, int], ids: set[str]) -> Counter[str]:
    """How often ApplicationSubmitted of each of ``ids`` is on the licensing topic since ``since``."""
    seen: Counter[str] = Counter()
    for record in await read_since(saga.bootstrap, LICENSING_APPLICATIONS, since):
        env = from_record(record.value, record.headers)
        if env.type == "ApplicationSubmitted" and env.subject in ids:
            seen[env.subject] += 1
    return seen


async def access_log_lines(saga: Saga, case_ids: set[str]) -> list[tuple[str, str, int]]:
    """(case id, request id, lines) of identity's access log for these cases."""
    engine = create_engine(saga.identity_db, pool_size=1)
    try:
        query = (
            select(access_log.c.case_id, access_log.c.request_id, func.count())
            .where(access_log.c.case_id.in_(case_ids))
            .group_by(access_log.c.case_id, access_log.c.request_id)
        )
        async with engine.connect() as conn:
            return [(str(c), str(r), int(n)) for c, r, n in (await conn.execute(query)).all()]
    finally:
        await engine.dispose()


def answered_once(lines: list[tuple[str, str, int]], apps: list[Submitted], must_cover: set[str]) -> None:
    """Identity looked each request up once (one access-log line per request id), each application's NIK
    under one request id only, and every application of ``must_cover`` has its line."""
    per_case = Counter(case for case, _request, _n in lines)
    assert set(per_case) <= {a.application_id for a in apps}
    assert set(per_case.values()) == {1}
    assert {n for _case, _request, n in lines} == {1}
    assert must_cover <= set(per_case)


def still_waiting(views: dict[str, dict[str, Any]], attempts: int) -> set[str] | None:
    """The applications still verifying their NIK, once each of them has been asked ``attempts`` times;
    None while one has not. Applications already settled count as done: on a shared test broker another
    identity instance (a benchmark, another run) reads the same request topic and may answer first."""
    waiting = {i for i, v in views.items() if v["state"] == "verifying_nik"}
    if any(views[i]["nik_verification"]["attempts"] < attempts for i in waiting):
        return None
    return waiting


async def settle(client: httpx.AsyncClient, saga: Saga, apps: list[Submitted]) -> dict[str, dict[str, Any]]:
    """Wait until no application waits for its NIK any more; their final views."""
    final: dict[str, dict[str, Any]] = {}

    async def settled() -> bool:
        final.update(await states(client, saga, apps))
        return all(v["state"] not in ("verifying_nik", "nik_verification_stalled") for v in final.values())

    await wait_for(settled, timeout_s=90, interval_s=1, what="every application to leave verifying_nik")
    return final


async def exactly_once(saga: Saga, since: dict[int, int], verified: set[str]) -> None:
    """ApplicationSubmitted is on the topic once for each verified application, and for no other."""

    async def all_published() -> bool:
        return set(await applications_submitted(saga, since, verified)) == verified

    await wait_for(
        all_published, timeout_s=60, interval_s=1, what="ApplicationSubmitted of every verified one"
    )
    await asyncio.sleep(2)  # a duplicate still in flight would land now
    assert await applications_submitted(saga, since, verified) == Counter(dict.fromkeys(verified, 1))


class TestVerificationSaga:
    async def test_applications_submitted_while_identity_is_down_are_each_settled_once(
        self, saga: Saga
    ) -> None:
        rng = random.Random(20261124)
        known = set(saga.niks)
        unknown = [nik for nik in (generate_test_nik(rng) for _ in range(UNKNOWN)) if nik not in known]
        assert len(unknown) == UNKNOWN
        batch = [
            (saga.niks[n % CITIZENS], (n % CITIZENS + 1) % DECEASED_EVERY != 0)
            for n in range(BATCH - UNKNOWN)
        ] + [(nik, False) for nik in unknown]
        async with httpx.AsyncClient(timeout=30) as client:
            assert saga.identity.terminate() is not None
            since = await end_offsets(saga.bootstrap, LICENSING_APPLICATIONS)

            apps = await submit_all(client, saga, batch)

            # While identity is down nothing is answered; licensing asks again about every application,
            # with the same request id.
            waiting: set[str] = set()

            async def each_asked_again() -> bool:
                found = still_waiting(await states(client, saga, apps), attempts=3)
                waiting.update(found or ())
                return found is not None

            await wait_for(each_asked_again, timeout_s=60, interval_s=0.5, what="licensing to ask again")
            assert waiting, "another identity instance answered every request"
            asked_again = await metric(
                client, saga.licensing, "mpp_licensing_verification_sweep_total", outcome="asked_again"
            )
            assert asked_again >= 2 * len(waiting)

            saga.identity.start()
            await saga.identity.wait_ready()
            final = await settle(client, saga, apps)

            assert {a.application_id: final[a.application_id]["state"] for a in apps} == {
                a.application_id: a.expected for a in apps
            }
            verified = {a.application_id for a in apps if a.expected == INITIAL_STATE}
            assert len(verified) == sum(ok for _nik, ok in batch) > 0
            await exactly_once(saga, since, verified)

            # Identity answered each request once: one access-log line per request id and one request
            # id per application (nothing was refused for a passing reason here), however often
            # licensing asked; it skipped at least two repeats of each application that waited.
            lines = await access_log_lines(saga, {a.application_id for a in apps})
            answered_once(lines, apps, must_cover={a.application_id for a in apps})
            duplicates = await metric(client, saga.identity, "mpp_identity_verification_duplicates_total")
            assert duplicates >= 2 * len(waiting)

        assert saga.licensing.terminate() is not None
        assert saga.identity.terminate() is not None

    async def test_licensing_asks_again_until_the_registry_is_available(self, saga: Saga) -> None:
        batch = [(saga.niks[n], True) for n in range(40) if (n + 1) % DECEASED_EVERY != 0]
        async with httpx.AsyncClient(timeout=30) as client:
            assert saga.identity.terminate() is not None
            saga.identity.env["MPP_IDENTITY_REGISTRY_UNAVAILABLE"] = "true"
            saga.identity.start()
            await saga.identity.wait_ready()
            since = await end_offsets(saga.bootstrap, LICENSING_APPLICATIONS)

            apps = await submit_all(client, saga, batch)

            # Each answer is registry_unavailable: licensing asks again with a new request id each time.
            waiting: set[str] = set()

            async def refused_twice_each() -> bool:
                found = still_waiting(await states(client, saga, apps), attempts=3)
                waiting.update(found or ())
                return found is not None

            await wait_for(refused_twice_each, timeout_s=60, interval_s=0.5, what="passing refusals")
            assert waiting, "another identity instance answered every request"
            unavailable = await metric(
                client, saga.identity, "mpp_identity_verifications_total", outcome="registry_unavailable"
            )
            assert unavailable >= 2 * len(waiting)
            # Nothing was looked up while the registry was unavailable, so nothing was logged.
            assert await access_log_lines(saga, {a.application_id for a in apps}) == []

            assert saga.identity.terminate() is not None
            del saga.identity.env["MPP_IDENTITY_REGISTRY_UNAVAILABLE"]
            saga.identity.start()
            await saga.identity.wait_ready()
            final = await settle(client, saga, apps)

            assert {v["state"] for v in final.values()} == {INITIAL_STATE}
            await exactly_once(saga, since, {a.application_id for a in apps})
            lines = await access_log_lines(saga, {a.application_id for a in apps})
            answered_once(lines, apps, must_cover=waiting)

        assert saga.licensing.terminate() is not None
        assert saga.identity.terminate() is not None
