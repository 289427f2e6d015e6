"""The lifecycle bench's generator at a tiny load, against a stand-in licensing server: every application is
submitted, waits for its ApplicationSubmitted, takes its workflow's actions (retrying a concurrent-update
conflict) and completes on its PermitIssued."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from tools.bench_lifecycle import (
    ISSUED,
    SUBMITTED,
    Context,
    HttpPool,
    LifecycleConfig,
    TopicWatcher,
    build_plan,
    living_niks,
    run_step,
)
from tools.run_platform import PATH_TO_PERMIT

pytestmark = pytest.mark.unit

SITE = "mpp-bench-test"


@dataclass
class FakeLicensing:
    """Answers submits and actions like the licensing service, and tells the watcher what the topic would
    carry: ApplicationSubmitted shortly after a submit, PermitIssued shortly after an issue."""

    watcher: TopicWatcher
    close_after_each: bool = False
    requests: Counter[str] = field(default_factory=Counter)
    conflicted: set[str] = field(default_factory=set)
    connections: int = 0
    next_id: int = 0

    def later(self, subject: str, kind: str) -> None:
        asyncio.get_running_loop().call_later(
            0.005, lambda: self.watcher.note(subject, kind, time.perf_counter())
        )

    def answer(self, method: str, path: str) -> tuple[int, dict[str, object]]:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/applications":
            self.next_id += 1
            app_id = f"app-{self.next_id}"
            self.later(app_id, SUBMITTED)
            return 201, {"id": app_id, "state": "verifying_nik"}
        if method == "POST" and len(parts) == 5 and parts[3] == "actions":
            app_id, action = parts[2], parts[4]
            self.requests[action] += 1
            if action == "issue":
                if app_id not in self.conflicted:
                    self.conflicted.add(app_id)
                    return 409, {"code": "concurrent_update"}
                self.later(app_id, ISSUED)
            return 200, {"id": app_id}
        if method == "GET":
            return 200, {"state": "verified"}
        return 404, {"code": "not_found"}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path = head.split(b" ", 2)[:2]
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                status, body = self.answer(method.decode(), path.decode())
                data = orjson.dumps(body)
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[FakeLicensing, int]]:
    fake = FakeLicensing(TopicWatcher("unused:9092", SITE))
    srv = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = int(srv.sockets[0].getsockname()[1])
    try:
        yield fake, port
    finally:
        srv.close()
        await srv.wait_closed()


async def test_every_lifecycle_reaches_its_permit_through_its_workflow(
    server: tuple[FakeLicensing, int], tmp_path: Path
) -> None:
    fake, port = server
    niks = living_niks(30)
    plan = build_plan("secret-of-the-test-at-least-32-bytes", SITE, niks)
    http = HttpPool("127.0.0.1", port, 8)
    cfg = LifecycleConfig(
        bootstrap="unused:9092", admin_url="unused", run_id="t", root=tmp_path, artifacts=tmp_path
    )
    ctx = Context(cfg=cfg, plan=plan, http=http, watcher=fake.watcher, pids={})
    try:
        step = await run_step(ctx, rate=200.0, seconds=0.2, label="test")
    finally:
        await http.close()

    assert step["applications"] == 40
    assert step["completed"] == 40
    assert step["incomplete"] == 0 and step["failed"] == 0
    # Each application's first issue met a concurrent update and was taken again.
    assert step["conflict_retries"] == 40
    expected: Counter[str] = Counter()
    for n in range(40):
        for action, _role in PATH_TO_PERMIT[plan.paths[n % len(niks)][0]]:
            expected[action] += 1
    expected["issue"] += 40
    assert fake.requests == expected
    assert step["stages"]["verification"]["count"] == 40
    assert step["lifecycle"]["count"] == 40
    assert fake.watcher.counts == {SUBMITTED: 40, ISSUED: 40}
    # Keep-alive: never more connections than the pool allows.
    assert fake.connections <= 8


async def test_a_connection_the_server_closed_is_replaced(server: tuple[FakeLicensing, int]) -> None:
    fake, port = server
    fake.close_after_each = True
    http = HttpPool("127.0.0.1", port, 1)
    try:
        answers = [await http.request("GET", "/v1/applications/app-1") for _ in range(3)]
    finally:
        await http.close()
    assert [status for status, _ in answers] == [200, 200, 200]
    assert orjson.loads(answers[-1][1]) == {"state": "verified"}
    assert fake.connections == 3
