"""Serial cost of the queue's hot paths, in process: CPU, wall time and SQL statements per operation.

``python -m tools.bench_queue_ops postgresql://USER:PASSWORD@HOST:PORT/EMPTY_DATABASE``

Runs the queue app in this process (no relay, no consumers) on an empty PostgreSQL database and drives it
through httpx's ASGI transport one request at a time, so nothing waits for a lock or a connection: what it
reports is the work each operation costs, which a busy shared machine disturbs far less than the
throughput figures of ``make bench``. First kiosk visits of one ticket, one at a time and then 32 at once
(written together by the visit batcher; figures per visit), then, with about 3,000 tickets
waiting, call-next -> start -> complete cycles at one counter. CPU is this process's (the app and the
client); statements are those the app sent to the database, through SQLAlchemy or straight to the driver
(transaction begin and commit not counted). ``MPP_QUEUE_HTTP_FAST_ROUTES=false`` sends the counters'
cycle through FastAPI's routing instead of the hot routes: run both, one after the other, to compare.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from typing import Any

import httpx
from sqlalchemy import event

from mpp.kit import db
from mpp.kit.auth import issue_token
from mpp.queue.app import create_app
from mpp.queue.config import QueueSettings

SECRET = secrets.token_urlsafe(32)
SITE = "mpp-kota-sukamaju"
KTP = "disdukcapil.ktp-el-rekam"  # called at loket-01 of the demo catalogue
VISITS = 400
WAITING = 3000
CYCLES = 300
KIOSKS = 32


def _bearer(**claims: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SECRET, **claims)}


async def measure(url: str) -> dict[str, dict[str, float]]:
    settings = QueueSettings(
        database_url=url,
        relay_enabled=False,
        consumer_enabled=False,
        jwt_hs256_secret=SECRET,
        log_level="WARNING",
        log_json=False,
        appointment_sweep_seconds=0,
        day_close_seconds=0,
        site=SITE,
    )
    app = create_app(settings)
    engine = app.state.queue.runtime.engine
    statements = [0]

    def counted(*_args: Any) -> None:
        statements[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", counted)
    db.statement_hook.append(counted)  # the statements sent straight to the driver
    kiosk = _bearer(subject="bench-kiosk", roles=["kiosk"], site=SITE)
    officer = _bearer(subject="bench-officer", roles=["officer"], agency="disdukcapil", site=SITE)
    results: dict[str, dict[str, float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queue") as client:

            async def visit() -> None:
                headers = {**kiosk, "Idempotency-Key": secrets.token_hex(8)}
                response = await client.post("/v1/visits", json={"service_types": [KTP]}, headers=headers)
                if response.status_code != 201:
                    raise RuntimeError(response.text)

            async def cycle() -> None:
                response = await client.post("/v1/counters/loket-01/call-next", headers=officer)
                if response.status_code != 200 or response.json()["ticket"] is None:
                    raise RuntimeError(response.text)
                ticket_id = response.json()["ticket"]["id"]
                for action in ("start", "complete"):
                    response = await client.post(f"/v1/tickets/{ticket_id}/{action}", headers=officer)
                    if response.status_code != 200:
                        raise RuntimeError(response.text)

            async def timed(name: str, work: Any, n: int) -> None:
                statements[0] = 0
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    await work()
                results[name] = {
                    "cpu_ms": round(1000 * (time.process_time() - cpu0) / n, 2),
                    "wall_ms": round(1000 * (time.perf_counter() - wall0) / n, 2),
                    "statements": round(statements[0] / n, 1),
                }

            async def visits_together() -> None:
                await asyncio.gather(*(visit() for _ in range(KIOSKS)))

            for _ in range(50):  # warm-up: connections, statement caches
                await visit()
            await timed("visit, one ticket", visit, VISITS)
            await timed(
                f"visit, one ticket, {KIOSKS} kiosks at once (per visit)", visits_together, VISITS // KIOSKS
            )
            for name in list(results)[-1:]:
                results[name] = {k: round(v / KIOSKS, 2) for k, v in results[name].items()}
            for _ in range(WAITING - VISITS - (VISITS // KIOSKS) * KIOSKS):
                await visit()
            opened = await client.post("/v1/counters/loket-01/open", headers=officer)
            if opened.status_code != 200:
                raise RuntimeError(opened.text)
            for _ in range(30):
                await cycle()
            await timed(f"call-next + start + complete, ~{WAITING} waiting", cycle, CYCLES)
    return results


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, figures in asyncio.run(measure(sys.argv[1])).items():
        print(
            f"{name}: {figures['cpu_ms']} ms CPU, {figures['wall_ms']} ms wall, {figures['statements']} statements"
        )


if __name__ == "__main__":
    main()
