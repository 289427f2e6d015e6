"""Real servers on loopback standing in for the providers: an HTTP gateway (WhatsApp Cloud API or SMS
shape) scripted to answer success, transient and permanent errors, timeouts or slowly, and an SMTP
server (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any, Literal

import uvicorn
from aiosmtpd.controller import Controller

Mode = Literal["ok", "500", "503", "429", "400", "404", "timeout", "slow"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    answered: str


@dataclass
class FakeGateway:
    """An HTTP provider: answers each request with the next scripted mode (then ``default``)."""

    shape: Literal["whatsapp", "sms"]
    default: Mode = "ok"
    script: deque[Mode] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    duplicates: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    hang_s: float = 5.0
    slow_s: float = 0.2
    url: str = ""
    by_recipient: dict[str, Mode] = field(default_factory=dict)
    """Modes for given recipients (``to`` of the body), ahead of the script."""
    completed: list[str] = field(default_factory=list)
    """Recipients in the order their requests were answered."""
    _ids: dict[str, str] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Wait until ``condition`` holds after a request arrives or is answered."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                await self._changed.wait()
                self._changed.clear()

    def answer(self, *modes: Mode) -> None:
        self.script.extend(modes)

    @property
    def sent(self) -> list[Received]:
        """Requests that were answered with success."""
        return [r for r in self.received if r.answered in ("ok", "slow")]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = json.loads(b"".join(chunks) or b"{}")
        recipient = str(body.get("to", ""))
        if recipient in self.by_recipient:
            mode = self.by_recipient[recipient]
        else:
            mode = self.script.popleft() if self.script else self.default
        self.received.append(Received(scope["path"], headers, body, time.monotonic(), mode))
        self._changed.set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, body, extra = await self._respond(mode, headers.get("idempotency-key", ""))
        finally:
            self.in_flight -= 1
            self.completed.append(recipient)
            self._changed.set()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    async def _respond(self, mode: Mode, key: str) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        if mode == "timeout":
            await asyncio.sleep(self.hang_s)
            return 504, {}, []
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
        if mode in ("ok", "slow"):
            if key in self._ids:
                self.duplicates += 1
            else:
                self._ids[key] = f"{self.shape}-{len(self._ids) + 1}"
            message_id = self._ids[key]
            if self.shape == "whatsapp":
                return 200, {"messaging_product": "whatsapp", "messages": [{"id": message_id}]}, []
            return 200, {"message_id": message_id, "status": "accepted"}, []
        if mode == "429":
            return 429, {"error": {"code": "rate_limited"}}, [(b"retry-after", b"0")]
        if mode in ("500", "503"):
            return int(mode), {"error": {"code": "unavailable"}}, []
        return (
            int(mode),
            {"error": {"code": 131026 if mode == "400" else "not_found", "message": "rejected"}},
            [],
        )


@contextlib.asynccontextmanager
async def serving(gateway: FakeGateway) -> AsyncIterator[FakeGateway]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(gateway, lifespan="off", log_level="warning", access_log=False))
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup(sockets=[sock])
    task = asyncio.create_task(server.main_loop())
    gateway.url = f"http://127.0.0.1:{port}"
    try:
        yield gateway
    finally:
        server.should_exit = True
        await task
        await server.shutdown(sockets=[sock])
        sock.close()


class MailBox:
    """aiosmtpd handler keeping every message it accepts; refuses recipients at ``refused.invalid``."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address.endswith("@refused.invalid"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_server() -> Any:
    box = MailBox()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()
