"""A message provider on loopback for crash tests and benchmarks: the WhatsApp Cloud API or SMS gateway
shape, with a latency per call, honouring ``Idempotency-Key`` as the IETF httpapi draft
(draft-ietf-httpapi-idempotency-key-header) documents it:

- the first request with a key is processed and its response stored (success or refusal alike);
- a later request with the same key and the same body gets the stored response again (a replay), and no
  second message;
- a request with a key whose first request is still being processed gets ``409 Conflict``;
- a request reusing a key with a different body gets ``422 Unprocessable Content``;
- a request without a key gets ``400``.

A request cut short (the caller killed while sending it) is dropped, as a real server drops it. A
message counts as taken when its first complete request arrives (the provider has it even if the caller dies
before the answer). Every raw request is counted too, so retries and replays are visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn

Shape = Literal["whatsapp", "sms"]


@dataclass(frozen=True)
class Taken:
    """A message the provider took: once per idempotency key."""

    key: str
    recipient: str
    text: str
    """WhatsApp: the template's body parameters joined by ``|``; SMS: the text."""
    at: float
    """``time.monotonic()`` when its first request arrived."""
    seq: int


@dataclass
class _Stored:
    fingerprint: str
    response: tuple[int, dict[str, Any]] | None = None  # None while the first request is processed


@dataclass
class IdempotentGateway:
    shape: Shape
    latency: Callable[[random.Random], float] = lambda rng: 0.05
    """Seconds before each answer."""
    refuses: Callable[[str], bool] = lambda recipient: False
    """Recipients refused for good (WhatsApp: not a WhatsApp user, error 131026)."""
    seed: int = 7
    url: str = ""
    requests: int = 0
    replays: int = 0
    conflicts: int = 0
    mismatches: int = 0
    refused: int = 0
    in_flight: int = 0
    taken: list[Taken] = field(default_factory=list)
    _keys: dict[str, _Stored] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    @property
    def taken_keys(self) -> int:
        return len(self.taken)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return  # the caller died while sending: a cut request is no request
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        raw = b"".join(chunks)
        self.requests += 1
        key = next((v.decode() for k, v in scope["headers"] if k.lower() == b"idempotency-key"), "")
        status, body = await self._handle(key, raw)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    async def _handle(self, key: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        if not key:
            return 400, {"error": {"code": "idempotency_key_missing"}}
        fingerprint = hashlib.sha256(raw).hexdigest()
        stored = self._keys.get(key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                self.mismatches += 1
                return 422, {"error": {"code": "idempotency_key_reused"}}
            if stored.response is None:
                self.conflicts += 1
                return 409, {"error": {"code": "request_in_progress"}}
            self.replays += 1
            await asyncio.sleep(self.latency(self._rng))
            return stored.response
        stored = self._keys[key] = _Stored(fingerprint)
        body = json.loads(raw or b"{}")
        recipient = str(body.get("to", ""))
        self.in_flight += 1
        try:
            if self.refuses(recipient):
                self.refused += 1
                response: tuple[int, dict[str, Any]] = (
                    400,
                    {"error": {"code": 131026, "message": "Message undeliverable"}},
                )
            else:
                self.taken.append(
                    Taken(key, recipient, _text(self.shape, body), time.monotonic(), len(self.taken))
                )
                message_id = f"{self.shape}.{len(self.taken):08d}"
                response = (
                    (200, {"messaging_product": "whatsapp", "messages": [{"id": message_id}]})
                    if self.shape == "whatsapp"
                    else (200, {"message_id": message_id, "status": "accepted"})
                )
            await asyncio.sleep(self.latency(self._rng))
            stored.response = response
            return response
        finally:
            self.in_flight -= 1


def _text(shape: Shape, body: dict[str, Any]) -> str:
    if shape == "sms":
        return str(body.get("text", ""))
    components = body.get("template", {}).get("components", [])
    return "|".join(str(p.get("text", "")) for c in components for p in c.get("parameters", []))


@contextlib.asynccontextmanager
async def serving(gateway: IdempotentGateway) -> AsyncIterator[IdempotentGateway]:
    """Serve ``gateway`` on a free loopback port (uvicorn in this event loop)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        gateway, lifespan="off", log_level="warning", access_log=False, backlog=2048, timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
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
