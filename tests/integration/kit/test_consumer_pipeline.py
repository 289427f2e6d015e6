"""A pipelined consumer (``pipelined=True``) with a two-phase handler, on PostgreSQL with records handed
over directly: the next batch is read and prepared while the previous one is in the database, batches
still apply one after the other (a batch's inbox claim sees the previous batch's ids), transient errors
are retried, poison is dead-lettered, and partitions revoked while a batch waits are dropped from it and
read again by their next owner, each event applied once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mpp.contracts.envelope import Envelope
from mpp.contracts.kafka import to_record
from mpp.kit.consumer import EventConsumer, ReceivedEvent, TwoPhaseHandler
from mpp.kit.db import RetryLater, create_engine, dialect_insert, session_factory
from mpp.kit.kafka import create_producer
from tests.conftest import unique_topic
from tests.support.events import (
    Exploded,
    SequencedV1,
    applied_counts,
    consumer_offsets,
    effects,
    inbox,
    metadata,
    sequenced,
)
from tests.support.kafka_tools import make_topics, wait_for

pytestmark = pytest.mark.integration

TOPIC = "test.pipeline"
A, B = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def record(tp: TopicPartition, offset: int, env: Envelope, value: bytes | None = None) -> SimpleNamespace:
    key, body, headers = to_record(env)
    return SimpleNamespace(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        key=key,
        value=body if value is None else value,
        headers=headers,
    )


@dataclass
class Kafka:
    """What the consumer asks of its Kafka client outside a fetch: pause, resume, commit, idle polls."""

    assigned: set[TopicPartition] = field(default_factory=lambda: {A, B})
    paused: set[TopicPartition] = field(default_factory=set)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    async def getmany(self, *, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


@dataclass
class DeadLetters:
    sent: list[dict[str, bytes]] = field(default_factory=list)

    async def send(self, topic: str, *, value: Any, key: Any, headers: list[tuple[str, bytes]]) -> Any:
        self.sent.append(dict(headers))

        async def done() -> None:
            return None

        return done()


@dataclass
class Rows:
    """A prepared batch: the effect rows by event id, in order."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)


