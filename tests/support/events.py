"""A test-only event with a key and a sequence number, and a tiny read model to count effects."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.envelope import Envelope, EventPayload, event
from mpp.kit.consumer import ReceivedEvent
from mpp.kit.db import add_runtime_tables, dialect_insert

TEST_TOPIC_PLACEHOLDER = "test.sequenced"


@event("TestSequenced", 1, topic=TEST_TOPIC_PLACEHOLDER, domain="test")
class SequencedV1(EventPayload):
    """Test event: the n-th event of one key."""

    key: str
    seq: int = Field(ge=0)
    boom: bool = False


metadata = MetaData()
effects = Table(
    "effects",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("key", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("applied", Integer, nullable=False),
)
outbox, inbox, consumer_offsets = add_runtime_tables(metadata)


def sequenced(key: str, seq: int, *, boom: bool = False) -> Envelope:
    return Envelope.wrap(
        SequencedV1(key=key, seq=seq, boom=boom),
        producer="tests",
        agency="test-agency",
        site="test-site",
        subject=key,
    )


class Exploded(Exception):
    """A deterministic handler failure."""


class EffectHandler:
    """Counts how many times each event's effect was applied; optionally fails on ``boom`` events."""

    def __init__(self) -> None:
        self.fail_on_boom = True

    async def __call__(self, session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        rows = []
        for ev in events:
            p = ev.envelope.payload
            assert isinstance(p, SequencedV1)
            if p.boom and self.fail_on_boom:
                raise Exploded(f"cannot apply event seq {p.seq}")
            rows.append({"event_id": str(ev.envelope.id), "key": p.key, "seq": p.seq, "applied": 1})
        if not rows:
            return
        stmt = dialect_insert(session, effects).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[effects.c.event_id], set_={"applied": effects.c.applied + 1}
        )
        await session.execute(stmt)


async def applied_counts(session: AsyncSession) -> dict[str, int]:
    return {r.event_id: r.applied for r in (await session.execute(select(effects))).all()}
