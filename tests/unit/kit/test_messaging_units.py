"""Pure parts of the messaging runtime: error classification, dead-letter headers, outbox rows."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.events.licensing import ApplicationSubmittedV1
from mpp.contracts.examples import example_envelope
from mpp.contracts.kafka import from_record, header_map, to_record
from mpp.kit import collector
from mpp.kit.consumer import (
    EventConsumer,
    ReceivedEvent,
    TwoPhaseHandler,
    dead_letter_headers,
)
from mpp.kit.db import CONFLICT_ATTEMPTS, is_conflict, is_transient, normalise_url, retrying_conflicts
from mpp.kit.outbox import decode_headers, outbox_row
from tests.support.events import consumer_offsets, inbox
from tools.probe_projector_cpu import Record, StandInSession

pytestmark = pytest.mark.unit


class TestErrorClassification:
    @pytest.mark.parametrize(
        "error",
        [
            exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")),
            exc.InterfaceError("SELECT 1", {}, Exception("connection closed")),
            ConnectionRefusedError(111, "refused"),
            TimeoutError(),
            exc.TimeoutError("pool exhausted"),
        ],
        ids=["operational", "interface", "refused", "timeout", "pool-timeout"],
    )
    def test_outages_are_transient(self, error: BaseException) -> None:
        assert is_transient(error)

    @pytest.mark.parametrize(
        "error",
        [
            exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
            ValueError("bad value"),
            KeyError("missing"),
            exc.ProgrammingError("SELECT", {}, Exception("syntax error")),
        ],
        ids=["integrity", "value", "key", "programming"],
    )
    def test_bugs_and_bad_data_are_deterministic(self, error: BaseException) -> None:
        assert not is_transient(error)


class _PgError(Exception):
    """A driver error with PostgreSQL's SQLSTATE, as asyncpg raises them."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


