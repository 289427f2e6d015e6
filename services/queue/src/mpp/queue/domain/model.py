"""Visits, tickets and counters: state machines and the domain events they record.

Ticket states::

    waiting --call--> called --start--> serving --complete--> completed
       |  \\            |  ^ recall (up to the policy's max_calls)
       |   \\           +--no_show--> no_show
       |    +--------cancel (waiting or called)--> cancelled
       +--transfer (waiting, called or serving)--> transferred  (a new ticket continues the visit)

A visit ends when none of its tickets can still change (completed, no-show, cancelled or transferred,
the transfer's new ticket being one of the visit's tickets).

Durations (whole seconds): waiting = first call - issue; walking = start - first call (recalls included,
so waiting + walking + service = total); service = completion - start; total = completion - issue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.queue.domain.policy import Candidate

MAX_SEQUENCE = 9999


class QueueError(Exception):
    """Base of the queue service's domain errors."""


class WrongState(QueueError):
    def __init__(self, what: str, state: str, action: str) -> None:
        self.what, self.state, self.action = what, state, action
        super().__init__(f"{what} is {state}; cannot {action}")


class RecallLimitReached(QueueError):
    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        super().__init__(f"ticket was called {max_calls} times already")


class SequenceExhausted(QueueError):
    pass


class TicketState(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVING = "serving"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    TRANSFERRED = "transferred"


FINAL_STATES = frozenset(
    {TicketState.COMPLETED, TicketState.NO_SHOW, TicketState.CANCELLED, TicketState.TRANSFERRED}
)

STATE_LABELS = {
    TicketState.WAITING: "Menunggu dipanggil",
    TicketState.CALLED: "Dipanggil ke loket",
    TicketState.SERVING: "Sedang dilayani",
    TicketState.COMPLETED: "Selesai dilayani",
    TicketState.NO_SHOW: "Tidak hadir saat dipanggil",
    TicketState.CANCELLED: "Dibatalkan",
    TicketState.TRANSFERRED: "Dialihkan ke layanan lain",
}


def format_number(prefix: str, seq: int) -> str:
    """``A-012``: the prefix and a sequence of at least three digits (four from 1000)."""
    if not 1 <= seq <= MAX_SEQUENCE:
        raise SequenceExhausted(f"sequence {seq} outside 1..{MAX_SEQUENCE}")
    return f"{prefix}-{seq:03d}"


def seconds(start: datetime, end: datetime) -> int:
    """Whole seconds from ``start`` to ``end``, counted between the whole seconds the two instants fall
    in, so consecutive spans add up exactly: waiting + walking + service = total even when the instants
    carry fractions (truncating each span would lose up to a second per span)."""
    return max(0, math.floor(end.timestamp()) - math.floor(start.timestamp()))


# --- domain events (internal; the handlers map them to contract events) -------------------------


@dataclass(frozen=True)
class Called:
    at: datetime
    counter: str
    officer: str
    call_count: int


@dataclass(frozen=True)
class Started:
    at: datetime
    officer: str


@dataclass(frozen=True)
class Completed:
    at: datetime
    officer: str


@dataclass(frozen=True)
class NoShow:
    at: datetime


@dataclass(frozen=True)
class Cancelled:
    at: datetime
    by: str
    reason_code: str


@dataclass(frozen=True)
class Transferred:
    at: datetime
    officer: str
    to_ticket: Ticket
    reason: str


TicketEvent = Called | Started | Completed | NoShow | Cancelled | Transferred


@dataclass
class Ticket:
    id: str
    visit_id: str
    site: str
    agency: str
    service_type: str
    prefix: str
    day: str
    """The site-local day of issue (ISO date): numbers restart every day."""
    seq: int
    priority_group: PriorityGroup
    channel: Channel
    issued_at: datetime
    queued_at: datetime
    """When it joined its queue for ordering: the issue time, or earlier for a transferred ticket."""
    rank: int
    state: TicketState = TicketState.WAITING
    call_count: int = 0
    first_called_at: datetime | None = None
    called_at: datetime | None = None
    counter: str | None = None
    officer: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    transferred_from: str | None = None
    transferred_to: str | None = None
    decision: dict[str, object] | None = None
    events: list[TicketEvent] = field(default_factory=list)

    @property
    def number(self) -> str:
        return format_number(self.prefix, self.seq)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    def candidate(self) -> Candidate:
        return Candidate(self.id, self.number, self.priority_group, self.queued_at, self.seq)

    def _require(self, action: str, *states: TicketState) -> None:
        if self.state not in states:
            raise WrongState("ticket", self.state.value, action)

    def call(self, *, counter: str, officer: str, at: datetime, decision: dict[str, object]) -> None:
        self._require("call", TicketState.WAITING)
        self.state = TicketState.CALLED
        self.call_count = 1
        self.first_called_at = self.called_at = at
        self.counter, self.officer, self.decision = counter, officer, decision
        self.events.append(Called(at, counter, officer, 1))

    def recall(self, *, officer: str, at: datetime, max_calls: int) -> None:
        self._require("recall", TicketState.CALLED)
        if self.call_count >= max_calls:
            raise RecallLimitReached(max_calls)
        self.call_count += 1
        self.called_at, self.officer = at, officer
        assert self.counter is not None
        self.events.append(Called(at, self.counter, officer, self.call_count))

    def start(self, *, officer: str, at: datetime) -> None:
        self._require("start", TicketState.CALLED)
        self.state, self.started_at, self.officer = TicketState.SERVING, at, officer
        self.events.append(Started(at, officer))

    def complete(self, *, officer: str, at: datetime) -> None:
        self._require("complete", TicketState.SERVING)
        self.state, self.finished_at, self.officer = TicketState.COMPLETED, at, officer
        self.events.append(Completed(at, officer))

    def no_show(self, *, at: datetime) -> None:
        self._require("no_show", TicketState.CALLED)
        self.state, self.finished_at = TicketState.NO_SHOW, at
        self.events.append(NoShow(at))

    def cancel(self, *, by: str, reason_code: str, at: datetime) -> None:
        self._require("cancel", TicketState.WAITING, TicketState.CALLED)
        self.state, self.finished_at = TicketState.CANCELLED, at
        self.events.append(Cancelled(at, by, reason_code))

    def close_day(self, *, at: datetime, reason_code: str) -> None:
        """The site's day closed with the ticket still open: called and not answered, a no-show;
        waiting or being served, cancelled by the system with ``reason_code``."""
        if self.state is TicketState.CALLED:
            self.no_show(at=at)
            return
        self._require("close_day", TicketState.WAITING, TicketState.SERVING)
        self.state, self.finished_at = TicketState.CANCELLED, at
        self.events.append(Cancelled(at, "system", reason_code))

    def transfer(self, *, to: Ticket, officer: str, reason: str, at: datetime) -> None:
        self._require("transfer", TicketState.WAITING, TicketState.CALLED, TicketState.SERVING)
        self.state, self.finished_at, self.transferred_to = TicketState.TRANSFERRED, at, to.id
        self.events.append(Transferred(at, officer, to, reason))

    # Durations, in whole seconds; None until the moments they span have happened.
    def waiting_seconds(self, until: datetime | None = None) -> int:
        end = self.first_called_at or until or self.finished_at
        return 0 if end is None else seconds(self.issued_at, end)

    def walking_seconds(self) -> int:
        if self.first_called_at is None or self.started_at is None:
            return 0
        return seconds(self.first_called_at, self.started_at)

    def service_seconds(self) -> int:
        if self.started_at is None or self.finished_at is None:
            return 0
        return seconds(self.started_at, self.finished_at)

    def total_seconds(self) -> int:
        return 0 if self.finished_at is None else seconds(self.issued_at, self.finished_at)


def transfer_queued_at(old: Ticket, at: datetime, credit_minutes: int) -> datetime:
    """Where a transferred ticket joins its new queue (the fairness rule for transfers).

    The citizen already waited once: the new ticket ranks as if it had joined the target queue earlier by
    the time they waited in the first queue (issue to first call, or to the transfer if never called),
    capped at the target policy's ``transfer_credit_minutes``. It keeps its priority group. So a referral
    goes ahead of people who arrived only moments ago, but never ahead of people who have waited longer
    than the cap.
    """
    credit = min(old.waiting_seconds(until=at), credit_minutes * 60)
    return at - timedelta(seconds=credit)


@dataclass
class Visit:
    id: str
    site: str
    channel: Channel
    started_at: datetime
    ended_at: datetime | None = None
    tickets_total: int = 0
    tickets_served: int = 0

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def end_if_done(self, tickets: list[Ticket], at: datetime) -> bool:
        """End the visit when every ticket is finished; True if it ended now."""
        if self.ended or not tickets or not all(t.finished for t in tickets):
            return False
        # The visit ends when its last ticket finished. A concurrent transaction may have finished a
        # ticket of the visit a moment after ``at`` and committed first; its time counts then.
        self.ended_at = max([at, *(t.finished_at for t in tickets if t.finished_at is not None)])
        self.tickets_total = len(tickets)
        self.tickets_served = len([t for t in tickets if t.state is TicketState.COMPLETED])
        return True

    def end_at_day_close(self, tickets: list[Ticket], at: datetime) -> bool:
        """End the visit when its site's day closes, if none of its tickets is still open (a visit
        without tickets ends too); True if it ended now."""
        if self.ended or not all(t.finished for t in tickets):
            return False
        self.ended_at = max([at, *(t.finished_at for t in tickets if t.finished_at is not None)])
        self.tickets_total = len(tickets)
        self.tickets_served = len([t for t in tickets if t.state is TicketState.COMPLETED])
        return True


@dataclass
class Counter:
    code: str
    site: str
    agency: str
    service_types: tuple[str, ...]
    """Service types it calls now (a subset of the catalogue's)."""
    open: bool = False
    opened_at: datetime | None = None
    opened_by: str | None = None
    planned: bool = True
    calls_since_priority: int = 0
    tickets_served: int = 0

    def open_for(self, *, officer: str, service_types: tuple[str, ...], planned: bool, at: datetime) -> None:
        if self.open:
            raise WrongState("counter", "open", "open")
        self.open, self.opened_at, self.opened_by, self.planned = True, at, officer, planned
        self.service_types = service_types
        self.calls_since_priority = 0
        self.tickets_served = 0

    def close(self) -> None:
        if not self.open:
            raise WrongState("counter", "closed", "close")
        self.open = False
