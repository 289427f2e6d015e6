"""The board in memory: calls, counters, idempotence, out-of-order events, resumption, day boundary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.envelope import Envelope, registered_events
from mpp.contracts.events.queue import (
    CounterClosedV1,
    CounterCloseReason,
    ServiceCompletedV1,
    TicketCalledV1,
    TicketIssuedV1,
)
from mpp.contracts.examples import example_envelope
from mpp.contracts.kafka import to_record
from mpp.queue.board.feed import _may_change_a_board
from mpp.queue.board.state import (
    BOARD_EVENT_TYPES,
    BoardState,
    CounterClosed,
    CounterLabel,
    CounterOpened,
    ServiceStarted,
    TicketCalled,
    TicketLeft,
    change_from_event,
)

pytestmark = pytest.mark.unit

SITE = "mpp-kota-sukamaju"
JAKARTA = ZoneInfo("Asia/Jakarta")
T0 = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)  # 09:00 in Jakarta
LABELS = {
    "loket-01": CounterLabel("loket-01", "Loket 1", "disdukcapil"),
    "loket-03": CounterLabel("loket-03", "Loket 3", "disdukcapil"),
    "loket-05": CounterLabel("loket-05", "Loket 5", "dpmptsp"),
}


def board(**kw: int) -> BoardState:
    return BoardState(site=SITE, zone=JAKARTA, labels=LABELS, **kw)  # type: ignore[arg-type]


def called(
    number: str, counter: str = "loket-03", minute: int = 0, *, ticket: str | None = None, count: int = 1
) -> TicketCalled:
    agency = LABELS[counter].agency
    return TicketCalled(
        ticket_id=ticket or f"t-{number}",
        number=number,
        agency=agency,
        service_type=f"{agency}.svc",
        counter=counter,
        call_count=count,
        at=T0 + timedelta(minutes=minute),
    )


def test_a_call_is_shown_with_its_counter_and_announcement() -> None:
    b = board()
    update = b.apply(called("A-012"))

    assert update is not None and update.kind == "call"
    assert update.data["call"]["number"] == "A-012"
    assert update.data["call"]["counter_name"] == "Loket 3"
    assert update.data["call"]["announcement"] == "Nomor antrean A nol dua belas, silakan ke loket tiga"
    assert update.data["counter"] == {
        "counter": "loket-03",
        "name": "Loket 3",
        "agency": "disdukcapil",
        "open": True,
        "number": "A-012",
        "state": "called",
    }
    snap = b.snapshot(None, T0)
    assert [c["number"] for c in snap["calls"]] == ["A-012"]
    assert snap["event_id"] == b.event_id(1)


def test_the_same_call_twice_changes_nothing() -> None:
    b = board()
    b.apply(called("A-012"))

    assert b.apply(called("A-012")) is None
    assert b.seq == 1


def test_recent_calls_are_newest_first_even_when_events_arrive_out_of_order() -> None:
    b = board()
    b.apply(called("A-002", "loket-01", minute=5))
    b.apply(called("A-001", "loket-03", minute=1))
    b.apply(called("B-001", "loket-05", minute=3))

    assert [c["number"] for c in b.snapshot(None, T0)["calls"]] == ["A-002", "B-001", "A-001"]


def test_a_late_older_call_does_not_take_the_counter_from_a_newer_one() -> None:
    b = board()
    b.apply(called("A-002", minute=5))
    b.apply(called("A-001", minute=1))

    tile = next(t for t in b.snapshot(None, T0)["counters"] if t["counter"] == "loket-03")
    assert tile["number"] == "A-002"


def test_a_recall_replaces_the_earlier_call_of_the_ticket() -> None:
    b = board()
    b.apply(called("A-001", minute=1))
    b.apply(called("A-002", "loket-01", minute=2))
    update = b.apply(called("A-001", minute=4, count=2))

    assert update is not None
    assert [(c["number"], c["call_count"]) for c in b.snapshot(None, T0)["calls"]] == [
        ("A-001", 2),
        ("A-002", 1),
    ]
    # The first call arriving again after the recall is ignored.
    assert b.apply(called("A-001", minute=1)) is None


def test_serving_then_completion_frees_the_counter() -> None:
    b = board()
    b.apply(called("A-001"))
    serving = b.apply(ServiceStarted("t-A-001", "loket-03", T0 + timedelta(minutes=1)))
    done = b.apply(TicketLeft("t-A-001", "loket-03", T0 + timedelta(minutes=9)))

    assert serving is not None and serving.data["counter"]["state"] == "serving"
    assert done is not None and done.data["counter"]["number"] is None
    assert done.data["counter"]["open"] is True
    # The call stays in the history.
    assert [c["number"] for c in b.snapshot(None, T0)["calls"]] == ["A-001"]


def test_leaving_a_counter_that_already_called_the_next_ticket_changes_nothing() -> None:
    b = board()
    b.apply(called("A-001", minute=1))
    b.apply(called("A-002", minute=8))

    assert b.apply(TicketLeft("t-A-001", "loket-03", T0 + timedelta(minutes=7))) is None
    assert b.apply(TicketLeft("t-A-001", None, T0 + timedelta(minutes=7))) is None


def test_counters_open_and_close() -> None:
    b = board()
    opened = b.apply(CounterOpened("loket-05", "dpmptsp", T0))
    b.apply(called("C-001", "loket-05", minute=1))
    closed = b.apply(CounterClosed("loket-05", "dpmptsp", T0 + timedelta(minutes=30)))

    assert opened is not None and opened.data["counter"]["open"] is True
    assert closed is not None and closed.data["counter"] == {
        "counter": "loket-05",
        "name": "Loket 5",
        "agency": "dpmptsp",
        "open": False,
        "number": None,
        "state": None,
    }
    # An opening older than the closing, arriving late, is ignored.
    assert b.apply(CounterOpened("loket-05", "dpmptsp", T0 + timedelta(minutes=2))) is None


def test_an_agency_zone_sees_only_its_calls_and_counters() -> None:
    b = board()
    b.apply(called("A-001", "loket-01", minute=1))
    b.apply(called("C-001", "loket-05", minute=2))

    snap = b.snapshot("dpmptsp", T0)
    assert [c["number"] for c in snap["calls"]] == ["C-001"]
    assert {t["counter"] for t in snap["counters"]} == {"loket-05"}


def test_only_the_last_few_calls_are_kept() -> None:
    b = board(recent=3)
    for i in range(20):
        b.apply(called(f"A-{i + 1:03d}", minute=i))

    assert [c["number"] for c in b.snapshot(None, T0)["calls"]] == ["A-020", "A-019", "A-018"]
    assert len(b.calls) <= 12


def test_yesterdays_calls_are_not_shown_today() -> None:
    b = board()
    b.apply(called("A-099"))
    tomorrow = T0 + timedelta(days=1)

    snap = b.snapshot(None, tomorrow)
    assert snap["calls"] == []
    assert all(t["number"] is None for t in snap["counters"])


def test_missed_updates_are_replayed_from_the_log() -> None:
    b = board(log_size=3)
    for i in range(5):
        b.apply(called(f"A-{i + 1:03d}", minute=i))

    replay = b.since(b.event_id(3))
    assert replay is not None and [u.seq for u in replay] == [4, 5]
    assert b.since(b.event_id(5)) == []
    assert b.since(b.event_id(1)) is None  # fell out of the log: a snapshot is needed
    assert b.since("other-3") is None  # another process or an earlier life of this one
    assert b.since(b.event_id(9)) is None
    assert b.since("garbage") is None


def _wrap(payload: object) -> Envelope:
    return Envelope.wrap(
        payload,  # type: ignore[arg-type]
        producer="mpp.queue",
        agency="disdukcapil",
        site=SITE,
        subject=str(uuid.uuid4()),
        correlation_id=None,
    )


def test_queue_events_become_board_changes() -> None:
    call = TicketCalledV1(
        visit_id="v1",
        ticket_id="t1",
        ticket_number="A-012",
        service_type="disdukcapil.ktp-el-rekam",
        agency="disdukcapil",
        counter="loket-03",
        officer_ref="officer-1",
        call_count=2,
        called_at=T0,
        waiting_seconds=60,
    )
    closed = CounterClosedV1(
        counter="loket-03",
        agency="disdukcapil",
        officer_ref="officer-1",
        reason=CounterCloseReason.END_OF_DAY,
        opened_at=T0,
        closed_at=T0 + timedelta(hours=8),
        tickets_served=3,
    )
    issued = TicketIssuedV1(
        visit_id="v1",
        ticket_id="t1",
        ticket_number="A-012",
        service_type="disdukcapil.ktp-el-rekam",
        agency="disdukcapil",
        channel="walk_in",  # type: ignore[arg-type]
        issued_at=T0,
    )

    assert change_from_event(_wrap(call)) == TicketCalled(
        "t1", "A-012", "disdukcapil", "disdukcapil.ktp-el-rekam", "loket-03", 2, T0
    )
    assert change_from_event(_wrap(closed)) == CounterClosed(
        "loket-03", "disdukcapil", T0 + timedelta(hours=8)
    )
    assert change_from_event(_wrap(issued)) is None


def test_completion_event_frees_its_counter() -> None:
    done = ServiceCompletedV1(
        visit_id="v1",
        ticket_id="t1",
        ticket_number="A-012",
        service_type="disdukcapil.ktp-el-rekam",
        agency="disdukcapil",
        counter="loket-03",
        officer_ref="officer-1",
        channel="walk_in",  # type: ignore[arg-type]
        issued_at=T0,
        completed_at=T0 + timedelta(minutes=20),
        waiting_seconds=60,
        walking_seconds=30,
        service_seconds=600,
        total_seconds=690,
    )
    assert change_from_event(_wrap(done)) == TicketLeft("t1", "loket-03", T0 + timedelta(minutes=20))


@pytest.mark.parametrize("cls", registered_events(), ids=lambda c: f"{c.event_type}.v{c.event_version}")
def test_the_feed_skips_unread_exactly_the_events_that_change_no_board(cls: type) -> None:
    """The board feed reads only records whose ``ce_type`` changes a board; every other event of the
    catalogue, parsed, would have changed nothing."""
    envelope = example_envelope(cls)
    _key, _value, headers = to_record(envelope)
    changes_a_board = change_from_event(envelope) is not None
    assert _may_change_a_board(headers) == changes_a_board
    assert (envelope.type in BOARD_EVENT_TYPES) == changes_a_board


def test_a_record_without_a_type_header_is_read() -> None:
    assert _may_change_a_board([("ce_id", b"x")])
    assert _may_change_a_board(None)
