"""``make run``: the whole platform on one machine with the embedded defaults.

Starts the local Kafka broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` points at one), runs every service
as its own process on SQLite files under ``.local/``, feeds a small stream of demo applications so the
figures move, prints the URLs, and on Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from mpp.contracts.events.common import Sex
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.identity.handlers import RegisterCitizen
from mpp.identity.seed import DECEASED_EVERY, FALLBACK_KABKOTA, synthetic_citizen
from mpp.kit.auth import issue_token

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
DEMO_CITIZENS = 200
SERVICES = {"identity": 8101, "licensing": 8102, "queue": 8103, "notification": 8104, "reporting": 8105}


def _kafka(*args: str) -> str:
    out = subprocess.run(
        ["bash", "deploy/local/kafka.sh", *args], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def _secret() -> str:
    path = LOCAL / "dev-jwt-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


async def _wait_ready(client: httpx.AsyncClient, name: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see .local/logs/{name}.log")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{name} did not become ready; see .local/logs/{name}.log")


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


async def _state_after_nik_check(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> str | None:
    """The application's state once identity has answered its NIK verification (None if it takes too long)."""
    for _ in range(100):
        r = await client.get(url, headers=headers)
        if r.status_code == 200 and r.json()["state"] != "verifying_nik":
            return str(r.json()["state"])
        await asyncio.sleep(0.1)
    return None


async def feed(stop: asyncio.Event, secret: str, site: str, rate_per_s: float = 2.0) -> None:
    """Submit demo applications at the licensing counters with the NIKs of the seeded demo citizens, and
    carry most of those identity verifies to an issued permit."""
    catalogue = load_demo_catalogue()
    kabkota = next((s.kabkota for s in catalogue.sites if s.code == site), FALLBACK_KABKOTA)
    niks = [synthetic_citizen(n, site=site, kabkota=kabkota).nik for n in range(1, DEMO_CITIZENS + 1)]
    # Licensing service types with a workflow; the others are refused at submit.
    services = [st for st in catalogue.service_types if st.licensing and st.workflow in PATH_TO_PERMIT]
    rng = random.Random(2026)
    tokens = {
        (st.agency, role): issue_token(
            secret, subject=f"demo-{role}-{st.agency}", roles=[role], agency=st.agency, site=site
        )
        for st in services
        for role in ("officer", "supervisor")
    }
    base = f"http://127.0.0.1:{SERVICES['licensing']}/v1/applications"
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            st = rng.choice(services)
            headers = {
                "Authorization": f"Bearer {tokens[(st.agency, 'officer')]}",
                "Idempotency-Key": secrets.token_hex(12),
            }
            body = {
                "service_type": st.code,
                "channel": rng.choice(["walk_in", "walk_in", "online"]),
                "applicant": {"nik": rng.choice(niks), "name": "Warga Contoh"},
                "documents": [
                    {
                        "requirement": "ktp",
                        "file_name": "ktp.pdf",
                        "content_type": "application/pdf",
                        "size_bytes": 120_000,
                    }
                ],
            }
            with contextlib.suppress(httpx.HTTPError):
                r = await client.post(base, json=body, headers=headers)
                if r.status_code == 201 and rng.random() < 0.7:
                    url = f"{base}/{r.json()['id']}"
                    # Officers act once identity has verified the NIK (a deceased citizen's is refused).
                    verified = await _state_after_nik_check(client, url, headers) not in (
                        None,
                        "nik_rejected",
                    )
                    for action, role in PATH_TO_PERMIT[str(st.workflow)] if verified else []:
                        await client.post(
                            f"{url}/actions/{action}",
                            headers={"Authorization": f"Bearer {tokens[(st.agency, role)]}"},
                        )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1 / rate_per_s)


# The path to an issued document (or, for recording, to the recorded biometrics) in each civil registry
# workflow, with the role that takes each step.
PATH_TO_DOCUMENT = {
    "disdukcapil.ktp-el-rekam": [("record", "officer")],
    "disdukcapil.ktp-el-cetak": [("verify", "officer"), ("print", "officer")],
    "disdukcapil.ktp-el-ganti": [("verify", "officer"), ("print", "officer")],
    "disdukcapil.kk": [("verify", "officer"), ("issue", "officer")],
    "disdukcapil.kk-perubahan": [("verify", "officer"), ("update_members", "officer"), ("issue", "officer")],
    "disdukcapil.akta-kelahiran": [("verify", "officer"), ("register", "officer"), ("sign", "supervisor")],
}


def _document_form(service_type: str, people: list[RegisterCitizen], rng: random.Random) -> dict[str, Any]:
    """A demo form for ``service_type`` about seeded citizens (living ones: every 50th is deceased)."""
    living = [p for n, p in enumerate(people, start=1) if n % DECEASED_EVERY]
    one, other = rng.sample(living, 2)
    match service_type:
        case "disdukcapil.ktp-el-ganti":
            return {"ktp_el": {"nik": one.nik, "reason": rng.choice(["lost", "damaged"])}}
        case "disdukcapil.kk":
            return {"kk_new": {"head_nik": one.nik, "member_niks": [other.nik]}}
        case "disdukcapil.kk-perubahan":
            change = {"change": "add", "nik": other.nik}
            return {"kk_change": {"applicant_nik": one.nik, "kk_number": one.kk_number, "changes": [change]}}
        case "disdukcapil.akta-kelahiran":
            mothers = [p for p in living if p.sex is Sex.FEMALE and p.birth_date.year >= 1980]
            born = date.today() - timedelta(days=rng.randint(1, 60))
            return {
                "birth": {
                    "mother_nik": rng.choice(mothers).nik,
                    "child_name": f"Bayi Contoh {rng.randint(1, 9999):04d}",
                    "child_sex": rng.choice(["male", "female"]),
                    "child_birth_date": born.isoformat(),
                    "child_birth_place": "Kota Sukamaju",
                }
            }
        case _:
            return {"ktp_el": {"nik": one.nik}}


