""" "Your number is almost called": the place of a waiting ticket in its queue, derived from the queue's
own events.

The queue orders a service's waiting tickets by a static *rank*: the issue time minus the head start of
the ticket's priority group (its weight over the ageing rate), minus the waiting credit a transferred
ticket brings from its first queue (capped). Ticket events carry the issue time, the priority group and
the ticket a transfer came from, so the notification service keeps its own copy of each queue (per site,
service type and local day) and, after every call, tells the citizens whose tickets now have at most
``tickets_ahead`` tickets before them, once per ticket.

It is an estimate of the queue's order, not the queue's decision: the head starts and the transfer cap
are configured here and must mirror the agencies' ordering policies (the defaults mirror the queue's
default policy); ``priority_every_nth``, appointments ranked at their slot start and counters serving
several services are not modelled. Each error only moves the message one call earlier or later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mpp.contracts.events.common import PriorityGroup


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def queue_rank(
    issued_at: datetime,
    group: PriorityGroup,
    head_start_minutes: Mapping[PriorityGroup, float],
    *,
    transfer_credit_s: float = 0.0,
) -> int:
    """The ticket's place key in its queue (milliseconds; smaller is called earlier)."""
    head_start_ms = round(head_start_minutes.get(group, 0.0) * 60_000)
    return epoch_ms(issued_at) - head_start_ms - round(max(transfer_credit_s, 0.0) * 1000)


def transfer_credit(
    first_issued_at: datetime | None, first_left_at: datetime | None, cap_minutes: float
) -> float:
    """Seconds of credit a transferred ticket brings: the time waited in its first queue, capped."""
    if first_issued_at is None or first_left_at is None:
        return 0.0
    waited = (first_left_at - first_issued_at).total_seconds()
    return max(0.0, min(waited, cap_minutes * 60.0))


@dataclass(frozen=True)
class WaitingTicket:
    ticket_id: str
    rank_ms: int
    issued_at: datetime
    alerted: bool


def order(waiting: Sequence[WaitingTicket]) -> list[WaitingTicket]:
    """Call order: rank, then the earlier issue, then the id (FIFO among equals)."""
    return sorted(waiting, key=lambda t: (t.rank_ms, t.issued_at, t.ticket_id))


def to_alert(waiting: Sequence[WaitingTicket], tickets_ahead: int) -> list[tuple[WaitingTicket, int]]:
    """The tickets not alerted yet that have at most ``tickets_ahead`` tickets before them, with how
    many. A ticket that overtakes others (priority) is alerted at the first call that finds it within
    reach; one that was alerted and then overtaken is not alerted again."""
    return [
        (ticket, ahead)
        for ahead, ticket in enumerate(order(waiting)[: tickets_ahead + 1])
        if not ticket.alerted
    ]
