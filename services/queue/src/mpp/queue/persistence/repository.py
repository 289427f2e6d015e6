"""Every query of the queue service lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.kit.db import DriverSql, dialect_insert
from mpp.queue.domain.model import Counter, Ticket, TicketState, Visit
from mpp.queue.domain.policy import OrderingPolicy
from mpp.queue.persistence import pg
from mpp.queue.persistence.tables import (
    counters,
    idempotency_keys,
    policies,
    survey_invitations,
    ticket_sequences,
    tickets,
    visits,
)

SITE_DEFAULT = ""
"""The ``agency`` key of a site's default policy."""


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive timestamps; everything is stored in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _ticket(row: Any) -> Ticket:
    issued_at = _aware(row["issued_at"])
    queued_at = _aware(row["queued_at"])
    assert issued_at is not None and queued_at is not None
    return Ticket(
        id=row["id"],
        visit_id=row["visit_id"],
        site=row["site"],
        agency=row["agency"],
        service_type=row["service_type"],
        prefix=row["prefix"],
        day=row["day"],
        seq=row["seq"],
        priority_group=PriorityGroup(row["priority_group"]),
        channel=Channel(row["channel"]),
        issued_at=issued_at,
        queued_at=queued_at,
        rank=row["rank"],
        state=TicketState(row["state"]),
        call_count=row["call_count"],
        first_called_at=_aware(row["first_called_at"]),
        called_at=_aware(row["called_at"]),
        counter=row["counter"],
        officer=row["officer"],
        started_at=_aware(row["started_at"]),
        finished_at=_aware(row["finished_at"]),
        transferred_from=row["transferred_from"],
        transferred_to=row["transferred_to"],
        decision=row["decision"],
    )


def _ticket_values(t: Ticket) -> dict[str, Any]:
    values: dict[str, Any] = {
        "state": t.state.value,
        "call_count": t.call_count,
        "first_called_at": t.first_called_at,
        "called_at": t.called_at,
        "counter": t.counter,
        "officer": t.officer,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "transferred_to": t.transferred_to,
        "rank": t.rank,
    }
    # Left out while unset, so that the column stays SQL NULL (a bound None would store JSON null).
    if t.decision is not None:
        values["decision"] = t.decision
    return values


