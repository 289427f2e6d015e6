"""The counters' cycle answered outside FastAPI gives exactly the answers FastAPI gives.

Two queue services on two fresh databases, one with the hot routes (the default) and one with
``http_fast_routes`` off, run the same script of requests from the same frozen clock; every answer must
have the same status, headers and bytes (ids and survey tokens, random by design but of fixed length, are
numbered in order of appearance before comparing).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from mpp.kit.auth import Role
from mpp.kit.outbox import decode_headers
from mpp.queue.api.hot_routes import CounterCycleRoutes
from mpp.queue.persistence.tables import outbox
from tests.integration.queue.harness import (
    KTP,
    OTHER_SITE,
    QueueApi,
    bearer,
    kiosk,
    officer,
    operator,
    running_queue,
    supervisor,
)

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_COMPARED_HEADERS = ("content-type", "content-length", "www-authenticate", "allow", "location")


@dataclass(frozen=True)
class Answer:
    step: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Transcript:
    """Sends the script's requests to one service and keeps every answer, ids numbered."""

    def __init__(self, api: QueueApi, passed_on: list[str] | None = None) -> None:
        self.api = api
        self.answers: list[Answer] = []
        self.through: set[str] = set()
        """The steps whose request the hot routes handed on to FastAPI."""
        self._passed_on = passed_on if passed_on is not None else []
        self._names: dict[bytes, bytes] = {}

    def _name(self, value: bytes) -> bytes:
        return self._names.setdefault(value, b"<id-%d>" % len(self._names))

    async def send(
        self,
        step: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        method: str = "POST",
        content: bytes | None = None,
    ) -> dict[str, Any]:
        before = len(self._passed_on)
        response = await self.api.client.request(method, path, headers=headers or {}, content=content)
        if len(self._passed_on) > before:
            self.through.add(step)
        body = response.content
        data: Any = orjson.loads(body) if body[:1] in (b"{", b"[") else None
        if isinstance(data, dict) and isinstance(data.get("survey"), dict):
            body = body.replace(
                data["survey"]["token"].encode(), self._name(data["survey"]["token"].encode())
            )
        normalised = _UUID.sub(lambda m: self._name(m.group(0)), body)
        kept = tuple(
            (name, _UUID.sub(lambda m: self._name(m.group(0)), value.encode()).decode())
            for name in _COMPARED_HEADERS
            if (value := response.headers.get(name)) is not None
        )
        self.answers.append(Answer(step, response.status_code, kept, normalised))
        return data if isinstance(data, dict) else {}


async def _script(t: Transcript) -> None:
    """Every answer the counters' cycle gives, plus requests that must go through FastAPI."""
    me = officer()
    call = "/v1/counters/loket-01/call-next"
    # Authentication and authorisation.
    await t.send("no token", call)
    await t.send("not a token", call, {"Authorization": "Bearer not-a-token"})
    await t.send("basic scheme", call, {"Authorization": "Basic b2ZmaWNlcjpzZWNyZXQ="})
    await t.send("empty bearer", call, {"Authorization": "Bearer   "})
    wrong_key = bearer(roles=[Role.OFFICER], agency="disdukcapil", site="mpp-kota-sukamaju", subject="x")
    await t.send(
        "token signed by another key", call, {"Authorization": wrong_key["Authorization"][:-4] + "AAAA"}
    )
    await t.send("kiosk role", call, kiosk())
    await t.send("operator role", call, operator())
    await t.send("other agency's counter", call, officer(agency="dpmptsp"))
    await t.send("officer of another site", call, officer(site=OTHER_SITE))
    await t.send("unknown counter", "/v1/counters/loket-99/call-next", me)
    await t.send("closed counter", call, me)
    await t.send("open counter", "/v1/counters/loket-01/open", me)
    await t.send("nobody waiting", call, me)
    for n in range(3):
        visit = {**kiosk(), "Content-Type": "application/json"}
        await t.send(f"visit {n}", "/v1/visits", visit, content=orjson.dumps({"service_types": [KTP]}))
    first = (await t.send("call first", call, me))["ticket"]["id"]
    await t.send("counter busy", call, me)
    await t.send("unknown ticket", "/v1/tickets/tidak-ada/start", me)
    await t.send("complete before start", f"/v1/tickets/{first}/complete", me)
    await t.send("start, other agency", f"/v1/tickets/{first}/start", officer(agency="dpmptsp"))
    await t.send("start, operator", f"/v1/tickets/{first}/start", operator())
    await t.send("start, no token", f"/v1/tickets/{first}/start")
    await t.send("start", f"/v1/tickets/{first}/start", me)
    retry = {**me, "Idempotency-Key": "retry-start-0001"}
    await t.send("start retried", f"/v1/tickets/{first}/start", retry)
    await t.send("start retried again", f"/v1/tickets/{first}/start", retry)
    await t.send("complete", f"/v1/tickets/{first}/complete", {**me, "Idempotency-Key": "complete-0001"})
    await t.send(
        "complete retried", f"/v1/tickets/{first}/complete", {**me, "Idempotency-Key": "complete-0001"}
    )
    second = (await t.send("call second", call, supervisor()))["ticket"]["id"]
    await t.send("recall", f"/v1/tickets/{second}/recall", me)
    await t.send("recall, other agency", f"/v1/tickets/{second}/recall", officer(agency="dpmptsp"))
    await t.send("no-show", f"/v1/tickets/{second}/no-show", me)
    await t.send("recall after no-show", f"/v1/tickets/{second}/recall", me)
    await t.send("no-show again", f"/v1/tickets/{second}/no-show", me)
    # Through FastAPI in both services: a body on complete, bad input, other methods and shapes.
    third = (await t.send("call third", call, me))["ticket"]["id"]
    await t.send("start third", f"/v1/tickets/{third}/start", me)
    json_type = {**me, "Content-Type": "application/json"}
    await t.send("complete, broken JSON", f"/v1/tickets/{third}/complete", json_type, content=b"{")
    await t.send("complete, unknown field", f"/v1/tickets/{third}/complete", json_type, content=b'{"x": 1}')
    await t.send(
        "complete with application",
        f"/v1/tickets/{third}/complete",
        json_type,
        content=b'{"application_id": "A-1"}',
    )
    await t.send("bad counter code", "/v1/counters/loket!01/call-next", me)
    await t.send("bad counter code, no token", "/v1/counters/loket!01/call-next")
    await t.send("GET call-next", call, me, method="GET")
    await t.send("trailing slash", call + "/", me)
    await t.send("query string", call + "?loket=02", me)
    await t.send("cancel", f"/v1/tickets/{third}/cancel", me)
    await t.send("ticket view", f"/v1/tickets/{third}", me, method="GET")


