"""Server-Sent Events framing and one screen's stream: snapshot or replay, live updates, heartbeats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mpp.queue.board.sse import board_stream, sse_heartbeat, sse_message, sse_retry
from mpp.queue.board.state import BoardState, CounterLabel, TicketCalled, Update

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
LABELS = {
    "loket-01": CounterLabel("loket-01", "Loket 1", "disdukcapil"),
    "loket-05": CounterLabel("loket-05", "Loket 5", "dpmptsp"),
}


def parse(chunk: bytes) -> dict[str, str]:
    """One SSE message's fields (the test's own minimal reader of the format)."""
    text = chunk.decode()
    assert text.endswith("\n\n"), text
    fields: dict[str, str] = {}
    for line in text[:-2].split("\n"):
        name, _, value = line.partition(": ")
        assert name not in fields, f"field {name} repeated in {text!r}"
        fields[name] = value
    return fields


def test_a_message_has_id_event_and_one_line_of_json_data() -> None:
    chunk = sse_message({"number": "A-012", "text": "baris\nbaru"}, event="call", id="ab12-7")

    assert chunk == (b'id: ab12-7\nevent: call\ndata: {"number":"A-012","text":"baris\\nbaru"}\n\n')
    assert json.loads(parse(chunk)["data"]) == {"number": "A-012", "text": "baris\nbaru"}


def test_ids_and_event_names_cannot_break_the_framing() -> None:
    with pytest.raises(ValueError, match="line breaks"):
        sse_message({}, id="1\n2")
    with pytest.raises(ValueError, match="line breaks"):
        sse_message({}, event="call\ndata: x")


def test_retry_and_heartbeat() -> None:
    assert sse_retry(2000) == b"retry: 2000\n\n"
    beat = parse(sse_heartbeat(T0))
    assert beat["event"] == "heartbeat"
    assert "id" not in beat  # a heartbeat does not move the browser's last event id
    assert json.loads(beat["data"]) == {"at": T0.isoformat()}


def new_board() -> BoardState:
    return BoardState(site="mpp-kota-sukamaju", zone=ZoneInfo("Asia/Jakarta"), labels=LABELS)


def call(number: str, counter: str, minute: int) -> TicketCalled:
    agency = LABELS[counter].agency
    return TicketCalled(
        f"t-{number}", number, agency, f"{agency}.x", counter, 1, T0 + timedelta(minutes=minute)
    )


async def take(stream: AsyncIterator[bytes], n: int) -> list[dict[str, str]]:
    out = []
    for _ in range(n):
        out.append(parse(await asyncio.wait_for(anext(stream), timeout=5)))
    return out


async def test_a_new_screen_gets_a_snapshot_then_live_calls() -> None:
    board = new_board()
    board.apply(call("A-001", "loket-01", 1))
    queue: asyncio.Queue[Update | None] = asyncio.Queue()
    stream = board_stream(board, queue, agency=None, last_event_id=None, heartbeat_s=60, now=lambda: T0)

    retry, snapshot = await take(stream, 2)
    update = board.apply(call("A-002", "loket-01", 2))
    assert update is not None
    queue.put_nowait(update)
    (live,) = await take(stream, 1)

    assert retry == {"retry": "2000"}
    assert snapshot["event"] == "snapshot"
    assert snapshot["id"] == board.event_id(1)
    assert [c["number"] for c in json.loads(snapshot["data"])["calls"]] == ["A-001"]
    assert live["event"] == "call"
    assert live["id"] == board.event_id(2)
    assert json.loads(live["data"])["call"]["number"] == "A-002"


async def test_a_resumed_screen_gets_only_what_it_missed() -> None:
    board = new_board()
    for i in range(4):
        board.apply(call(f"A-00{i + 1}", "loket-01", i))
    queue: asyncio.Queue[Update | None] = asyncio.Queue()
    stream = board_stream(
        board, queue, agency=None, last_event_id=board.event_id(2), heartbeat_s=60, now=lambda: T0
    )

    _retry, first, second = await take(stream, 3)

    assert [m["id"] for m in (first, second)] == [board.event_id(3), board.event_id(4)]
    assert [json.loads(m["data"])["call"]["number"] for m in (first, second)] == ["A-003", "A-004"]


async def test_a_screen_from_another_process_life_gets_a_snapshot() -> None:
    board = new_board()
    board.apply(call("A-001", "loket-01", 1))
    stream = board_stream(
        board, asyncio.Queue(), agency=None, last_event_id="0000dead-41", heartbeat_s=60, now=lambda: T0
    )

    _retry, snapshot = await take(stream, 2)

    assert snapshot["event"] == "snapshot"


async def test_updates_already_in_the_snapshot_are_not_sent_again_and_zones_are_filtered() -> None:
    board = new_board()
    queue: asyncio.Queue[Update | None] = asyncio.Queue()
    early = board.apply(call("A-001", "loket-01", 1))  # queued and also in the snapshot
    assert early is not None
    queue.put_nowait(early)
    stream = board_stream(board, queue, agency="dpmptsp", last_event_id=None, heartbeat_s=60, now=lambda: T0)
    _retry, snapshot = await take(stream, 2)
    for number, counter in (("A-002", "loket-01"), ("C-001", "loket-05")):
        update = board.apply(call(number, counter, 5))
        assert update is not None
        queue.put_nowait(update)
    (live,) = await take(stream, 1)

    assert json.loads(snapshot["data"])["calls"] == []
    assert json.loads(live["data"])["call"]["number"] == "C-001"


async def test_an_idle_stream_sends_heartbeats_and_ends_on_request() -> None:
    board = new_board()
    queue: asyncio.Queue[Update | None] = asyncio.Queue()
    stream = board_stream(board, queue, agency=None, last_event_id=None, heartbeat_s=0.01, now=lambda: T0)

    _retry, _snapshot, beat = await take(stream, 3)
    queue.put_nowait(None)
    rest = [chunk async for chunk in stream]

    assert beat["event"] == "heartbeat"
    assert all(parse(c)["event"] == "heartbeat" for c in rest)
