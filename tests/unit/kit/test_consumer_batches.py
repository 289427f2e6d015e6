"""A batch takes the records already fetched, up to ``max_records``, in each partition's order."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import MetaData

from mpp.kit.consumer import _FETCH_STEP, _FREE_EVERY, EventConsumer, _Batch, _Flight, _free
from mpp.kit.db import add_runtime_tables

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


class _Buffered:
    """What an aiokafka consumer has already fetched: successive getmany answers, none after them."""

    def __init__(self, answers: list[dict[TopicPartition, list[int]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[int]]:
        self.calls.append((timeout_ms, max_records))
        if not self.answers:
            return {}
        # Like aiokafka: at most max_records, the rest stays buffered for the next call.
        answer: dict[TopicPartition, list[int]] = {}
        rest: dict[TopicPartition, list[int]] = {}
        room = max_records
        for tp, records in self.answers.pop(0).items():
            answer[tp], room = records[:room], room - len(records[:room])
            if len(records) > len(answer[tp]):
                rest[tp] = records[len(answer[tp]) :]
        if rest:
            self.answers.insert(0, rest)
        return {tp: records for tp, records in answer.items() if records}


def _consumer(max_records: int, buffered: _Buffered) -> EventConsumer:
    _outbox, inbox, offsets = add_runtime_tables(MetaData())

    async def handler(*_: Any) -> None:
        return None

    consumer = EventConsumer(
        group_id="g",
        topics=["t"],
        bootstrap="127.0.0.1:1",
        sessions=None,  # type: ignore[arg-type]
        inbox=inbox,
        offsets=offsets,
        handler=handler,
        producer=None,
        max_records=max_records,
    )
    consumer._consumer = buffered
    return consumer


async def test_a_batch_takes_what_is_already_buffered_in_partition_order() -> None:
    buffered = _Buffered([{A: [3, 4], B: [10]}, {A: [5]}])
    consumer = _consumer(100, buffered)
    batch = await consumer._top_up({A: [1, 2]})
    assert batch == {A: [1, 2, 3, 4, 5], B: [10]}
    # Never waits for the broker: every extra fetch only takes what has arrived.
    assert [timeout for timeout, _ in buffered.calls] == [0, 0, 0]


async def test_a_batch_stops_at_max_records() -> None:
    buffered = _Buffered([{A: [3, 4]}, {B: [10, 11]}, {A: [5]}])
    consumer = _consumer(5, buffered)
    batch = await consumer._top_up({A: [1, 2]})
    assert batch == {A: [1, 2, 3, 4], B: [10]}
    assert buffered.calls == [(0, 3), (0, 1)]
    # What did not fit is the next batch's.
    assert buffered.answers == [{B: [11]}, {A: [5]}]


def _read_batch() -> _Batch:
    """Four events; B's last one repeats A's first (the same event id)."""
    batch = _Batch(0.0)
    batch.events = [
        SimpleNamespace(  # type: ignore[misc]
            topic=tp.topic, partition=tp.partition, offset=o, envelope=SimpleNamespace(id=f"id-{n}")
        )
        for tp, o, n in ((A, 1, 1), (B, 10, 2), (A, 2, 3), (B, 11, 1))
    ]
    for ev in batch.events:
        batch.ids.setdefault(str(ev.envelope.id), ev)
    batch.last = {A: 2, B: 11}
    return batch


def _ids(batch: _Batch) -> list[tuple[str, int]]:
    return [(eid, ev.offset) for eid, ev in batch.ids.items()]


async def test_a_batch_tried_again_leaves_out_the_partitions_revoked_meanwhile() -> None:
    """Its transaction failed on a transient error; the group then moved partition A elsewhere. The
    next attempt applies B's records only: A's next owner reads A's again from the stored offsets."""
    consumer = _consumer(100, _Buffered([]))
    batch = _read_batch()
    running_attempt_offsets = batch.last
    consumer._retried = batch
    await consumer._on_revoked([A])
    assert [(ev.partition, ev.offset) for ev in batch.events] == [(1, 10), (1, 11)]
    assert batch.last == {B: 11}
    assert batch.stale
    # What its inbox claim records: the kept events by id, B's copy of the repeated one now first.
    assert _ids(batch) == [("id-2", 10), ("id-1", 11)]
    # An attempt that was already running keeps the offsets it started with.
    assert running_attempt_offsets == {A: 2, B: 11}


