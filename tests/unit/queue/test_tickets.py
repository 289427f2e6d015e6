"""Ticket lifecycle, numbering, durations, the transfer rule and visit ending (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.queue.domain.model import (
    Called,
    Completed,
    RecallLimitReached,
    SequenceExhausted,
    Started,
    Ticket,
    TicketState,
    Visit,
    WrongState,
    format_number,
    transfer_queued_at,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)


def new_ticket(seq: int = 12, issued_at: datetime = T0, ticket_id: str = "t1") -> Ticket:
    return Ticket(
        id=ticket_id,
        visit_id="v1",
        site="mpp-kota-sukamaju",
        agency="disdukcapil",
        service_type="disdukcapil.kk",
        prefix="B",
        day="2026-11-03",
        seq=seq,
        priority_group=PriorityGroup.NONE,
        channel=Channel.WALK_IN,
        issued_at=issued_at,
        queued_at=issued_at,
        rank=0,
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class TestNumbering:
    @pytest.mark.parametrize(
        ("seq", "number"), [(1, "A-001"), (12, "A-012"), (999, "A-999"), (1000, "A-1000")]
    )
    def test_numbers_have_the_prefix_and_at_least_three_digits(self, seq: int, number: str) -> None:
        assert format_number("A", seq) == number

    @pytest.mark.parametrize("seq", [0, 10_000])
    def test_a_sequence_outside_the_day_range_is_refused(self, seq: int) -> None:
        with pytest.raises(SequenceExhausted):
            format_number("A", seq)


class TestLifecycle:
    def test_call_start_complete_records_events_and_durations(self) -> None:
        t = new_ticket()
        t.call(counter="loket-03", officer="o1", at=at(10), decision={})
        t.recall(officer="o1", at=at(11), max_calls=3)
        t.start(officer="o1", at=at(12.5))
        t.complete(officer="o1", at=at(20))

        assert t.state is TicketState.COMPLETED
        assert [type(e) for e in t.events] == [Called, Called, Started, Completed]
        assert (t.waiting_seconds(), t.walking_seconds(), t.service_seconds()) == (600, 150, 450)
        assert t.total_seconds() == t.waiting_seconds() + t.walking_seconds() + t.service_seconds() == 1200

    def test_recalls_stop_at_the_policy_limit(self) -> None:
        t = new_ticket()
        t.call(counter="loket-03", officer="o1", at=at(1), decision={})
        t.recall(officer="o1", at=at(2), max_calls=2)

        with pytest.raises(RecallLimitReached):
            t.recall(officer="o1", at=at(3), max_calls=2)
        t.no_show(at=at(4))
        assert (t.state, t.call_count) == (TicketState.NO_SHOW, 2)

    @pytest.mark.parametrize(
        ("action", "state"),
        [("start", TicketState.WAITING), ("complete", TicketState.WAITING), ("no_show", TicketState.WAITING)],
    )
    def test_an_action_out_of_order_is_refused(self, action: str, state: TicketState) -> None:
        t = new_ticket()

        with pytest.raises(WrongState) as raised:
            if action == "no_show":
                t.no_show(at=at(1))
            else:
                getattr(t, action)(officer="o1", at=at(1))
        assert raised.value.state == state.value

    def test_a_served_ticket_cannot_be_cancelled(self) -> None:
        t = new_ticket()
        t.call(counter="loket-03", officer="o1", at=at(1), decision={})
        t.start(officer="o1", at=at(2))

        with pytest.raises(WrongState):
            t.cancel(by="citizen", reason_code="citizen_left", at=at(3))

    def test_a_cancelled_waiting_ticket_counts_its_wait_until_cancellation(self) -> None:
        t = new_ticket()
        t.cancel(by="citizen", reason_code="citizen_left", at=at(7))

        assert t.waiting_seconds() == 420


class TestTransferRule:
    def test_the_credit_is_the_wait_in_the_first_queue(self) -> None:
        old = new_ticket()
        old.call(counter="loket-03", officer="o1", at=at(6), decision={})

        assert transfer_queued_at(old, at(20), credit_minutes=15) == at(20) - timedelta(minutes=6)

    def test_the_credit_is_capped(self) -> None:
        old = new_ticket()
        old.call(counter="loket-03", officer="o1", at=at(50), decision={})

        assert transfer_queued_at(old, at(60), credit_minutes=15) == at(45)

    def test_a_never_called_ticket_brings_its_wait_so_far(self) -> None:
        assert transfer_queued_at(new_ticket(), at(4), credit_minutes=15) == at(0)


class TestVisitEnd:
    def test_the_visit_ends_when_every_ticket_is_finished(self) -> None:
        visit = Visit(id="v1", site="s", channel=Channel.WALK_IN, started_at=T0)
        done, waiting = new_ticket(ticket_id="a"), new_ticket(ticket_id="b")
        done.call(counter="c", officer="o", at=at(1), decision={})
        done.start(officer="o", at=at(2))
        done.complete(officer="o", at=at(3))

        assert not visit.end_if_done([done, waiting], at(3))
        waiting.cancel(by="officer", reason_code="wrong_service", at=at(4))
        assert visit.end_if_done([done, waiting], at(4))
        assert (visit.tickets_total, visit.tickets_served, visit.ended_at) == (2, 1, at(4))
        assert not visit.end_if_done([done, waiting], at(5))

    def test_a_visit_without_tickets_stays_open(self) -> None:
        visit = Visit(id="v1", site="s", channel=Channel.WALK_IN, started_at=T0)

        assert not visit.end_if_done([], at(1))
