"""The display board on the real broker and PostgreSQL: a call made through the HTTP API of one replica
reaches the event stream of another replica, and a board started later is filled from the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from mpp.queue.app import create_app
from mpp.queue.config import QueueSettings
from tests.support.board import SECRET, SseMessage, call_one, isolated_catalogue, serving, sse_messages

pytestmark = pytest.mark.integration

WAIT_S = 20


def settings(database_url: str, catalogue: Path, site: str, bootstrap: str, **kw: object) -> QueueSettings:
    return QueueSettings(
        database_url=database_url,
        catalogue_file=catalogue,
        site=site,
        kafka_bootstrap_servers=bootstrap,
        jwt_hs256_secret=SECRET,
        log_json=False,
        log_level="WARNING",
        **kw,  # type: ignore[arg-type]
    )


async def next_message(stream: AsyncIterator[SseMessage], event: str) -> SseMessage:
    async for message in stream:
        if message.event == event:
            return message
    raise AssertionError(f"the stream ended before a {event} message")


async def test_a_call_on_one_replica_reaches_the_board_stream_of_another(
    kafka_bootstrap: str, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    site, catalogue = isolated_catalogue(tmp_path)
    database = await fresh_database()
    replica_a = create_app(settings(database, catalogue, site, kafka_bootstrap))
    replica_b = create_app(settings(database, catalogue, site, kafka_bootstrap))
    async with serving(replica_a) as url_a, serving(replica_b) as url_b:
        for app in (replica_a, replica_b):
            await asyncio.wait_for(app.state.board.feeding.wait(), WAIT_S)
        async with (
            httpx.AsyncClient(base_url=url_a, timeout=WAIT_S) as api,
            httpx.AsyncClient(base_url=url_b, timeout=WAIT_S) as screen,
            screen.stream("GET", f"/board/{site}/events") as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = sse_messages(response)
            snapshot = await asyncio.wait_for(next_message(stream, "snapshot"), WAIT_S)
            assert snapshot.data["calls"] == []

            ticket = await call_one(api, site, "loket-01")
            message = await asyncio.wait_for(next_message(stream, "call"), WAIT_S)

            assert message.data["call"]["key"] == f"{ticket['id']}:1"
            assert message.data["call"]["number"] == ticket["number"]
            assert message.data["call"]["counter_name"] == "Loket 1"
            assert message.data["call"]["announcement"].endswith("silakan ke loket satu")
            assert message.data["counter"]["number"] == ticket["number"]
            assert message.id is not None and message.id != snapshot.id

            # A screen resuming from the snapshot's id is sent the call it missed (after the counter's opening).
            async with screen.stream(
                "GET", f"/board/{site}/events", headers={"Last-Event-ID": snapshot.id or ""}
            ) as resumed:
                replayed = await asyncio.wait_for(next_message(sse_messages(resumed), "call"), WAIT_S)
            assert replayed.id == message.id

            state_a = (await api.get(f"/board/{site}/state")).json()
            assert [c["number"] for c in state_a["calls"]] == [ticket["number"]]

        # A replica started now (its Kafka feed off) shows the call from the database at once.
        late = create_app(
            settings(database, catalogue, site, kafka_bootstrap, consumer_enabled=False, relay_enabled=False)
        )
        async with serving(late) as url_late, httpx.AsyncClient(base_url=url_late) as client:
            state = (await client.get(f"/board/{site}/state")).json()
            zone = (await client.get(f"/board/{site}/state", params={"agency": "dpmptsp"})).json()

        assert [(c["number"], c["counter"]) for c in state["calls"]] == [(ticket["number"], "loket-01")]
        tile = next(t for t in state["counters"] if t["counter"] == "loket-01")
        assert (tile["open"], tile["number"], tile["state"]) == (True, ticket["number"], "called")
        assert zone["calls"] == []


async def test_unknown_sites_and_agencies_answer_404_in_bahasa_indonesia(
    fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    site, catalogue = isolated_catalogue(tmp_path)
    app = create_app(
        settings(
            await fresh_database(),
            catalogue,
            site,
            "127.0.0.1:9",
            consumer_enabled=False,
            relay_enabled=False,
        )
    )
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        unknown_site = await client.get("/board/mpp-tidak-ada")
        unknown_agency = await client.get(f"/board/{site}/instansi-lain")
        bad_query = await client.get(f"/board/{site}/state", params={"agency": "x y"})
        page = await client.get(f"/board/{site}/disdukcapil")
        by_query = await client.get(f"/board/{site}", params={"agency": "disdukcapil", "suara": "true"})

    assert unknown_site.status_code == 404
    assert unknown_site.json()["error"]["message"].startswith("Papan antrean tidak ditemukan")
    assert unknown_agency.status_code == 404
    assert bad_query.status_code == 422
    assert page.status_code == 200 and by_query.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Dinas Kependudukan" in page.text
    assert '"speak":true' in by_query.text
    # Self-contained: nothing is loaded from anywhere else.
    for marker in ("http://", "https://", "<link", "src="):
        assert marker not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
