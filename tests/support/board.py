"""Helpers for the display board's tests: an isolated site, a queue server in the test's loop, SSE reading."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from mpp.contracts.masterdata import load_catalogue, load_demo_catalogue
from mpp.kit.auth import Role, issue_token
from tests.support.processes import free_port

SECRET = "queue-board-secret-0123456789abcdef01"
KTP = "disdukcapil.ktp-el-rekam"  # prefix A, served at loket-01 and loket-02


def isolated_catalogue(directory: Path) -> tuple[str, Path]:
    """The demo catalogue under a site code of its own, so calls other tests make on the shared broker for
    the demo site never reach this test's boards. Returns the site code and the catalogue file."""
    demo = load_demo_catalogue()
    site = f"mpp-uji-{secrets.token_hex(4)}"
    text = json.dumps(demo.model_dump(mode="json")).replace(f'"{demo.sites[0].code}"', f'"{site}"')
    load_catalogue(text)  # still a valid catalogue
    path = directory / f"catalogue-{site}.json"
    path.write_text(text)
    return site, path


def bearer(*, roles: list[Role], site: str, agency: str | None = None, subject: str = "t") -> dict[str, str]:
    token = issue_token(SECRET, subject=subject, roles=roles, agency=agency, site=site)
    return {"Authorization": f"Bearer {token}"}


def kiosk(site: str) -> dict[str, str]:
    return bearer(roles=[Role.KIOSK], site=site, subject=f"kiosk-{site}")


def officer(site: str, agency: str = "disdukcapil") -> dict[str, str]:
    return bearer(roles=[Role.OFFICER], site=site, agency=agency, subject="officer-board")


async def call_one(client: httpx.AsyncClient, site: str, counter: str = "loket-01") -> dict[str, Any]:
    """Take a ticket at the kiosk, open ``counter`` and call it there; the called ticket."""
    visit = await client.post("/v1/visits", json={"service_types": [KTP]}, headers=kiosk(site))
    assert visit.status_code == 201, visit.text
    opened = await client.post(f"/v1/counters/{counter}/open", headers=officer(site))
    assert opened.status_code == 200, opened.text
    called = await client.post(f"/v1/counters/{counter}/call-next", headers=officer(site))
    assert called.status_code == 200, called.text
    ticket: dict[str, Any] = called.json()["ticket"]
    return ticket


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free port inside the test's event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("server stopped during startup")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@dataclass(frozen=True)
class SseMessage:
    event: str
    id: str | None
    data: Any


async def sse_messages(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """The messages of an event stream (the fields the board uses: event, id, data)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield SseMessage(fields.get("event", "message"), fields.get("id"), json.loads(fields["data"]))
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