HOT_STEPS = frozenset(
    {
        "no token",
        "not a token",
        "kiosk role",
        "other agency's counter",
        "unknown counter",
        "closed counter",
        "nobody waiting",
        "call first",
        "counter busy",
        "unknown ticket",
        "complete before start",
        "start",
        "start retried",
        "complete",
        "complete retried",
        "recall",
        "no-show",
    }
)
FALLING_THROUGH = frozenset(
    {
        "open counter",
        "visit 0",
        "complete, broken JSON",
        "complete with application",
        "bad counter code",
        "GET call-next",
        "trailing slash",
        "query string",
        "cancel",
        "ticket view",
    }
)


@pytest.fixture
async def services(
    fresh_database: Callable[[], Awaitable[str]],
) -> AsyncIterator[tuple[QueueApi, QueueApi]]:
    async with (
        running_queue(await fresh_database(), http_fast_routes=True) as hot,
        running_queue(await fresh_database(), http_fast_routes=False) as plain,
    ):
        yield hot, plain


class TestCounterCycleOutsideFastApi:
    async def test_every_answer_is_the_same_as_fastapis(
        self, services: tuple[QueueApi, QueueApi], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hot, plain = services
        passed_on: list[str] = []
        original = CounterCycleRoutes.fall_through

        async def recording(self: CounterCycleRoutes, scope: Any, receive: Any, send: Any) -> None:
            passed_on.append(f"{scope['method']} {scope['path']}")
            await original(self, scope, receive, send)

        monkeypatch.setattr(CounterCycleRoutes, "fall_through", recording)
        hot_transcript, plain_transcript = Transcript(hot, passed_on), Transcript(plain)
        await _script(hot_transcript)
        handed_on = len(passed_on)
        await _script(plain_transcript)

        assert len(passed_on) == handed_on  # the second service has no hot routes at all
        for mine, theirs in zip(hot_transcript.answers, plain_transcript.answers, strict=True):
            assert mine == theirs, mine.step
        statuses = {a.step: a.status for a in hot_transcript.answers}
        assert statuses["no token"] == 401
        assert statuses["kiosk role"] == 403
        assert statuses["other agency's counter"] == 403
        assert statuses["unknown counter"] == 404
        assert statuses["unknown ticket"] == 404
        assert statuses["counter busy"] == 409
        assert statuses["start retried"] == 409
        assert statuses["complete"] == 200
        assert statuses["complete with application"] == 200
        assert statuses["bad counter code"] == 422
        # The hot routes answered the cycle themselves; everything else went on to FastAPI.
        assert set(statuses) >= HOT_STEPS
        assert not HOT_STEPS & hot_transcript.through
        assert hot_transcript.through >= FALLING_THROUGH

    async def test_same_openapi_document(self, services: tuple[QueueApi, QueueApi]) -> None:
        hot, plain = services
        mine = await hot.client.get("/openapi.json")
        theirs = await plain.client.get("/openapi.json")
        assert mine.status_code == 200
        assert mine.content == theirs.content
        assert "/v1/counters/{code}/call-next" in mine.json()["paths"]

    async def test_metrics_and_events_keep_the_route_and_the_trace(
        self, services: tuple[QueueApi, QueueApi]
    ) -> None:
        hot, _ = services
        me = officer()
        await hot.open_counter("loket-01", me)
        ticket = await hot.ticket(KTP)
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        traced = {**me, "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        called = await hot.call_next("loket-01", traced)
        assert called.json()["ticket"]["id"] == ticket["id"]
        started = await hot.act(ticket["id"], "start", traced)
        assert started.status_code == 200

        async with hot.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(outbox.c.headers)
                    .where(outbox.c.key == ticket["visit_id"].encode())
                    .order_by(outbox.c.seq)
                )
            ).all()
        parents = [dict(decode_headers(r.headers)).get("traceparent", b"").decode() for r in rows]
        # The visit's events: issued at the kiosk (a trace of its own), then called and started under the
        # officer's trace.
        assert len(parents) >= 3
        assert all(p.split("-")[1] == trace_id for p in parents[-2:])
        assert parents[0].split("-")[1] != trace_id

        metrics = (await hot.client.get("/metrics")).text
        assert 'route="/v1/counters/{code}/call-next"' in metrics
        assert 'route="/v1/tickets/{ticket_id}/start"' in metrics
        assert 'route="unmatched"' not in metrics