async def feed_documents(stop: asyncio.Event, secret: str, site: str, rate_per_s: float = 0.5) -> None:
    """Submit demo civil registry document applications for the seeded citizens and carry most of them
    through their workflow to the issued document; some are returned and resubmitted on the way."""
    catalogue = load_demo_catalogue()
    kabkota = next((s.kabkota for s in catalogue.sites if s.code == site), FALLBACK_KABKOTA)
    people = [synthetic_citizen(n, site=site, kabkota=kabkota) for n in range(1, DEMO_CITIZENS + 1)]
    rng = random.Random(1945)
    tokens = {
        role: issue_token(
            secret, subject=f"demo-{role}-disdukcapil", roles=[role], agency="disdukcapil", site=site
        )
        for role in ("officer", "supervisor")
    }
    base = f"http://127.0.0.1:{SERVICES['identity']}/v1/document-applications"
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            service_type = rng.choice(sorted(PATH_TO_DOCUMENT))
            officer = {"Authorization": f"Bearer {tokens['officer']}"}
            body = {"service_type": service_type, **_document_form(service_type, people, rng)}
            with contextlib.suppress(httpx.HTTPError, KeyError):
                r = await client.post(
                    base, json=body, headers=officer | {"Idempotency-Key": secrets.token_hex(12)}
                )
                if r.status_code == 201 and rng.random() < 0.8:
                    url = f"{base}/{r.json()['id']}/actions"
                    if rng.random() < 0.15:
                        reason = {"reason": "Dokumen persyaratan belum lengkap", "missing": ["kk"]}
                        await client.post(f"{url}/return", json=reason, headers=officer)
                        await client.post(f"{url}/resubmit", headers=officer)
                    for action, role in PATH_TO_DOCUMENT[service_type]:
                        await client.post(
                            f"{url}/{action}", headers={"Authorization": f"Bearer {tokens[role]}"}
                        )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1 / rate_per_s)


async def main() -> int:
    LOCAL.mkdir(exist_ok=True)
    (LOCAL / "logs").mkdir(exist_ok=True)
    started_kafka = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if started_kafka:
        print("[run] starting the local Kafka broker ...", flush=True)
        _kafka("start")
        bootstrap = _kafka("bootstrap")
    else:
        bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    secret = _secret()
    site = load_demo_catalogue().sites[0].code
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MPP_JWT_HS256_SECRET": secret,
        "PYTHONPATH": str(ROOT),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for name, port in SERVICES.items():
            log = (LOCAL / "logs" / f"{name}.log").open("ab")
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"mpp.{name}"],
                cwd=ROOT,
                env={**env, f"MPP_{name.upper()}_HTTP_PORT": str(port), f"MPP_{name.upper()}_SITE": site},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient(timeout=2) as client:
            for name, port in SERVICES.items():
                await _wait_ready(client, name, port, procs[name])
        print("[run] registering demo citizens in the civil registry ...", flush=True)
        seed = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mpp.identity.seed",
            "--count",
            str(DEMO_CITIZENS),
            cwd=ROOT,
            env={**env, "MPP_IDENTITY_SITE": site},
        )
        if await seed.wait() != 0:
            print("[run] seeding demo citizens failed; see the output above", flush=True)
        ministry = issue_token(secret, subject="demo-ministry", roles=["ministry"], ttl_seconds=8 * 3600)
        print(
            f"\n[run] MPP platform is up (Kafka at {bootstrap}, SQLite files in .local/, logs in .local/logs/)"
        )
        for name, port in SERVICES.items():
            print(f"  {name:<13} http://127.0.0.1:{port}/docs   health: /healthz  metrics: /metrics")
        print(
            f"\n  figures:  curl -H 'Authorization: Bearer {ministry}' \\\n           http://127.0.0.1:{SERVICES['reporting']}/v1/figures/totals"
        )
        print(f"  dashboards: http://127.0.0.1:{SERVICES['reporting']}/dasbor (sign in with the token above)")
        print(
            "\n[run] feeding demo applications at the licensing and civil registry counters; "
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        feeder = asyncio.create_task(feed(stop, secret, site))
        documents = asyncio.create_task(feed_documents(stop, secret, site))
        last = 0.0
        async with httpx.AsyncClient(timeout=5) as client:
            while not stop.is_set():
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        print(
                            f"[run] {name} exited with {proc.returncode}; see .local/logs/{name}.log",
                            flush=True,
                        )
                        stop.set()
                if time.monotonic() - last > 10:
                    last = time.monotonic()
                    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                        r = await client.get(
                            f"http://127.0.0.1:{SERVICES['reporting']}/v1/figures/totals",
                            headers={"Authorization": f"Bearer {ministry}"},
                        )
                        print(f"[run] reporting totals: {r.json()['totals']}", flush=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1)
        await feeder
        await documents
        return 0
    finally:
        print("\n[run] stopping services ...", flush=True)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"[run] {name} did not stop in time; killing it", flush=True)
                proc.kill()
        if started_kafka:
            print("[run] stopping the local Kafka broker ...", flush=True)
            _kafka("stop")
        print("[run] stopped.", flush=True)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