class TestConflictRetry:
    @pytest.mark.parametrize(
        ("error", "conflict"),
        [
            (_PgError("40P01"), True),
            (_PgError("40001"), True),
            (exc.DBAPIError("SELECT", {}, _PgError("40P01")), True),
            (_PgError("23505"), False),
            (_PgError("08006"), False),
            (exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")), False),
            (ValueError("40P01"), False),
        ],
        ids=[
            "deadlock",
            "serialization",
            "wrapped-deadlock",
            "unique",
            "connection",
            "sqlite-locked",
            "value",
        ],
    )
    def test_only_deadlocks_and_serialization_failures_are_conflicts(
        self, error: BaseException, conflict: bool
    ) -> None:
        assert is_conflict(error) is conflict

    async def test_a_rolled_back_transaction_runs_again_until_it_commits(self) -> None:
        runs: list[int] = []

        async def attempt() -> str:
            runs.append(len(runs) + 1)
            if len(runs) < 3:
                raise _PgError("40P01")
            return "committed"

        assert await retrying_conflicts(attempt) == "committed"
        assert runs == [1, 2, 3]

    @pytest.mark.parametrize(
        ("sqlstate", "runs"),
        [("40001", CONFLICT_ATTEMPTS), ("23505", 1)],
        ids=["conflict-every-time", "not-a-conflict"],
    )
    async def test_the_error_is_raised_after_the_last_attempt_or_at_once(
        self, sqlstate: str, runs: int
    ) -> None:
        attempts: list[int] = []

        async def attempt() -> None:
            attempts.append(1)
            raise _PgError(sqlstate)

        with pytest.raises(_PgError):
            await retrying_conflicts(attempt)
        assert len(attempts) == runs


class TestDeadLetterHeaders:
    def test_carry_the_origin_and_the_reason_and_replace_old_ones(self) -> None:
        record = SimpleNamespace(
            topic="mpp.licensing.applications",
            partition=4,
            offset=1234,
            headers=[("ce_type", b"ApplicationSubmitted"), ("dlq_reason", b"stale")],
        )
        headers = header_map(
            dead_letter_headers(record, group_id="g", reason="handler_error", error="boom", attempts=3)
        )
        assert headers["ce_type"] == "ApplicationSubmitted"
        assert headers["dlq_origin_topic"] == "mpp.licensing.applications"
        assert (headers["dlq_origin_partition"], headers["dlq_origin_offset"]) == ("4", "1234")
        assert (headers["dlq_reason"], headers["dlq_error"], headers["dlq_attempts"]) == (
            "handler_error",
            "boom",
            "3",
        )
        assert headers["dlq_consumer_group"] == "g"
        assert datetime.fromisoformat(headers["dlq_failed_at"]).tzinfo is not None


class TestOutboxRow:
    def test_holds_a_record_that_reads_back_as_the_same_event(self) -> None:
        envelope = example_envelope(ApplicationSubmittedV1)
        row = outbox_row(envelope, datetime.now(UTC))
        assert row["topic"] == "mpp.licensing.applications"
        assert row["key"] == envelope.subject.encode()
        assert row["sent_at"] is None
        assert from_record(row["value"], decode_headers(row["headers"])) == envelope


class TestDatabaseUrls:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
            ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
            ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
            ("sqlite+aiosqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ],
    )
    def test_plain_urls_get_the_async_driver(self, given: str, expected: str) -> None:
        assert normalise_url(given) == expected


class TestCollectorPausedDuringBatches:
    def test_off_while_any_batch_runs_and_restored_after_the_last(self) -> None:
        assert gc.isenabled()
        try:
            with collector.paused():
                assert not gc.isenabled()
                with collector.paused():  # a second consumer's batch in the same process
                    assert not gc.isenabled()
                assert not gc.isenabled()
            assert gc.isenabled()
        finally:
            gc.enable()

    def test_left_off_when_the_process_had_turned_it_off(self) -> None:
        gc.disable()
        try:
            with collector.paused():
                assert not gc.isenabled()
            assert not gc.isenabled()
        finally:
            gc.enable()

    async def test_a_coroutine_marked_pausing_runs_with_it_off_and_gives_it_back(self) -> None:
        seen: list[bool] = []

        @collector.pausing
        async def read(fail: bool) -> int:
            seen.append(gc.isenabled())
            await asyncio.sleep(0)
            if fail:
                raise RuntimeError("read failed")
            return 7

        assert await read(False) == 7
        with pytest.raises(RuntimeError):
            await read(True)
        assert seen == [False, False]
        assert gc.isenabled()

    def test_restored_when_the_batch_fails(self) -> None:
        with pytest.raises(RuntimeError), collector.paused():
            raise RuntimeError("handler error")
        assert gc.isenabled()

    def test_overlapping_batches_run_one_collection_once_it_has_been_off_long_enough(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        collections: list[bool] = []
        collect = gc.collect

        def counted_collect(generation: int = 2) -> int:
            collections.append(gc.isenabled())
            return collect(generation)

        monkeypatch.setattr(gc, "collect", counted_collect)
        try:
            monkeypatch.setattr(collector, "OFF_MAX_S", 3600.0)
            with collector.paused():
                with collector.paused():
                    pass
                assert collections == []  # off for less than the limit: nothing runs
            monkeypatch.setattr(collector, "OFF_MAX_S", 0.0)
            with collector.paused():
                with collector.paused():
                    pass
                # The other batch still runs: one collection, and the collector stays off.
                assert collections == [False]
                assert not gc.isenabled()
            assert collections == [False]
            assert gc.isenabled()
        finally:
            gc.enable()

    def test_on_while_an_outage_is_waited_out_and_off_again_after(self) -> None:
        try:
            with collector.paused():
                with collector.running():
                    assert gc.isenabled()
                assert not gc.isenabled()
            assert gc.isenabled()
        finally:
            gc.enable()

    def test_a_wait_outside_any_batch_leaves_it_as_it_is(self) -> None:
        with collector.running():
            assert gc.isenabled()
        assert gc.isenabled()
        gc.disable()
        try:
            with collector.paused(), collector.running():
                assert not gc.isenabled()
            assert not gc.isenabled()
        finally:
            gc.enable()


def _records(n: int) -> list[Any]:
    envelope = example_envelope(ApplicationSubmittedV1)
    records: list[Any] = []
    for offset in range(n):
        key, value, headers = to_record(envelope.model_copy(update={"id": uuid.uuid4()}))
        records.append(Record("t", 0, offset, key, value, headers))
    return records


def _consumer(handler: Any, **options: Any) -> EventConsumer:
    return EventConsumer(
        group_id="g",
        topics=["t"],
        bootstrap="unused",
        sessions=StandInSession,  # type: ignore[arg-type]
        inbox=inbox,
        offsets=consumer_offsets,
        handler=handler,
        producer=None,
        offsets_from_database_only=True,
        **options,
    )


@pytest.fixture
def enabled(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry each time the collector is turned back on."""
    calls: list[bool] = []
    enable = gc.enable

    def counted_enable() -> None:
        calls.append(True)
        enable()

    monkeypatch.setattr(gc, "enable", counted_enable)
    return calls


class TestCollectorAcrossABatch:
    """``EventConsumer.process`` keeps the collector off from the parse to the end of the apply, and
    turns it back on once the batch is done."""

    async def test_off_through_parse_and_apply_and_on_after(self, enabled: list[bool]) -> None:
        seen: list[bool] = []

        async def handler(_session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
            seen.append(gc.isenabled())
            seen.append(len(events) == 3)

        records = _records(3)
        consumer = _consumer(handler)
        assert gc.isenabled()

        await consumer.process({TopicPartition("t", 0): records})

        assert seen == [False, True]
        assert consumer.processed == 3
        assert gc.isenabled()
        assert len(enabled) == 1  # once, after the batch: not between its parse and its apply

    async def test_pipelined_off_from_the_next_batch_parse_to_the_end_of_its_apply(
        self, enabled: list[bool]
    ) -> None:
        """A pipelined batch is read and prepared while the previous one is in the database; the collector
        stays off through both, and comes back once, when the last of them is applied."""
        gate = asyncio.Event()
        seen: list[tuple[str, int, bool]] = []

        def prepare(events: Sequence[ReceivedEvent], into: list[int] | None) -> list[int]:
            offsets = [ev.offset for ev in events]
            seen.append(("prepare", offsets[0], gc.isenabled()))
            if offsets[0] == 3:
                gate.set()  # the first batch's transaction goes on once the second one is prepared
            return [*(into or []), *offsets]

        async def apply(_session: AsyncSession, prepared: list[int]) -> None:
            if prepared[0] == 0:
                await asyncio.wait_for(gate.wait(), timeout=10)
            seen.append(("apply", prepared[0], gc.isenabled()))

        records = _records(6)
        consumer = _consumer(TwoPhaseHandler(prepare, apply), pipelined=True)
        assert gc.isenabled()

        await consumer.submit({TopicPartition("t", 0): records[:3]})
        await consumer.submit({TopicPartition("t", 0): records[3:]})
        await consumer.drain()

        # The second batch was prepared while the first one waited in the database.
        assert seen == [
            ("prepare", 0, False),
            ("prepare", 3, False),
            ("apply", 0, False),
            ("apply", 3, False),
        ]
        assert consumer.processed == 6
        assert gc.isenabled()
        assert len(enabled) == 1  # once, after the second batch: not between the two


# --- the heap after startup ------------------------------------------------------------------------


async def test_a_started_service_keeps_its_startup_objects_out_of_the_collectors_scans(
    tmp_path: Path,
) -> None:
    """What the startup built lives as long as the process: full collections no longer scan it (they
    would stop the event loop for about 0.1 s each under load); what is made after is collected as usual."""
    from mpp.notification.app import create_app
    from mpp.notification.config import NotificationSettings

    settings = NotificationSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", relay_enabled=False, consumer_enabled=False
    )
    app = create_app(settings)
    built_at_startup: list[object] = [object()]
    try:
        assert any(o is built_at_startup for o in gc.get_objects())
        async with app.router.lifespan_context(app):
            made_later: list[object] = [object()]
            assert gc.get_freeze_count() > 0
            assert not any(o is built_at_startup for o in gc.get_objects())
            assert any(o is made_later for o in gc.get_objects())
    finally:
        gc.unfreeze()


# --- the relay between batches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("published", "woken", "coalesces"),
    [
        (7, False, True),  # a batch that was not full: the commits right behind join the next one
        (100, False, False),  # a full batch: more is waiting, straight back
        (0, True, True),  # a commit woke the relay: the ones right behind it join its batch
        (0, False, False),  # the poll interval passed with nothing committed: look again at once
    ],
)
async def test_the_relay_waits_for_the_commits_right_behind_before_its_next_batch(
    monkeypatch: pytest.MonkeyPatch, published: int, woken: bool, coalesces: bool
) -> None:
    from mpp.kit import relay as relay_module
    from tests.support.events import outbox

    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    relay = relay_module.OutboxRelay(
        engine=SimpleNamespace(),  # type: ignore[arg-type]  # no statement runs between batches
        outbox=outbox,
        producer=SimpleNamespace(),
        batch_size=100,
        poll_interval_s=0.02,
        coalesce_s=0.25,
    )
    monkeypatch.setattr(asyncio, "sleep", sleep)
    if woken:
        relay.wakeup.set()
    await relay._pause(published, asyncio.Event())
    assert slept == ([0.25] if coalesces else [])
