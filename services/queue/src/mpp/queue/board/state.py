"""A site's board in memory: the recent calls and what each counter is dealing with.

Every change is idempotent and carries its time, so the same change applied twice (a replayed event, or an
event that also reached the board through the database at startup) and changes arriving out of order (the
visits topic is partitioned by visit) leave the same board. Each change that alters the board gets a
sequence number; subscribers that reconnect with the id of the last update they saw get the missed updates
from a bounded log, or a full snapshot when the log no longer has them or the process restarted.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Any

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.queue import (
    CounterClosedV1,
    CounterOpenedV1,
    ServiceCompletedV1,
    ServiceStartedV1,
    TicketCalledV1,
    TicketCancelledV1,
    TicketNoShowV1,
    TicketTransferredV1,
)
from mpp.queue.board.words import announcement

RECENT_CALLS = 8
LOG_SIZE = 500


@dataclass(frozen=True)
class CounterLabel:
    code: str
    name: str
    agency: str


# --- changes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketCalled:
    ticket_id: str
    number: str
    agency: str
    service_type: str
    counter: str
    call_count: int
    at: datetime


@dataclass(frozen=True)
class ServiceStarted:
    ticket_id: str
    counter: str
    at: datetime


@dataclass(frozen=True)
class TicketLeft:
    """The ticket left its counter: completed, not answered, cancelled or transferred."""

    ticket_id: str
    counter: str | None
    at: datetime


@dataclass(frozen=True)
class CounterOpened:
    counter: str
    agency: str
    at: datetime


@dataclass(frozen=True)
class CounterClosed:
    counter: str
    agency: str
    at: datetime


Change = TicketCalled | ServiceStarted | TicketLeft | CounterOpened | CounterClosed


BOARD_EVENT_TYPES: frozenset[str] = frozenset(
    cls.event_type
    for cls in (
        TicketCalledV1,
        ServiceStartedV1,
        ServiceCompletedV1,
        TicketNoShowV1,
        TicketCancelledV1,
        TicketTransferredV1,
        CounterOpenedV1,
        CounterClosedV1,
    )
)
"""The event types that change a board (:func:`change_from_event`); the feed skips the others unread."""


def change_from_event(envelope: Envelope) -> Change | None:
    """The board's view of a queue event, or None for events that do not change a board."""
    p = envelope.payload
    match p:
        case TicketCalledV1():
            return TicketCalled(
                ticket_id=p.ticket_id,
                number=p.ticket_number,
                agency=p.agency,
                service_type=p.service_type,
                counter=p.counter,
                call_count=p.call_count,
                at=p.called_at,
            )
        case ServiceStartedV1():
            return ServiceStarted(ticket_id=p.ticket_id, counter=p.counter, at=p.started_at)
        case ServiceCompletedV1():
            return TicketLeft(ticket_id=p.ticket_id, counter=p.counter, at=p.completed_at)
        case TicketNoShowV1():
            return TicketLeft(ticket_id=p.ticket_id, counter=p.counter, at=p.marked_at)
        case TicketCancelledV1():
            return TicketLeft(ticket_id=p.ticket_id, counter=None, at=p.cancelled_at)
        case TicketTransferredV1():
            return TicketLeft(ticket_id=p.ticket_id, counter=p.from_counter, at=p.transferred_at)
        case CounterOpenedV1():
            return CounterOpened(counter=p.counter, agency=p.agency, at=p.opened_at)
        case CounterClosedV1():
            return CounterClosed(counter=p.counter, agency=p.agency, at=p.closed_at)
    return None


# --- board --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    ticket_id: str
    number: str
    agency: str
    service_type: str
    counter: str
    counter_name: str
    call_count: int
    at: datetime
    announcement: str

    def view(self) -> dict[str, Any]:
        return {
            "key": f"{self.ticket_id}:{self.call_count}",
            "number": self.number,
            "agency": self.agency,
            "service_type": self.service_type,
            "counter": self.counter,
            "counter_name": self.counter_name,
            "call_count": self.call_count,
            "called_at": self.at.isoformat(),
            "announcement": self.announcement,
        }


@dataclass(frozen=True)
class Tile:
    """One counter on the board: open or not, and the ticket it called or serves."""

    counter: str
    name: str
    agency: str
    open: bool = False
    ticket_id: str | None = None
    number: str | None = None
    state: str | None = None
    """called or serving while a ticket is at the counter."""
    at: datetime | None = None

    def view(self, today: str | None = None, zone: tzinfo | None = None) -> dict[str, Any]:
        stale = (
            today is not None
            and zone is not None
            and self.at is not None
            and self.at.astimezone(zone).date().isoformat() != today
        )
        holds = self.ticket_id is not None and not stale
        return {
            "counter": self.counter,
            "name": self.name,
            "agency": self.agency,
            "open": self.open,
            "number": self.number if holds else None,
            "state": self.state if holds else None,
        }


@dataclass(frozen=True)
class Update:
    seq: int
    kind: str
    """call or counter."""
    agency: str
    data: dict[str, Any]