# The hot writes are built once and take their values as parameters: a statement built with ``.values()``
# on every call costs a bind parameter and a cache key per column, most of the service's CPU per ticket.
_INSERT_TICKET = tickets.insert()
_SAVE_TICKET = update(tickets).where(tickets.c.id == bindparam("ticket_id"))
_INSERT_VISIT = visits.insert()
_GET_TICKET = select(tickets).where(tickets.c.id == bindparam("ticket_id"))
_GET_TICKET_LOCKED = _GET_TICKET.with_for_update()
_TICKETS_OF_VISIT = (
    select(tickets)
    .where(tickets.c.visit_id == bindparam("visit_id"))
    .order_by(tickets.c.issued_at, tickets.c.id)
)
_GET_VISIT = select(visits).where(visits.c.id == bindparam("visit_id"))
_GET_VISIT_LOCKED = _GET_VISIT.with_for_update()
_CALL_ORDER = (tickets.c.rank, tickets.c.queued_at, tickets.c.seq, tickets.c.id)
_WAITING_OF_TYPES = select(tickets).where(
    tickets.c.site == bindparam("site"),
    tickets.c.state == TicketState.WAITING.value,
    tickets.c.service_type.in_(bindparam("types", expanding=True)),
    tickets.c.queued_at <= bindparam("callable_at"),
)
_WAITING_HEAD = _WAITING_OF_TYPES.order_by(*_CALL_ORDER).limit(bindparam("head_limit"))
_LOCK_FIRST_WAITING = _WAITING_OF_TYPES.order_by(*_CALL_ORDER).limit(1).with_for_update(skip_locked=True)
_LOCK_FIRST_PRIORITY = (
    _WAITING_OF_TYPES.where(tickets.c.priority_group != PriorityGroup.NONE.value)
    .order_by(*_CALL_ORDER)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_GET_COUNTER = select(counters).where(
    counters.c.site == bindparam("site"), counters.c.code == bindparam("code")
)
_GET_COUNTER_LOCKED = _GET_COUNTER.with_for_update()


# Call-next's first statement: the counter's row, locked, with the agency's and the site's policy
# documents (read in the statement's snapshot; a policy has no part in serializing calls).
def _policy_document(agency: Any) -> Any:
    return (
        select(policies.c.document)
        .where(policies.c.site == counters.c.site, policies.c.agency == agency)
        .scalar_subquery()
    )


_LOCK_COUNTER_WITH_POLICIES = (
    select(
        counters,
        _policy_document(counters.c.agency).label("agency_policy"),
        _policy_document(SITE_DEFAULT).label("site_policy"),
    )
    .where(counters.c.site == bindparam("site"), counters.c.code == bindparam("code"))
    .with_for_update(of=counters)
)
_AT_COUNTER = (
    select(tickets)
    .where(
        tickets.c.site == bindparam("site"),
        tickets.c.counter == bindparam("counter"),
        tickets.c.state.in_([TicketState.CALLED.value, TicketState.SERVING.value]),
    )
    .limit(1)
)
_SET_CALLS_SINCE_PRIORITY = (
    update(counters)
    .where(counters.c.site == bindparam("c_site"), counters.c.code == bindparam("c_code"))
    .values(calls_since_priority=bindparam("calls"))
)
_ADD_SERVED = (
    update(counters)
    .where(counters.c.site == bindparam("c_site"), counters.c.code == bindparam("c_code"))
    .values(tickets_served=counters.c.tickets_served + 1)
)
_POLICIES_OF = select(policies.c.agency, policies.c.document).where(
    policies.c.site == bindparam("site"), policies.c.agency.in_(bindparam("agencies", expanding=True))
)
_INSERT_INVITATION = survey_invitations.insert()
_SEQUENCE_UPSERTS: dict[str, Any] = {}
_SEQUENCE_TAKES: dict[str, Any] = {}
OPEN_STATES = (TicketState.WAITING.value, TicketState.CALLED.value, TicketState.SERVING.value)


@dataclass
class CallCandidates:
    """What call-next reads once the counter is locked."""

    busy: Ticket | None
    """The ticket the counter is already dealing with (called or being served), if any."""
    head: list[Ticket]
    """The first callable waiting tickets in rank order, not locked."""
    first: Ticket | None
    """The first callable waiting ticket no other transaction holds, locked."""
    priority: Ticket | None
    """The same among priority tickets, locked, when asked for and ``first`` is not one."""


def _sql_ticket(t: Ticket) -> tuple[Any, ...]:
    """The ticket's id and changing columns, as :data:`pg.SAVE_TICKET` takes them."""
    decision = None if t.decision is None else orjson.dumps(t.decision).decode()
    return (
        t.id,
        t.state.value,
        t.call_count,
        t.first_called_at,
        t.called_at,
        t.counter,
        t.officer,
        t.started_at,
        t.finished_at,
        t.transferred_to,
        t.rank,
        decision,
    )


class TicketRepository:
    def __init__(self, session: AsyncSession, sql: DriverSql | None = None) -> None:
        self._s = session
        self._sql = sql
        """PostgreSQL: the hot statements go straight to the driver through it."""
        self._written: dict[str, tuple[Any, ...]] = {}
        """Tickets written ahead of their domain change (lock_for_start): the values written."""

    async def add(self, t: Ticket) -> None:
        await self._s.execute(_INSERT_TICKET, self._row(t))

    async def add_many(self, ts: Sequence[Ticket]) -> None:
        """New tickets in one INSERT."""
        if ts:
            await self._s.execute(_INSERT_TICKET, [self._row(t) for t in ts])

    @staticmethod
    def _row(t: Ticket) -> dict[str, Any]:
        return dict(
            id=t.id,
            visit_id=t.visit_id,
            site=t.site,
            agency=t.agency,
            service_type=t.service_type,
            prefix=t.prefix,
            day=t.day,
            seq=t.seq,
            number=t.number,
            priority_group=t.priority_group.value,
            channel=t.channel.value,
            issued_at=t.issued_at,
            queued_at=t.queued_at,
            transferred_from=t.transferred_from,
            **_ticket_values(t),
        )

    async def save(self, t: Ticket) -> None:
        if self._sql is not None:
            values = _sql_ticket(t)
            if self._written.pop(t.id, None) == values:
                return  # the row holds these values already (lock_for_start)
            await self._sql.execute(pg.SAVE_TICKET, *values)
            return
        await self._s.execute(_SAVE_TICKET, {"ticket_id": t.id, **_ticket_values(t)})

    async def save_called(self, t: Ticket, counter: Counter | None) -> None:
        """The called ticket and, if given, the counter's calls since the last priority ticket."""
        if self._sql is not None:
            self._written.pop(t.id, None)
            if counter is None:
                await self._sql.execute(pg.SAVE_TICKET, *_sql_ticket(t))
            else:
                await self._sql.execute(
                    pg.SAVE_CALLED_TICKET,
                    *_sql_ticket(t),
                    counter.site,
                    counter.code,
                    counter.calls_since_priority,
                )
            return
        if counter is not None:
            params = {"c_site": counter.site, "c_code": counter.code, "calls": counter.calls_since_priority}
            await self._s.execute(_SET_CALLS_SINCE_PRIORITY, params)
        await self._s.execute(_SAVE_TICKET, {"ticket_id": t.id, **_ticket_values(t)})

    async def save_completed(self, t: Ticket, invitation: dict[str, Any] | None) -> list[Ticket]:
        """The completed ticket, one more ticket served at its counter, and the survey invitation row
        (columns of ``survey_invitations``) if given; then every ticket of its visit, this one as saved.

        Run with the visit locked (:meth:`VisitRepository.lock_ticket_with_visit`), so that the tickets
        read include those other transactions finished before this one took the visit."""
        if self._sql is not None:
            self._written.pop(t.id, None)
            inv = invitation or {}
            rows = await self._sql.fetch(
                pg.SAVE_COMPLETED_TICKET,
                *_sql_ticket(t),
                t.site,
                t.counter,
                inv.get("token"),
                inv.get("agency"),
                inv.get("service_type"),
                inv.get("completed_at"),
                inv.get("closes_at"),
                t.visit_id,
            )
            # The statement reads the visit's tickets as they were before its own update.
            return [t if row["id"] == t.id else _ticket(row) for row in rows]
        if t.counter is not None:
            await self._s.execute(_ADD_SERVED, {"c_site": t.site, "c_code": t.counter})
        if invitation is not None:
            await self._s.execute(_INSERT_INVITATION, invitation)
        await self._s.execute(_SAVE_TICKET, {"ticket_id": t.id, **_ticket_values(t)})
        return await self.of_visit(t.visit_id)

    async def get(self, ticket_id: str, *, lock: bool = False) -> Ticket | None:
        if lock and self._sql is not None:
            found = await self._sql.fetchrow(pg.GET_TICKET_LOCKED, ticket_id)
            return None if found is None else _ticket(found)
        query = _GET_TICKET_LOCKED if lock else _GET_TICKET
        row = (await self._s.execute(query, {"ticket_id": ticket_id})).mappings().first()
        return None if row is None else _ticket(row)

    async def lock_for_start(self, ticket_id: str, *, officer: str, at: datetime) -> Ticket | None:
        """The ticket, locked, as it was before; on PostgreSQL written in the same statement as its
        service started by ``officer`` at ``at``, so that :meth:`save` after the domain's start has
        nothing left to write. The caller applies the start to the ticket returned: when the domain
        refuses it (a ticket not called, another agency's ticket), the caller's error rolls the
        transaction back, write included; when the domain changes anything else, :meth:`save` writes
        the whole change."""
        if self._sql is None:
            return await self.get(ticket_id, lock=True)
        row = await self._sql.fetchrow(pg.START_TICKET, ticket_id, at, officer)
        if row is None:
            return None
        before = _ticket(row)
        written = replace(before, state=TicketState.SERVING, started_at=at, officer=officer, events=[])
        self._written[ticket_id] = _sql_ticket(written)
        return before

    async def find_by_number(self, site: str, day: str, number: str) -> Ticket | None:
        query = select(tickets).where(
            tickets.c.site == site, tickets.c.day == day, tickets.c.number == number
        )
        row = (await self._s.execute(query)).mappings().first()
        return None if row is None else _ticket(row)

    async def of_visit(self, visit_id: str) -> list[Ticket]:
        if self._sql is not None:
            return [_ticket(r) for r in await self._sql.fetch(pg.TICKETS_OF_VISIT, visit_id)]
        rows = (await self._s.execute(_TICKETS_OF_VISIT, {"visit_id": visit_id})).mappings().all()
        return [_ticket(r) for r in rows]

    async def at_counter(self, site: str, counter: str) -> Ticket | None:
        """The ticket a counter is dealing with (called or being served), if any."""
        row = (await self._s.execute(_AT_COUNTER, {"site": site, "counter": counter})).mappings().first()
        return None if row is None else _ticket(row)

    async def call_candidates(
        self,
        site: str,
        counter: str,
        service_types: Sequence[str],
        *,
        callable_at: datetime,
        head_limit: int,
        priority: bool,
    ) -> CallCandidates:
        """Call-next's reads after the counter's lock: the ticket the counter is busy with, the head of
        the queue, and the candidates locked (see :meth:`lock_first_waiting`); ``priority``: also the
        first priority ticket when the first waiting one is not one. One statement on PostgreSQL."""
        if self._sql is not None:
            if head_limit > pg.NEAR:
                raise ValueError(f"the head of the queue is at most {pg.NEAR} tickets long on PostgreSQL")
            types = list(dict.fromkeys(service_types))  # one index scan per service type
            rows = await self._sql.fetch(
                pg.CALL_CANDIDATES,
                site,
                counter,
                types,
                callable_at,
                head_limit,
                priority,
            )
            found: dict[str, list[Ticket]] = {"busy": [], "head": [], "first": [], "priority": []}
            for row in rows:
                found[row["kind"]].append(_ticket(row))
            first = found["first"][0] if found["first"] else None
            lane = found["priority"][0] if found["priority"] else None
            if first is None or first.priority_group is not PriorityGroup.NONE:
                lane = None
            return CallCandidates(
                busy=found["busy"][0] if found["busy"] else None,
                head=found["head"],
                first=first,
                priority=lane,
            )
        busy = await self.at_counter(site, counter)
        if busy is not None:
            return CallCandidates(busy=busy, head=[], first=None, priority=None)
        head = await self.waiting_head(site, service_types, limit=head_limit, callable_at=callable_at)
        first = await self.lock_first_waiting(
            site, service_types, priority_only=False, callable_at=callable_at
        )
        lane = None
        if first is not None and priority and first.priority_group is PriorityGroup.NONE:
            lane = await self.lock_first_waiting(
                site, service_types, priority_only=True, callable_at=callable_at
            )
        return CallCandidates(busy=None, head=head, first=first, priority=lane)

    async def lock_first_waiting(
        self, site: str, service_types: Sequence[str], *, priority_only: bool, callable_at: datetime
    ) -> Ticket | None:
        """The first waiting ticket in rank order that no other transaction holds, locked for this one.

        On PostgreSQL ``FOR UPDATE SKIP LOCKED``: a ticket another counter is deciding on right now is
        passed over instead of waited for, so two counters never take the same ticket and never queue
        behind each other. SQLite ignores the clause; the service serializes its writers there.
        """
        query = _LOCK_FIRST_PRIORITY if priority_only else _LOCK_FIRST_WAITING
        params = {"site": site, "types": list(service_types), "callable_at": callable_at}
        row = (await self._s.execute(query, params)).mappings().first()
        return None if row is None else _ticket(row)

    async def waiting_head(
        self, site: str, service_types: Sequence[str], *, limit: int, callable_at: datetime
    ) -> list[Ticket]:
        """The first callable waiting tickets of ``service_types`` in rank order, without locking them."""
        params = {"site": site, "types": list(service_types), "callable_at": callable_at, "head_limit": limit}
        return [_ticket(r) for r in (await self._s.execute(_WAITING_HEAD, params)).mappings().all()]

    async def open_days(self, site: str) -> list[str]:
        """The days (site-local) of the site's tickets that are not finished."""
        query = (
            select(tickets.c.day)
            .where(tickets.c.site == site, tickets.c.state.in_(OPEN_STATES))
            .distinct()
            .order_by(tickets.c.day)
        )
        return list((await self._s.execute(query)).scalars().all())

    async def lock_open(self, site: str, days: Sequence[str], *, limit: int) -> list[Ticket]:
        """Unfinished tickets of ``days`` at the site, locked; rows another transaction holds are skipped
        (two replicas closing the day at once never close the same ticket twice)."""
        query = (
            select(tickets)
            .where(tickets.c.site == site, tickets.c.day.in_(list(days)), tickets.c.state.in_(OPEN_STATES))
            .order_by(tickets.c.day, tickets.c.seq, tickets.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_ticket(r) for r in (await self._s.execute(query)).mappings().all()]

    async def sites_open(self) -> list[str]:
        query = select(tickets.c.site).where(tickets.c.state.in_(OPEN_STATES)).distinct()
        return list((await self._s.execute(query)).scalars().all())

    async def waiting(
        self,
        *,
        site: str,
        agency: str | None,
        service_type: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[Ticket], int]:
        conditions = [tickets.c.site == site, tickets.c.state == TicketState.WAITING.value]
        if agency is not None:
            conditions.append(tickets.c.agency == agency)
        if service_type is not None:
            conditions.append(tickets.c.service_type == service_type)
        where = and_(*conditions)
        total = int(
            (await self._s.execute(select(func.count()).select_from(tickets).where(where))).scalar_one()
        )
        query = (
            select(tickets)
            .where(where)
            .order_by(tickets.c.rank, tickets.c.queued_at, tickets.c.seq, tickets.c.id)
            .offset(offset)
            .limit(limit)
        )
        return [_ticket(r) for r in (await self._s.execute(query)).mappings().all()], total

    async def agencies_waiting(self, site: str) -> list[str]:
        query = (
            select(tickets.c.agency)
            .where(tickets.c.site == site, tickets.c.state == TicketState.WAITING.value)
            .distinct()
            .order_by(tickets.c.agency)
        )
        return list((await self._s.execute(query)).scalars().all())

    async def ahead_of(self, t: Ticket) -> int:
        """Waiting tickets of the same service type ranked before ``t``."""
        query = (
            select(func.count())
            .select_from(tickets)
            .where(
                tickets.c.site == t.site,
                tickets.c.service_type == t.service_type,
                tickets.c.state == TicketState.WAITING.value,
                or_(
                    tickets.c.rank < t.rank,
                    and_(tickets.c.rank == t.rank, tickets.c.queued_at < t.queued_at),
                    and_(tickets.c.rank == t.rank, tickets.c.queued_at == t.queued_at, tickets.c.seq < t.seq),
                ),
            )
        )
        return int((await self._s.execute(query)).scalar_one())

    async def rerank(self, site: str, agency: str | None, policy: OrderingPolicy) -> int:
        """Recompute the rank of waiting tickets after a policy change (``agency`` None: the whole site)."""
        query = select(tickets).where(tickets.c.site == site, tickets.c.state == TicketState.WAITING.value)
        if agency is not None:
            query = query.where(tickets.c.agency == agency)
        rows = [_ticket(r) for r in (await self._s.execute(query.with_for_update())).mappings().all()]
        for t in rows:
            await self._s.execute(
                update(tickets)
                .where(tickets.c.id == t.id)
                .values(rank=policy.rank(t.priority_group, t.queued_at))
            )
        return len(rows)

    async def take_sequences(self, *, site: str, day: str, prefix: str, count: int) -> int:
        """Take ``count`` consecutive numbers of ``prefix`` at ``site`` on ``day``: returns the last one
        (the first is ``last - count + 1``). The row stays locked until the transaction ends."""
        dialect = self._s.get_bind().dialect.name
        upsert = _SEQUENCE_TAKES.get(dialect)
        if upsert is None:
            insert = dialect_insert(self._s, ticket_sequences).values(
                site=bindparam("site"), day=bindparam("day"), prefix=bindparam("prefix"), last=bindparam("n")
            )
            upsert = _SEQUENCE_TAKES[dialect] = insert.on_conflict_do_update(
                index_elements=[ticket_sequences.c.site, ticket_sequences.c.day, ticket_sequences.c.prefix],
                set_={"last": ticket_sequences.c.last + insert.excluded.last},
            ).returning(ticket_sequences.c.last)
        params = {"site": site, "day": day, "prefix": prefix, "n": count}
        return int((await self._s.execute(upsert, params)).scalar_one())

    async def next_sequence(self, *, site: str, day: str, prefix: str) -> int:
        """The next number of ``prefix`` at ``site`` on ``day``; an upsert, so concurrent issues never share one."""
        dialect = self._s.get_bind().dialect.name
        upsert = _SEQUENCE_UPSERTS.get(dialect)
        if upsert is None:
            insert = dialect_insert(self._s, ticket_sequences).values(
                site=bindparam("site"), day=bindparam("day"), prefix=bindparam("prefix"), last=1
            )
            upsert = _SEQUENCE_UPSERTS[dialect] = insert.on_conflict_do_update(
                index_elements=[ticket_sequences.c.site, ticket_sequences.c.day, ticket_sequences.c.prefix],
                set_={"last": ticket_sequences.c.last + 1},
            ).returning(ticket_sequences.c.last)
        params = {"site": site, "day": day, "prefix": prefix}
        return int((await self._s.execute(upsert, params)).scalar_one())


def _visit(row: Any, prefix: str = "") -> Visit:
    """A visit from a row of ``visits``, or from a row whose visit columns carry ``prefix``."""
    started_at = _aware(row[prefix + "started_at"])
    assert started_at is not None
    return Visit(
        id=row["visit_id" if prefix else "id"],
        site=row[prefix + "site"],
        channel=Channel(row[prefix + "channel"]),
        started_at=started_at,
        ended_at=_aware(row[prefix + "ended_at"]),
        tickets_total=row[prefix + "tickets_total"],
        tickets_served=row[prefix + "tickets_served"],
    )


class VisitRepository:
    def __init__(self, session: AsyncSession, sql: DriverSql | None = None, *, defer: bool = False) -> None:
        self._s = session
        self._sql = sql
        self._defer = defer and sql is not None
        """Saves wait for the commit, which writes them with the outbox rows (one round trip less for
        the counter that completes a visit's last ticket). Only for a visit this transaction has
        locked (every save is); reads of a visit saved meanwhile give the saved one."""
        self._saved: dict[str, Visit] = {}

    async def add(self, v: Visit) -> None:
        await self._s.execute(_INSERT_VISIT, self._row(v))

    async def add_many(self, vs: Sequence[Visit]) -> None:
        """New visits in one INSERT."""
        if vs:
            await self._s.execute(_INSERT_VISIT, [self._row(v) for v in vs])

    @staticmethod
    def _row(v: Visit) -> dict[str, Any]:
        return {
            "id": v.id,
            "site": v.site,
            "channel": v.channel.value,
            "started_at": v.started_at,
            "ended_at": v.ended_at,
            "tickets_total": v.tickets_total,
            "tickets_served": v.tickets_served,
        }

    async def get(self, visit_id: str, *, lock: bool = False) -> Visit | None:
        row: Any
        if lock and self._sql is not None:
            row = await self._sql.fetchrow(pg.GET_VISIT_LOCKED, visit_id)
        else:
            query = _GET_VISIT_LOCKED if lock else _GET_VISIT
            row = (await self._s.execute(query, {"visit_id": visit_id})).mappings().first()
        if row is None:
            return None
        return self._saved.get(visit_id) or _visit(row)

    async def lock_ticket_with_visit(self, ticket_id: str) -> tuple[Ticket, Visit | None] | None:
        """A ticket and its visit, both locked (ticket first); None when there is no such ticket."""
        if self._sql is not None:
            row = await self._sql.fetchrow(pg.GET_TICKET_AND_VISIT_LOCKED, ticket_id)
            if row is not None:
                visit_id = row["visit_id"]
                return _ticket(row), self._saved.get(visit_id) or _visit(row, "visit_")
            # No visit row (it always has one): the ticket alone.
            row = await self._sql.fetchrow(pg.GET_TICKET_LOCKED, ticket_id)
            return None if row is None else (_ticket(row), None)
        row = (await self._s.execute(_GET_TICKET_LOCKED, {"ticket_id": ticket_id})).mappings().first()
        if row is None:
            return None
        ticket = _ticket(row)
        return ticket, await self.get(ticket.visit_id, lock=True)

    async def lock_of_tickets(self, ticket_ids: Sequence[str]) -> None:
        """Lock the visits of these tickets, in visit id order: a transaction that may end several
        visits takes them all first, in the order every such transaction takes them, so two of them
        never wait for each other's visits."""
        if self._sql is not None:
            await self._sql.fetch(pg.LOCK_VISITS_OF_TICKETS, list(ticket_ids))
            return
        of_tickets = select(tickets.c.visit_id).where(tickets.c.id.in_(list(ticket_ids)))
        query = select(visits.c.id).where(visits.c.id.in_(of_tickets)).order_by(visits.c.id).with_for_update()
        await self._s.execute(query)

    async def lock_open(self, site: str, started_before: datetime, *, limit: int) -> list[Visit]:
        """Visits of the site not ended and started before ``started_before``, locked (skipping rows
        another transaction holds)."""
        await self.flush()
        query = (
            select(visits.c.id)
            .where(visits.c.site == site, visits.c.ended_at.is_(None), visits.c.started_at < started_before)
            .order_by(visits.c.started_at, visits.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = (await self._s.execute(query)).scalars().all()
        found = [await self.get(i) for i in ids]
        return [v for v in found if v is not None]

    async def sites_open(self) -> list[str]:
        await self.flush()
        query = select(visits.c.site).where(visits.c.ended_at.is_(None)).distinct()
        return list((await self._s.execute(query)).scalars().all())

    async def save(self, v: Visit) -> None:
        if self._defer:
            self._saved[v.id] = v
            return
        if self._sql is not None:
            await self._sql.execute(pg.SAVE_VISITS, *_visit_columns([v]))
            return
        await self._s.execute(
            update(visits)
            .where(visits.c.id == v.id)
            .values(ended_at=v.ended_at, tickets_total=v.tickets_total, tickets_served=v.tickets_served)
        )

    def take_saved(self) -> tuple[list[Any], ...] | None:
        """The saves waiting for the commit, as :data:`pg.SAVE_VISITS` takes them (None if there are
        none); the caller writes them."""
        if not self._saved:
            return None
        saved, self._saved = list(self._saved.values()), {}
        return _visit_columns(saved)

    async def flush(self) -> None:
        """Write the saves waiting for the commit now."""
        columns = self.take_saved()
        if columns is not None and self._sql is not None:
            await self._sql.execute(pg.SAVE_VISITS, *columns)


def _visit_columns(vs: Sequence[Visit]) -> tuple[list[Any], ...]:
    return (
        [v.id for v in vs],
        [v.ended_at for v in vs],
        [v.tickets_total for v in vs],
        [v.tickets_served for v in vs],
    )


class CounterRepository:
    def __init__(self, session: AsyncSession, sql: DriverSql | None = None) -> None:
        self._s = session
        self._sql = sql

    async def get(self, site: str, code: str, *, lock: bool = False) -> Counter | None:
        query = _GET_COUNTER_LOCKED if lock else _GET_COUNTER
        row = (await self._s.execute(query, {"site": site, "code": code})).mappings().first()
        return None if row is None else self._counter(row)

    async def lock_with_policy(self, site: str, code: str) -> tuple[Counter, dict[str, Any] | None] | None:
        """The counter, locked, and its agency's policy document at the site, else the site's default,
        else None; in one round trip."""
        row: Any
        if self._sql is not None:
            row = await self._sql.fetchrow(pg.LOCK_COUNTER_WITH_POLICIES, site, code)
        else:
            params = {"site": site, "code": code}
            row = (await self._s.execute(_LOCK_COUNTER_WITH_POLICIES, params)).mappings().first()
        if row is None:
            return None
        document = row["agency_policy"] if row["agency_policy"] is not None else row["site_policy"]
        return self._counter(row), document

    @staticmethod
    def _counter(row: Any) -> Counter:
        return Counter(
            code=row["code"],
            site=row["site"],
            agency=row["agency"],
            service_types=tuple(row["service_types"]),
            open=row["open"],
            opened_at=_aware(row["opened_at"]),
            opened_by=row["opened_by"],
            planned=row["planned"],
            calls_since_priority=row["calls_since_priority"],
            tickets_served=row["tickets_served"],
        )

    async def ensure(self, c: Counter) -> None:
        """Create the counter's row from the catalogue the first time it is used."""
        insert = dialect_insert(self._s, counters).values(**self._values(c), site=c.site, code=c.code)
        await self._s.execute(
            insert.on_conflict_do_nothing(index_elements=[counters.c.site, counters.c.code])
        )

    async def save(self, c: Counter) -> None:
        await self._s.execute(
            update(counters)
            .where(counters.c.site == c.site, counters.c.code == c.code)
            .values(**self._values(c))
        )

    @staticmethod
    def _values(c: Counter) -> dict[str, Any]:
        return {
            "agency": c.agency,
            "service_types": list(c.service_types),
            "open": c.open,
            "opened_at": c.opened_at,
            "opened_by": c.opened_by,
            "planned": c.planned,
            "calls_since_priority": c.calls_since_priority,
            "tickets_served": c.tickets_served,
        }

    async def lock_open(self, site: str, opened_before: datetime) -> list[Counter]:
        """The site's open counters opened before ``opened_before``, locked (skipping held rows)."""
        query = (
            select(counters)
            .where(counters.c.site == site, counters.c.open.is_(True), counters.c.opened_at < opened_before)
            .order_by(counters.c.code)
            .with_for_update(skip_locked=True)
        )
        return [self._counter(r) for r in (await self._s.execute(query)).mappings().all()]

    async def sites_open(self) -> list[str]:
        query = select(counters.c.site).where(counters.c.open.is_(True)).distinct()
        return list((await self._s.execute(query)).scalars().all())

    async def at_site(self, site: str, agency: str | None) -> list[Counter]:
        query = select(counters.c.code).where(counters.c.site == site)
        if agency is not None:
            query = query.where(counters.c.agency == agency)
        codes = (await self._s.execute(query.order_by(counters.c.code))).scalars().all()
        found = [await self.get(site, code) for code in codes]
        return [c for c in found if c is not None]


class PolicyStore:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def find(self, site: str, agency: str) -> dict[str, Any] | None:
        query = select(policies.c.document).where(policies.c.site == site, policies.c.agency == agency)
        document: dict[str, Any] | None = (await self._s.execute(query)).scalar_one_or_none()
        return document

    async def find_first(self, site: str, agencies: Sequence[str]) -> dict[str, Any] | None:
        """The document of the first of ``agencies`` with a policy at ``site`` (one round trip)."""
        rows = (await self._s.execute(_POLICIES_OF, {"site": site, "agencies": list(agencies)})).all()
        found = {r.agency: r.document for r in rows}
        for agency in agencies:
            if agency in found:
                document: dict[str, Any] = found[agency]
                return document
        return None

    async def put(self, site: str, agency: str, document: dict[str, Any], by: str, at: datetime) -> None:
        insert = dialect_insert(self._s, policies).values(
            site=site, agency=agency, document=document, updated_at=at, updated_by=by
        )
        await self._s.execute(
            insert.on_conflict_do_update(
                index_elements=[policies.c.site, policies.c.agency],
                set_={"document": document, "updated_at": at, "updated_by": by},
            )
        )


_FIND_IDEMPOTENT = select(
    idempotency_keys.c.request_hash, idempotency_keys.c.status_code, idempotency_keys.c.response
).where(idempotency_keys.c.principal == bindparam("principal"), idempotency_keys.c.key == bindparam("key"))
_FIND_IDEMPOTENT_MANY = select(
    idempotency_keys.c.principal,
    idempotency_keys.c.key,
    idempotency_keys.c.request_hash,
    idempotency_keys.c.status_code,
    idempotency_keys.c.response,
).where(
    idempotency_keys.c.principal.in_(bindparam("principals", expanding=True)),
    idempotency_keys.c.key.in_(bindparam("keys", expanding=True)),
)
_REMEMBER_IDEMPOTENT = idempotency_keys.insert()


class IdempotencyStore:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def find(self, principal: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        row = (await self._s.execute(_FIND_IDEMPOTENT, {"principal": principal, "key": key})).first()
        return (row.request_hash, row.status_code, row.response) if row else None

    async def find_many(
        self, requests: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, int, dict[str, Any]]]:
        """The stored answers of the (principal, key) pairs that have one, in one query."""
        if not requests:
            return {}
        wanted = set(requests)
        params = {"principals": sorted({p for p, _ in wanted}), "keys": sorted({k for _, k in wanted})}
        rows = await self._s.execute(_FIND_IDEMPOTENT_MANY, params)
        return {
            (r.principal, r.key): (r.request_hash, r.status_code, r.response)
            for r in rows
            if (r.principal, r.key) in wanted
        }

    async def remember_many(self, answers: Sequence[dict[str, Any]]) -> None:
        """Store answers (rows of principal, key, request_hash, status_code, response, created_at) at once."""
        if answers:
            await self._s.execute(_REMEMBER_IDEMPOTENT, list(answers))

    async def remember(
        self,
        principal: str,
        key: str,
        request_hash: str,
        status_code: int,
        response: dict[str, Any],
        at: datetime,
    ) -> None:
        await self._s.execute(
            _REMEMBER_IDEMPOTENT,
            {
                "principal": principal,
                "key": key,
                "request_hash": request_hash,
                "status_code": status_code,
                "response": response,
                "created_at": at,
            },
        )