class TwoPhaseEffects:
    """The test read model's handler in two steps, recording what happens when."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.prepared_seqs: list[int] = []
        self.applied_batches: list[list[int]] = []
        self.transient_failures = 0
        self.gate: asyncio.Event | None = None
        """When set, the first apply waits for it (inside its transaction)."""
        self.on_prepare: Callable[[list[int]], None] | None = None

    def prepare(self, events: Sequence[ReceivedEvent], into: Rows | None) -> Rows:
        rows = Rows() if into is None else into
        seqs = []
        for ev in events:
            p = ev.envelope.payload
            assert isinstance(p, SequencedV1)
            if p.boom:
                raise Exploded(f"cannot apply event seq {p.seq}")
            rows.rows[str(ev.envelope.id)] = {
                "event_id": str(ev.envelope.id),
                "key": p.key,
                "seq": p.seq,
                "applied": 1,
            }
            seqs.append(p.seq)
        self.prepared_seqs += seqs
        self.log.append(f"prepare {seqs}")
        if self.on_prepare is not None:
            self.on_prepare(seqs)
        return rows

    async def apply(self, session: AsyncSession, rows: Rows) -> None:
        seqs = [r["seq"] for r in rows.rows.values()]
        self.log.append(f"apply {seqs}")
        if self.transient_failures:
            self.transient_failures -= 1
            raise RetryLater("the database is away")
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await asyncio.wait_for(gate.wait(), timeout=10)
        stmt = dialect_insert(session, effects).values(list(rows.rows.values()))
        stmt = stmt.on_conflict_do_update(
            index_elements=[effects.c.event_id], set_={"applied": effects.c.applied + 1}
        )
        await session.execute(stmt)
        self.applied_batches.append(seqs)
        self.log.append(f"applied {seqs}")

    def handler(self) -> TwoPhaseHandler[Rows]:
        return TwoPhaseHandler(self.prepare, self.apply)


@dataclass
class World:
    engine: AsyncEngine
    handler: TwoPhaseEffects
    kafka: Kafka
    dead: DeadLetters
    make: Callable[[], EventConsumer]

    async def applied(self) -> dict[str, int]:
        async with session_factory(self.engine)() as s:
            return await applied_counts(s)

    async def stored(self) -> dict[TopicPartition, int]:
        t = consumer_offsets
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.c.topic, t.c.partition, t.c.offset))).all()
        return {TopicPartition(r.topic, r.partition): r.offset for r in rows}


@pytest.fixture
async def world(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[World]:
    engine = create_engine(await fresh_database())
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    handler = TwoPhaseEffects()
    kafka = Kafka()
    dead = DeadLetters()

    def make() -> EventConsumer:
        consumer = EventConsumer(
            group_id="g",
            topics=[TOPIC],
            bootstrap="127.0.0.1:1",
            sessions=session_factory(engine),
            inbox=inbox,
            offsets=consumer_offsets,
            handler=handler.handler(),
            producer=dead,
            max_backoff_s=0.05,
            pipelined=True,
        )
        consumer.attach(kafka)
        return consumer

    yield World(engine, handler, kafka, dead, make)
    await engine.dispose()


async def test_the_next_batch_is_prepared_while_the_previous_one_is_in_the_database(world: World) -> None:
    consumer = world.make()
    first = [sequenced("k", i) for i in range(3)]
    second = [sequenced("k", i) for i in range(3, 6)]
    # The first batch's transaction waits, inside the database, until the second batch is prepared:
    # without the pipeline this would never happen (and the gate times out).
    gate = asyncio.Event()
    world.handler.gate = gate
    world.handler.on_prepare = lambda seqs: gate.set() if 3 in seqs else None

    await consumer.submit({A: [record(A, i, env) for i, env in enumerate(first)]})
    await consumer.submit({A: [record(A, 3 + i, env) for i, env in enumerate(second)]})
    await consumer.drain()

    log = world.handler.log
    assert log.index("prepare [3, 4, 5]") < log.index("applied [0, 1, 2]") < log.index("apply [3, 4, 5]")
    # What was prepared is what was written: no event prepared twice.
    assert world.handler.prepared_seqs == [0, 1, 2, 3, 4, 5]
    assert set((await world.applied()).values()) == {1}
    assert len(await world.applied()) == 6
    assert consumer.processed == 6
    assert await world.stored() == {A: 5}
    assert world.kafka.commits == [{A: 3}, {A: 6}]


async def test_a_batch_claims_its_ids_after_the_previous_one_committed(world: World) -> None:
    consumer = world.make()
    envs = [sequenced("d", i) for i in range(4)]
    # The second batch repeats an event of the first (a relay republished it) and one of its own.
    await consumer.submit({A: [record(A, i, env) for i, env in enumerate(envs[:2])]})
    again = [envs[1], envs[2], envs[3], envs[3]]
    await consumer.submit({A: [record(A, 2 + i, env) for i, env in enumerate(again)]})
    await consumer.drain()

    applied = await world.applied()
    assert applied == {str(env.id): 1 for env in envs}
    assert consumer.duplicates == 2
    assert consumer.processed == 4
    # The second batch was prepared with the repeated event, then prepared again without it.
    assert world.handler.applied_batches == [[0, 1], [2, 3]]


async def test_a_transient_error_of_the_batch_in_flight_is_retried_in_order(world: World) -> None:
    consumer = world.make()
    world.handler.transient_failures = 2
    envs = [sequenced("t", i) for i in range(6)]
    await consumer.submit({A: [record(A, i, env) for i, env in enumerate(envs[:3])]})
    await consumer.submit({B: [record(B, i, env) for i, env in enumerate(envs[3:])]})
    await consumer.drain()

    assert world.handler.applied_batches == [[0, 1, 2], [3, 4, 5]]
    assert set((await world.applied()).values()) == {1}
    assert len(await world.applied()) == 6
    # Paused while waiting, resumed after.
    assert not consumer.paused
    assert not world.kafka.paused
    assert await world.stored() == {A: 2, B: 2}


async def test_poison_and_handler_errors_are_dead_lettered_and_the_rest_applied(world: World) -> None:
    consumer = world.make()
    good = [sequenced("p", i) for i in range(4)]
    boom = sequenced("p", 9, boom=True)
    await consumer.submit({A: [record(A, 0, good[0]), record(A, 1, good[1])]})
    await consumer.submit(
        {
            A: [
                record(A, 2, good[2]),
                record(A, 3, sequenced("p", 99), value=b"{not json"),
                record(A, 4, boom),
                record(A, 5, good[3]),
            ]
        }
    )
    await consumer.drain()

    assert set(await world.applied()) == {str(env.id) for env in good}
    reasons = sorted(h["dlq_reason"].decode() for h in world.dead.sent)
    assert reasons == ["handler_error", "malformed"]
    assert await world.stored() == {A: 5}


async def test_partitions_revoked_while_a_batch_waits_are_dropped_and_read_again(world: World) -> None:
    consumer = world.make()
    first = [sequenced("r", i) for i in range(2)]
    on_a = [sequenced("r", i) for i in range(2, 5)]
    on_b = [sequenced("r", i) for i in range(5, 7)]
    gate = asyncio.Event()
    world.handler.gate = gate
    revoked = False

    async def more(room: int, wait: bool) -> dict[TopicPartition, list[Any]]:
        nonlocal revoked
        if revoked:
            return {}
        revoked = True
        # The rebalance comes while the first batch is still in the database: it finishes (its offsets
        # are stored for the next owner) and the waiting batch loses what it read from A.
        assert wait
        gate.set()
        await consumer._on_revoked([A])
        world.kafka.assigned = {B}
        return {B: [record(B, i, env) for i, env in enumerate(on_b)]}

    await consumer.submit({A: [record(A, i, env) for i, env in enumerate(first)]})
    await consumer.submit({A: [record(A, 2 + i, env) for i, env in enumerate(on_a)]}, more=more)
    await consumer.drain()

    assert world.handler.applied_batches == [[0, 1], [5, 6]]
    assert await world.stored() == {A: 1, B: 1}
    # A's next owner starts after its stored offset and applies what this member dropped, once.
    owner = world.make()
    await owner.process({A: [record(A, 2 + i, env) for i, env in enumerate(on_a)]})
    applied = await world.applied()
    assert applied == {str(env.id): 1 for env in [*first, *on_a, *on_b]}
    assert owner.duplicates == 0


async def test_a_stopped_consumer_finishes_the_batch_in_flight(world: World) -> None:
    envs = [sequenced("s", i) for i in range(5)]
    fetched = [{A: [record(A, i, env) for i, env in enumerate(envs)]}]

    class Once(Kafka):
        async def getmany(self, *, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
            if fetched:
                return fetched.pop()
            stop.set()
            return await super().getmany(timeout_ms=timeout_ms, max_records=max_records)

    consumer = world.make()
    kafka = Once()
    consumer.attach(kafka)
    stop = asyncio.Event()
    await asyncio.wait_for(consumer.run(stop), timeout=30)

    assert len(await world.applied()) == 5
    assert await world.stored() == {A: 4}
    assert kafka.commits == [{A: 5}]


async def test_members_joining_and_leaving_a_pipelined_group_apply_every_event_once(
    world: World, kafka_bootstrap: str
) -> None:
    """On the real broker: a second member joins while events flow, then the first one stops; every
    rebalance revokes partitions with a batch in the database and one being read."""
    topic = unique_topic("pipeline")
    group = f"{topic}.group"
    await make_topics(kafka_bootstrap, topic, f"{group}.dlq", partitions=3)
    producer = create_producer(kafka_bootstrap, client_id="test-pipeline")
    await producer.start()

    def member() -> EventConsumer:
        return EventConsumer(
            group_id=group,
            topics=[topic],
            bootstrap=kafka_bootstrap,
            sessions=session_factory(world.engine),
            inbox=inbox,
            offsets=consumer_offsets,
            handler=world.handler.handler(),
            producer=producer,
            max_records=150,
            pipelined=True,
        )

    total = 3000
    sent: list[str] = []

    async def produce() -> None:
        for i in range(total):
            env = sequenced(f"m{i % 30}", i)
            key, value, headers = to_record(env)
            sent.append(str(env.id))
            await (await producer.send(topic, value=value, key=key, headers=headers))
            if i % 50 == 0:
                await asyncio.sleep(0.02)

    async def applied_at_least(n: int) -> bool:
        return len(await world.applied()) >= n

    first, second = member(), member()
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    await first.start()
    running = [asyncio.create_task(first.run(stop_first))]
    producing = asyncio.create_task(produce())
    try:
        await wait_for(lambda: applied_at_least(400), timeout_s=60, what="progress with one member")
        await second.start()
        running.append(asyncio.create_task(second.run(stop_second)))
        await wait_for(lambda: applied_at_least(1500), timeout_s=90, what="progress with two members")
        stop_first.set()
        await asyncio.wait_for(running[0], timeout=60)
        await first.stop()
        await producing
        await wait_for(lambda: applied_at_least(total), timeout_s=120, what="every event applied")
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.wait_for(asyncio.gather(*running, return_exceptions=True), timeout=60)
        await first.stop()
        await second.stop()
        await producer.stop()
    applied = await world.applied()
    assert set(applied) == set(sent)
    assert set(applied.values()) == {1}
    assert second.processed > 0
    assert first.processed + second.processed == total