@dataclass
class BoardState:
    site: str
    zone: tzinfo
    labels: dict[str, CounterLabel]
    recent: int = RECENT_CALLS
    log_size: int = LOG_SIZE
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    """Changes on every start: an event id of another process or life cannot be resumed from."""
    seq: int = 0
    calls: dict[str, Call] = field(default_factory=dict)
    """The latest call of each recently called ticket, by ticket id."""
    tiles: dict[str, Tile] = field(default_factory=dict)
    log: deque[Update] = field(default_factory=deque)

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    @property
    def last_event_id(self) -> str:
        return self.event_id(self.seq)

    def _tile(self, counter: str, agency: str | None = None) -> Tile:
        tile = self.tiles.get(counter)
        if tile is None:
            label = self.labels.get(counter)
            tile = Tile(
                counter=counter,
                name=label.name if label else counter,
                agency=label.agency if label else (agency or ""),
            )
        return tile

    def _record(self, kind: str, agency: str, data: dict[str, Any]) -> Update:
        self.seq += 1
        update = Update(self.seq, kind, agency, data)
        self.log.append(update)
        while len(self.log) > self.log_size:
            self.log.popleft()
        return update

    def _set_tile(self, tile: Tile) -> bool:
        if self.tiles.get(tile.counter) == tile:
            return False
        self.tiles[tile.counter] = tile
        return True

    def apply(self, change: Change) -> Update | None:
        """Apply one change; the update to send to the screens, or None when nothing visible changed."""
        match change:
            case TicketCalled():
                return self._called(change)
            case ServiceStarted():
                tile = self._tile(change.counter)
                if tile.ticket_id != change.ticket_id or (tile.at is not None and change.at < tile.at):
                    return None
                return self._counter_update(replace(tile, open=True, state="serving", at=change.at))
            case TicketLeft():
                counters = [change.counter] if change.counter else list(self.tiles)
                for code in counters:
                    tile = self._tile(code)
                    if tile.ticket_id == change.ticket_id and (tile.at is None or change.at >= tile.at):
                        return self._counter_update(
                            replace(tile, ticket_id=None, number=None, state=None, at=change.at)
                        )
                return None
            case CounterOpened():
                tile = self._tile(change.counter, change.agency)
                if tile.at is not None and change.at < tile.at:
                    return None
                return self._counter_update(replace(tile, open=True, at=change.at))
            case CounterClosed():
                tile = self._tile(change.counter, change.agency)
                if tile.at is not None and change.at < tile.at:
                    return None
                return self._counter_update(
                    replace(tile, open=False, ticket_id=None, number=None, state=None, at=change.at)
                )
        return None

    def _counter_update(self, tile: Tile) -> Update | None:
        if not self._set_tile(tile):
            return None
        return self._record("counter", tile.agency, {"counter": tile.view()})

    def _called(self, c: TicketCalled) -> Update | None:
        known = self.calls.get(c.ticket_id)
        if known is not None and (known.call_count, known.at) >= (c.call_count, c.at):
            return None  # this call or a later one of the ticket is already on the board
        tile = self._tile(c.counter, c.agency)
        call = Call(
            ticket_id=c.ticket_id,
            number=c.number,
            agency=tile.agency or c.agency,
            service_type=c.service_type,
            counter=c.counter,
            counter_name=tile.name,
            call_count=c.call_count,
            at=c.at,
            announcement=announcement(c.number, tile.name),
        )
        self.calls[c.ticket_id] = call
        if len(self.calls) > self.recent * 4:
            # Only the newest calls are ever shown; forget the oldest.
            for old in sorted(self.calls.values(), key=lambda x: x.at)[: len(self.calls) - self.recent * 4]:
                del self.calls[old.ticket_id]
        if tile.at is None or c.at >= tile.at:
            self._set_tile(
                replace(tile, open=True, ticket_id=c.ticket_id, number=c.number, state="called", at=c.at)
            )
        return self._record(
            "call", call.agency, {"call": call.view(), "counter": self._tile(c.counter).view()}
        )

    def recent_calls(self, agency: str | None = None, today: str | None = None) -> list[Call]:
        calls = [
            c
            for c in self.calls.values()
            if (agency is None or c.agency == agency)
            and (today is None or c.at.astimezone(self.zone).date().isoformat() == today)
        ]
        calls.sort(key=lambda c: c.at, reverse=True)
        return calls[: self.recent]

    def snapshot(self, agency: str | None, now: datetime) -> dict[str, Any]:
        """What a screen shows: today's recent calls (newest first) and the counters, optionally of one agency."""
        today = now.astimezone(self.zone).date().isoformat()
        codes = sorted(set(self.labels) | set(self.tiles))
        tiles = [self._tile(code) for code in codes]
        return {
            "site": self.site,
            "agency": agency,
            "event_id": self.last_event_id,
            "calls": [c.view() for c in self.recent_calls(agency, today)],
            "counters": [t.view(today, self.zone) for t in tiles if agency is None or t.agency == agency],
        }

    def since(self, event_id: str) -> list[Update] | None:
        """The updates after ``event_id``, or None when they cannot be replayed (send a snapshot)."""
        epoch, _, raw = event_id.rpartition("-")
        if epoch != self.epoch or not raw.isdigit():
            return None
        seq = int(raw)
        if seq > self.seq:
            return None
        if seq == self.seq:
            return []
        if not self.log or self.log[0].seq > seq + 1:
            return None
        return [u for u in self.log if u.seq > seq]