async def test_a_pipelined_batch_that_failed_leaves_out_the_revoked_partitions_before_its_retry() -> None:
    consumer = _consumer(100, _Buffered([]))
    batch = _read_batch()

    async def failed() -> None:
        raise ConnectionResetError("the database went away")

    task = asyncio.create_task(failed())
    await asyncio.gather(task, return_exceptions=True)
    consumer._inflight = _Flight(batch, task, span=None)
    await consumer._on_revoked([B])
    assert [(ev.partition, ev.offset) for ev in batch.events] == [(0, 1), (0, 2)]
    assert batch.last == {A: 2}
    assert _ids(batch) == [("id-1", 1), ("id-3", 2)]


async def test_an_applied_batch_is_freed_a_slice_at_a_time_while_the_loop_goes_on() -> None:
    """Freeing 50,000 events at once holds the loop for about 0.15 s; the next batch's transaction
    must not wait for it."""
    batch = _read_batch()
    batch.events = [SimpleNamespace(n=n) for n in range(3 * _FREE_EVERY + 5)]  # type: ignore[misc]
    events, ids = batch.events, batch.ids
    dropped = batch.applied(count_topics=False)
    assert (batch.events, batch.ids, batch.prepared) == ([], {}, None)
    assert dropped[0] is events and dropped[1] is ids

    seen: list[int] = []

    async def other_work() -> None:
        for _ in range(8):
            seen.append(len(events))
            await asyncio.sleep(0)

    await asyncio.gather(_free(dropped), other_work())
    assert (events, ids, dropped) == ([], {}, [])
    # The other task ran between slices: it saw the list shrink one slice at a time.
    assert seen[:4] == [2 * _FREE_EVERY + 5, _FREE_EVERY + 5, 5, 0]


def _counting(consumer: EventConsumer) -> None:
    """The consumer's parse replaced by a count of the records fetched."""

    async def extend(batch: _Batch, fetched: dict[TopicPartition, list[int]], _epoch: int) -> None:
        batch.records += sum(len(records) for records in fetched.values())

    consumer._extend = extend  # type: ignore[method-assign,assignment]


async def test_a_pipelined_batch_stops_growing_once_the_previous_one_has_committed() -> None:
    """While the previous batch is in the database the next one takes what arrives; once that one has
    committed, the database waits for this one, which starts with what it has."""
    consumer = _consumer(100_000, _Buffered([]))
    _counting(consumer)
    previous = asyncio.Event()

    async def in_the_database() -> None:
        await previous.wait()

    consumer._inflight = _Flight(_Batch(0.0), asyncio.create_task(in_the_database()), span=None)
    calls: list[tuple[int, bool]] = []

    async def more(room: int, wait: bool) -> dict[TopicPartition, list[int]]:
        calls.append((room, wait))
        if len(calls) == 2:
            previous.set()  # the previous batch commits during this fetch
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return {A: [0] * room}

    batch = _Batch(0.0)
    await consumer._grow(batch, more)
    # Each fetch hands over at most _FETCH_STEP records: decoding them holds the loop.
    assert calls == [(_FETCH_STEP, True), (_FETCH_STEP, True)]
    assert batch.records == 2 * _FETCH_STEP


async def test_a_batch_read_after_the_previous_one_committed_takes_nothing_more() -> None:
    consumer = _consumer(100_000, _Buffered([]))
    _counting(consumer)

    async def committed() -> None:
        return None

    task = asyncio.create_task(committed())
    await task
    consumer._inflight = _Flight(_Batch(0.0), task, span=None)  # committed, not yet settled
    calls: list[tuple[int, bool]] = []

    async def more(room: int, wait: bool) -> dict[TopicPartition, list[int]]:
        calls.append((room, wait))
        return {A: [0] * room}

    batch = _Batch(0.0)
    batch.records = 700
    await consumer._grow(batch, more)
    assert calls == []
    assert batch.records == 700


async def test_a_first_pipelined_batch_takes_what_is_buffered_a_step_at_a_time() -> None:
    consumer = _consumer(5 * _FETCH_STEP - 10, _Buffered([]))
    _counting(consumer)
    calls: list[tuple[int, bool]] = []

    async def more(room: int, wait: bool) -> dict[TopicPartition, list[int]]:
        calls.append((room, wait))
        return {A: [0] * room}

    batch = _Batch(0.0)
    await consumer._grow(batch, more)
    assert calls == [(_FETCH_STEP, False)] * 4 + [(_FETCH_STEP - 10, False)]
    assert batch.records == 5 * _FETCH_STEP - 10
