"""Queue use cases: (command, unit of work, ports) -> result. A dict routes commands to handlers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import COMPLAINT_FIRST_RESPONSE_LIMIT_DAYS, Channel, PriorityGroup
from mpp.contracts.events.queue import (
    AppointmentBookedV1,
    AppointmentCancelledV1,
    AppointmentCheckedInV1,
    AppointmentMissedV1,
    CancelledBy,
    CounterClosedV1,
    CounterCloseReason,
    CounterOpenedV1,
    ServiceCompletedV1,
    ServiceStartedV1,
    TicketCalledV1,
    TicketCancelledV1,
    TicketIssuedV1,
    TicketNoShowV1,
    TicketTransferredV1,
    VisitEndedV1,
    VisitStartedV1,
)
from mpp.queue.domain.appointments import (
    AlreadyBooked,
    Appointment,
    AppointmentState,
    Rulebook,
    SlotFull,
    SlotInPast,
    SlotTooFarAhead,
    SlotUnavailable,
    find_slot,
    merge_queued_at,
    new_booking_code,
)
from mpp.queue.domain.dayclose import (
    DAY_CLOSE_ACTOR,
    DAY_CLOSED,
    DayCloseReport,
    closed_before,
    day_closes_at,
)
from mpp.queue.domain.model import (
    MAX_SEQUENCE,
    Called,
    Cancelled,
    Completed,
    Counter,
    NoShow,
    QueueError,
    SequenceExhausted,
    Started,
    Ticket,
    TicketState,
    Transferred,
    Visit,
    WrongState,
    transfer_queued_at,
)
from mpp.queue.domain.policy import CounterState, OrderingPolicy, choose_next
from mpp.queue.domain.surveys import SurveyInvitation
from mpp.queue.persistence.repository import SITE_DEFAULT
from mpp.queue.persistence.uow import QueueUnitOfWork
from mpp.queue.ports import Catalogue, Clock, ServiceInfo

PRODUCER = "mpp.queue"
PEEK = 5


class UnknownServiceType(QueueError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"unknown service type {code!r}")


class UnknownCounter(QueueError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"unknown counter {code!r}")


class NotFound(QueueError):
    pass


class ServiceNotAtCounter(QueueError):
    def __init__(self, codes: list[str]) -> None:
        self.codes = codes
        super().__init__(f"service types not served at this counter: {codes}")


class CounterBusy(QueueError):
    """The counter still has a called or served ticket."""

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket
        super().__init__(f"counter is dealing with ticket {ticket.number}")


class WrongCounter(QueueError):
    """The ticket was called to another counter."""


@dataclass(frozen=True)
class FeedbackRules:
    survey_window: timedelta = timedelta(days=7)
    """How long after completion a service's SKM survey can be answered."""
    complaint_first_response_days: int = COMPLAINT_FIRST_RESPONSE_LIMIT_DAYS


@dataclass
class Ports:
    clock: Clock
    catalogue: Catalogue
    appointments: Rulebook = field(default_factory=Rulebook)
    feedback: FeedbackRules = field(default_factory=FeedbackRules)
    day_close_grace: timedelta = timedelta(hours=1)
    """How long after its closing time a site's day closes (officers finish the last citizens)."""


# --- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartVisit:
    site: str
    channel: Channel
    service_types: tuple[str, ...]
    priority_group: PriorityGroup
    correlation_id: str
    traceparent: str | None = None
    """The request's trace, for its events when the visit is written in a batch of visits."""


@dataclass(frozen=True)
class AddTicket:
    visit_id: str
    service_type: str
    priority_group: PriorityGroup
    correlation_id: str


@dataclass(frozen=True)
class OpenCounter:
    site: str
    counter: str
    officer: str
    service_types: tuple[str, ...]
    """Empty: every service type the catalogue assigns to the counter."""
    planned: bool
    correlation_id: str


@dataclass(frozen=True)
class CloseCounter:
    site: str
    counter: str
    officer: str
    reason: CounterCloseReason
    correlation_id: str


@dataclass(frozen=True)
class CallNext:
    site: str
    counter: str
    officer: str
    correlation_id: str


@dataclass(frozen=True)
class ActOnTicket:
    ticket_id: str
    action: str
    """recall, start, complete, no_show or cancel."""
    actor: str
    correlation_id: str
    cancelled_by: CancelledBy = CancelledBy.OFFICER
    reason_code: str = "citizen_left"
    application_id: str | None = None
    authorize: Callable[[Ticket], None] | None = None
    """Checked on the locked ticket before acting (the caller's scope); raises to refuse."""


@dataclass(frozen=True)
class TransferTicket:
    ticket_id: str
    to_service_type: str
    officer: str
    reason: str
    correlation_id: str


@dataclass(frozen=True)
class PutPolicy:
    site: str
    agency: str | None
    """None: the site's default for every agency without its own policy."""
    document: dict[str, Any]
    actor: str
    correlation_id: str


# --- helpers ------------------------------------------------------------------------------------


async def effective_policy(uow: QueueUnitOfWork, site: str, agency: str) -> OrderingPolicy:
    """The agency's policy at the site, else the site's default, else the built-in default."""
    document = await uow.policies.find_first(site, (agency, SITE_DEFAULT))
    return _policy_of(document)


_POLICIES: dict[bytes, OrderingPolicy] = {}
_DEFAULT_POLICY = OrderingPolicy()


def _policy_of(document: dict[str, Any] | None) -> OrderingPolicy:
    """A stored policy document as a policy, validated once per distinct document (they rarely change)."""
    if document is None:
        return _DEFAULT_POLICY
    key = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    policy = _POLICIES.get(key)
    if policy is None:
        if len(_POLICIES) >= 256:
            _POLICIES.clear()
        policy = _POLICIES[key] = OrderingPolicy.model_validate(document)
    return policy


def _wrap(
    payload: EventPayload,
    *,
    agency: str,
    site: str,
    subject: str,
    corr: str,
    traceparent: str | None = None,
) -> Envelope:
    return Envelope.wrap(
        payload,
        producer=PRODUCER,
        agency=agency,
        site=site,
        subject=subject,
        correlation_id=corr or None,
        traceparent=traceparent,
    )


def _ticket_envelope(t: Ticket, payload: EventPayload, corr: str) -> Envelope:
    return _wrap(payload, agency=t.agency, site=t.site, subject=t.visit_id, corr=corr)


def _issued(
    t: Ticket, corr: str, appointment_id: str | None = None, traceparent: str | None = None
) -> Envelope:
    return _wrap(
        TicketIssuedV1(
            visit_id=t.visit_id,
            ticket_id=t.id,
            ticket_number=t.number,
            service_type=t.service_type,
            agency=t.agency,
            priority_group=t.priority_group,
            channel=t.channel,
            issued_at=t.issued_at,
            transferred_from=t.transferred_from,
            appointment_id=appointment_id,
        ),
        agency=t.agency,
        site=t.site,
        subject=t.visit_id,
        corr=corr,
        traceparent=traceparent,
    )


def _ticket_events(t: Ticket, corr: str) -> list[Envelope]:
    """Map the ticket's internal events to contract events (the wire never follows refactors)."""
    out: list[Envelope] = []
    for ev in t.events:
        payload: EventPayload
        match ev:
            case Called(at=at, counter=counter, officer=officer, call_count=n):
                payload = TicketCalledV1(
                    visit_id=t.visit_id,
                    ticket_id=t.id,
                    ticket_number=t.number,
                    service_type=t.service_type,
                    agency=t.agency,
                    counter=counter,
                    officer_ref=officer,
                    call_count=n,
                    called_at=at,
                    waiting_seconds=t.waiting_seconds(until=at),
                )
            case Started(at=at, officer=officer):
                assert t.counter is not None
                payload = ServiceStartedV1(
                    visit_id=t.visit_id,
                    ticket_id=t.id,
                    service_type=t.service_type,
                    agency=t.agency,
                    counter=t.counter,
                    officer_ref=officer,
                    started_at=at,
                    walking_seconds=t.walking_seconds(),
                )
            case Completed(at=at, officer=officer):
                assert t.counter is not None
                payload = ServiceCompletedV1(
                    visit_id=t.visit_id,
                    ticket_id=t.id,
                    ticket_number=t.number,
                    service_type=t.service_type,
                    agency=t.agency,
                    counter=t.counter,
                    officer_ref=officer,
                    priority_group=t.priority_group,
                    channel=t.channel,
                    issued_at=t.issued_at,
                    completed_at=at,
                    waiting_seconds=t.waiting_seconds(),
                    walking_seconds=t.walking_seconds(),
                    service_seconds=t.service_seconds(),
                    total_seconds=t.total_seconds(),
                )
            case NoShow(at=at):
                assert t.counter is not None
                payload = TicketNoShowV1(
                    visit_id=t.visit_id,
                    ticket_id=t.id,
                    service_type=t.service_type,
                    agency=t.agency,
                    counter=t.counter,
                    call_count=t.call_count,
                    waiting_seconds=t.waiting_seconds(),
                    marked_at=at,
                )
            case Cancelled(at=at, by=by, reason_code=code):
                payload = TicketCancelledV1(
                    visit_id=t.visit_id,
                    ticket_id=t.id,
                    service_type=t.service_type,
                    agency=t.agency,
                    cancelled_by=CancelledBy(by),
                    reason_code=code,
                    cancelled_at=at,
                    waiting_seconds=t.waiting_seconds(until=at),
                )
            case Transferred(at=at, officer=officer, to_ticket=new, reason=reason):
                payload = TicketTransferredV1(
                    visit_id=t.visit_id,
                    ticket_id=t.id,
                    from_service_type=t.service_type,
                    to_service_type=new.service_type,
                    from_agency=t.agency,
                    to_agency=new.agency,
                    from_counter=t.counter,
                    officer_ref=officer,
                    reason=reason,
                    transferred_at=at,
                    to_ticket_id=new.id,
                    to_ticket_number=new.number,
                )
        out.append(_ticket_envelope(t, payload, corr))
    t.events.clear()
    return out


async def _issue(
    uow: QueueUnitOfWork,
    ports: Ports,
    *,
    visit: Visit,
    service_type: str,
    priority_group: PriorityGroup,
    at: datetime,
    transferred_from: Ticket | None = None,
    queued_at: datetime | None = None,
) -> Ticket:
    service = ports.catalogue.service(service_type)
    if service is None:
        raise UnknownServiceType(service_type)
    day = at.astimezone(ports.catalogue.site_zone(visit.site)).date().isoformat()
    policy = await effective_policy(uow, visit.site, service.agency)
    # The sequence row stays locked until the transaction ends: take it as late as possible.
    seq = await uow.tickets.next_sequence(site=visit.site, day=day, prefix=service.prefix)
    if queued_at is None:
        queued_at = (
            at
            if transferred_from is None
            else transfer_queued_at(transferred_from, at, policy.transfer_credit_minutes)
        )
    ticket = Ticket(
        id=str(uuid.uuid4()),
        visit_id=visit.id,
        site=visit.site,
        agency=service.agency,
        service_type=service.code,
        prefix=service.prefix,
        day=day,
        seq=seq,
        priority_group=priority_group,
        channel=visit.channel,
        issued_at=at,
        queued_at=queued_at,
        rank=policy.rank(priority_group, queued_at),
        transferred_from=None if transferred_from is None else transferred_from.id,
    )
    await uow.tickets.add(ticket)
    return ticket


def _visit_started(visit: Visit, ports: Ports, corr: str, traceparent: str | None = None) -> Envelope:
    return _wrap(
        VisitStartedV1(visit_id=visit.id, channel=visit.channel, started_at=visit.started_at),
        agency=ports.catalogue.site_manager(visit.site),
        site=visit.site,
        subject=visit.id,
        corr=corr,
        traceparent=traceparent,
    )


def _visit_ended(visit: Visit, ports: Ports, corr: str) -> Envelope:
    assert visit.ended_at is not None
    return _wrap(
        VisitEndedV1(
            visit_id=visit.id,
            started_at=visit.started_at,
            ended_at=visit.ended_at,
            duration_seconds=max(0, int((visit.ended_at - visit.started_at).total_seconds())),
            tickets=visit.tickets_total,
            tickets_served=visit.tickets_served,
        ),
        agency=ports.catalogue.site_manager(visit.site),
        site=visit.site,
        subject=visit.id,
        corr=corr,
    )


async def _end_visit_if_done(
    uow: QueueUnitOfWork,
    visit_id: str,
    at: datetime,
    corr: str,
    ports: Ports,
    *,
    locked: Visit | None = None,
    tickets: list[Ticket] | None = None,
) -> None:
    """End the visit if the ticket just finished was its last open one.

    The visit's lock serializes this decision between transactions that finish tickets of the same
    visit; the tickets are read after it, so the last of them to take the lock sees every other one
    finished. ``locked``: the visit, locked by this transaction already; ``tickets``: its tickets, read
    after that lock."""
    visit = locked or await uow.visits.get(visit_id, lock=True)
    if visit is None:
        return
    if tickets is None:
        tickets = await uow.tickets.of_visit(visit_id)
    if visit.end_if_done(tickets, at):
        await uow.visits.save(visit)
        uow.publish(_visit_ended(visit, ports, corr))


# --- handlers -----------------------------------------------------------------------------------


async def start_visit(cmd: StartVisit, uow: QueueUnitOfWork, ports: Ports) -> tuple[Visit, list[Ticket]]:
    prefixes: dict[str, str] = {}
    for code in cmd.service_types:
        service = ports.catalogue.service(code)
        if service is None:
            raise UnknownServiceType(code)
        prefixes[code] = service.prefix
    now = ports.clock.now()
    visit = Visit(id=str(uuid.uuid4()), site=cmd.site, channel=cmd.channel, started_at=now)
    await uow.visits.add(visit)
    uow.publish(_visit_started(visit, ports, cmd.correlation_id))
    # Numbers are taken in prefix order, whatever order the services were asked in: each takes its
    # prefix's sequence row until commit, so two visits asking for A and B in opposite orders would
    # otherwise wait for each other (a deadlock on PostgreSQL).
    issued: dict[str, Ticket] = {}
    for code in sorted(cmd.service_types, key=lambda c: (prefixes[c], c)):
        ticket = await _issue(
            uow, ports, visit=visit, service_type=code, priority_group=cmd.priority_group, at=now
        )
        uow.publish(_issued(ticket, cmd.correlation_id))
        issued[code] = ticket
    return visit, [issued[code] for code in cmd.service_types]


async def start_visits(
    cmds: list[StartVisit], uow: QueueUnitOfWork, ports: Ports
) -> list[tuple[Visit, list[Ticket]]]:
    """Several kiosk visits in one transaction, each as :func:`start_visit` would write it, in a few
    statements: one INSERT for the visits, one for the tickets, one sequence upsert per prefix (taking all
    the batch's numbers of that prefix at once, gap-free) and one policy read per agency.

    Sequence rows are taken in (site, day, prefix) order, the order a single visit takes its own prefixes
    in, so a batch and single visits never wait for each other in a cycle. Any error fails the whole batch
    (its caller retries the visits one by one)."""
    now = ports.clock.now()
    plans: list[tuple[Visit, list[tuple[str, ServiceInfo]]]] = []
    needed: dict[tuple[str, str, str], int] = {}
    agencies: set[tuple[str, str]] = set()
    days: dict[str, str] = {}
    for cmd in cmds:
        services: list[tuple[str, ServiceInfo]] = []
        for code in cmd.service_types:
            service = ports.catalogue.service(code)
            if service is None:
                raise UnknownServiceType(code)
            services.append((code, service))
        day = days.get(cmd.site)
        if day is None:
            day = days[cmd.site] = now.astimezone(ports.catalogue.site_zone(cmd.site)).date().isoformat()
        # Numbers in prefix order within a visit, as start_visit takes them.
        services.sort(key=lambda cs: (cs[1].prefix, cs[0]))
        for _, service in services:
            key = (cmd.site, day, service.prefix)
            needed[key] = needed.get(key, 0) + 1
            agencies.add((cmd.site, service.agency))
        plans.append(
            (Visit(id=str(uuid.uuid4()), site=cmd.site, channel=cmd.channel, started_at=now), services)
        )
    policies = {key: await effective_policy(uow, *key) for key in sorted(agencies)}
    next_seq: dict[tuple[str, str, str], int] = {}
    for key in sorted(needed):
        site, day, prefix = key
        last = await uow.tickets.take_sequences(site=site, day=day, prefix=prefix, count=needed[key])
        if last > MAX_SEQUENCE:
            raise SequenceExhausted(f"sequence {last} outside 1..{MAX_SEQUENCE}")
        next_seq[key] = last - needed[key] + 1
    out: list[tuple[Visit, list[Ticket]]] = []
    all_tickets: list[Ticket] = []
    for cmd, (visit, services) in zip(cmds, plans, strict=True):
        day = days[cmd.site]
        uow.publish(_visit_started(visit, ports, cmd.correlation_id, cmd.traceparent))
        issued: dict[str, Ticket] = {}
        for code, service in services:
            key = (cmd.site, day, service.prefix)
            seq, next_seq[key] = next_seq[key], next_seq[key] + 1
            ticket = Ticket(
                id=str(uuid.uuid4()),
                visit_id=visit.id,
                site=visit.site,
                agency=service.agency,
                service_type=service.code,
                prefix=service.prefix,
                day=day,
                seq=seq,
                priority_group=cmd.priority_group,
                channel=visit.channel,
                issued_at=now,
                queued_at=now,
                rank=policies[(cmd.site, service.agency)].rank(cmd.priority_group, now),
            )
            uow.publish(_issued(ticket, cmd.correlation_id, traceparent=cmd.traceparent))
            issued[code] = ticket
            all_tickets.append(ticket)
        out.append((visit, [issued[code] for code in cmd.service_types]))
    await uow.visits.add_many([visit for visit, _ in out])
    await uow.tickets.add_many(all_tickets)
    return out


async def add_ticket(cmd: AddTicket, uow: QueueUnitOfWork, ports: Ports) -> Ticket:
    visit = await uow.visits.get(cmd.visit_id, lock=True)
    if visit is None:
        raise NotFound(cmd.visit_id)
    if visit.ended:
        raise WrongState("visit", "ended", "add_ticket")
    ticket = await _issue(
        uow,
        ports,
        visit=visit,
        service_type=cmd.service_type,
        priority_group=cmd.priority_group,
        at=ports.clock.now(),
    )
    uow.publish(_issued(ticket, cmd.correlation_id))
    return ticket


async def _counter(uow: QueueUnitOfWork, ports: Ports, site: str, code: str) -> Counter:
    info = ports.catalogue.counter(site, code)
    if info is None:
        raise UnknownCounter(code)
    await uow.counters.ensure(
        Counter(code=info.code, site=info.site, agency=info.agency, service_types=info.service_types)
    )
    counter = await uow.counters.get(site, code, lock=True)
    assert counter is not None
    return counter


async def open_counter(cmd: OpenCounter, uow: QueueUnitOfWork, ports: Ports) -> Counter:
    info = ports.catalogue.counter(cmd.site, cmd.counter)
    if info is None:
        raise UnknownCounter(cmd.counter)
    wanted = cmd.service_types or info.service_types
    foreign = sorted(set(wanted) - set(info.service_types))
    if foreign:
        raise ServiceNotAtCounter(foreign)
    counter = await _counter(uow, ports, cmd.site, cmd.counter)
    now = ports.clock.now()
    counter.open_for(officer=cmd.officer, service_types=tuple(wanted), planned=cmd.planned, at=now)
    await uow.counters.save(counter)
    uow.publish(
        _wrap(
            CounterOpenedV1(
                counter=counter.code,
                agency=counter.agency,
                service_types=counter.service_types,
                officer_ref=cmd.officer,
                planned=cmd.planned,
                opened_at=now,
            ),
            agency=counter.agency,
            site=counter.site,
            subject=f"{counter.site}.{counter.code}",
            corr=cmd.correlation_id,
        )
    )
    return counter


async def close_counter(cmd: CloseCounter, uow: QueueUnitOfWork, ports: Ports) -> Counter:
    counter = await _counter(uow, ports, cmd.site, cmd.counter)
    counter.close()
    await uow.counters.save(counter)
    assert counter.opened_at is not None
    uow.publish(
        _wrap(
            CounterClosedV1(
                counter=counter.code,
                agency=counter.agency,
                officer_ref=cmd.officer,
                reason=cmd.reason,
                opened_at=counter.opened_at,
                closed_at=ports.clock.now(),
                tickets_served=counter.tickets_served,
            ),
            agency=counter.agency,
            site=counter.site,
            subject=f"{counter.site}.{counter.code}",
            corr=cmd.correlation_id,
        )
    )
    return counter


async def call_next(cmd: CallNext, uow: QueueUnitOfWork, ports: Ports) -> Ticket | None:
    """Call the policy's next ticket to an open counter; None when nobody waits.

    The counter's row is locked first, so one counter's calls are serialized. The candidates are the first
    waiting ticket in rank order and, when the every-Nth rule may apply, the first priority ticket, each
    taken with ``FOR UPDATE SKIP LOCKED``. Because every ticket ages at the same rate, the rank order is the
    policy's score order at any instant, so the first unlocked row in rank order is exactly the ticket the
    policy would choose among the tickets no other counter is deciding on at that moment. A row another
    counter holds is skipped rather than waited for; it is released at once if that counter chose its other
    candidate, so a ticket can be passed over only by the few counters calling in the same instant. The
    policy (:func:`choose_next`) then decides between the locked candidates and its explanation is stored.
    """
    locked = await uow.counters.lock_with_policy(cmd.site, cmd.counter)
    if locked is None or not locked[0].open:
        raise WrongState("counter", "closed", "call_next")
    counter, document = locked
    policy = _policy_of(document)
    state = CounterState(counter.calls_since_priority)
    nth = policy.priority_every_nth
    # Statements of their own after the lock: they see what a call that held the lock before committed
    # (a subquery of the locking statement would read the snapshot taken before waiting for the lock).
    # The head of the queue is read without locks, only to rank and explain: tickets in it that rank
    # ahead of the locked candidates are being called by other counters and are reported as skipped.
    # A ticket whose place in the queue starts later (an appointment checked in before its slot) is
    # not callable yet.
    now = ports.clock.now()
    found = await uow.tickets.call_candidates(
        cmd.site,
        cmd.counter,
        counter.service_types,
        callable_at=now,
        head_limit=PEEK,
        priority=nth is not None and state.calls_since_priority >= nth - 1,
    )
    if found.busy is not None:
        raise CounterBusy(found.busy)
    candidates = {t.id: t for t in (found.first, found.priority) if t is not None}
    pool = {t.id: t.candidate() for t in found.head}
    pool.update({t.id: t.candidate() for t in candidates.values()})
    decision = choose_next(list(pool.values()), policy, now, state, available=set(candidates))
    if decision is None:
        return None
    ticket = candidates[decision.ticket.ticket_id]
    explanation = {**decision.explanation, "counter": counter.code, "lock": "for_update_skip_locked"}
    ticket.call(counter=counter.code, officer=cmd.officer, at=now, decision=explanation)
    calls_since_priority = decision.next_counter_state(state).calls_since_priority
    changed = calls_since_priority != counter.calls_since_priority
    counter.calls_since_priority = calls_since_priority
    await uow.tickets.save_called(ticket, counter if changed else None)
    uow.publish(*_ticket_events(ticket, cmd.correlation_id))
    return ticket


async def _lock_ticket(cmd: ActOnTicket, uow: QueueUnitOfWork, now: datetime) -> tuple[Ticket, Visit | None]:
    """The ticket, locked, and its visit, locked in the same statement when the action may finish the
    ticket (see _end_visit_if_done); NotFound if there is no such ticket. A start is written in the
    statement that locks the ticket (see TicketRepository.lock_for_start)."""
    found: tuple[Ticket, Visit | None] | None
    if cmd.action in _MAY_FINISH:
        found = await uow.visits.lock_ticket_with_visit(cmd.ticket_id)
    else:
        ticket = await (
            uow.tickets.lock_for_start(cmd.ticket_id, officer=cmd.actor, at=now)
            if cmd.action == "start"
            else uow.tickets.get(cmd.ticket_id, lock=True)
        )
        found = None if ticket is None else (ticket, None)
    if found is None:
        raise NotFound(cmd.ticket_id)
    return found


async def act_on_ticket(cmd: ActOnTicket, uow: QueueUnitOfWork, ports: Ports) -> Ticket:
    now = ports.clock.now()
    ticket, visit = await _lock_ticket(cmd, uow, now)
    if cmd.authorize is not None:
        cmd.authorize(ticket)
    invitation: SurveyInvitation | None = None
    match cmd.action:
        case "recall":
            policy = await effective_policy(uow, ticket.site, ticket.agency)
            ticket.recall(officer=cmd.actor, at=now, max_calls=policy.max_calls)
        case "start":
            ticket.start(officer=cmd.actor, at=now)
        case "complete":
            ticket.complete(officer=cmd.actor, at=now)
            # The citizen may now rate this service, once (SKM).
            invitation = SurveyInvitation.after_completion(
                ticket_id=ticket.id,
                site=ticket.site,
                agency=ticket.agency,
                service_type=ticket.service_type,
                at=now,
                window=ports.feedback.survey_window,
            )
        case "no_show":
            ticket.no_show(at=now)
        case "cancel":
            ticket.cancel(by=cmd.cancelled_by.value, reason_code=cmd.reason_code, at=now)
        case _:
            raise WrongState("ticket", ticket.state.value, cmd.action)
    of_visit: list[Ticket] | None = None
    if invitation is not None:
        # One more served at the counter and the invitation, written with the ticket; the visit's
        # tickets come back from the same statement.
        of_visit = await uow.tickets.save_completed(ticket, uow.surveys.invited_row(invitation))
    else:
        await uow.tickets.save(ticket)
    events = _ticket_events(ticket, cmd.correlation_id)
    if cmd.action == "complete" and cmd.application_id is not None:
        events = [
            e.model_copy(
                update={"payload": e.payload.model_copy(update={"application_id": cmd.application_id})}
            )
            if isinstance(e.payload, ServiceCompletedV1)
            else e
            for e in events
        ]
    uow.publish(*events)
    if ticket.finished:
        await _end_visit_if_done(
            uow, ticket.visit_id, now, cmd.correlation_id, ports, locked=visit, tickets=of_visit
        )
    return ticket


_MAY_FINISH = frozenset({"complete", "no_show", "cancel"})
"""Actions that finish the ticket (a recall past the limit is refused; the no-show is its own action)."""


async def lock_visits_first(cmds: Sequence[Any], uow: QueueUnitOfWork) -> None:
    """Before commands that run in one transaction (a batch of the counters' cycle): lock, in id order,
    the visits that two or more of them may end. Each would otherwise lock its visit when it comes, and
    two batches ending the same two visits in opposite orders would deadlock (a second's stall, then the
    batch runs again command by command)."""
    ids = sorted({c.ticket_id for c in cmds if isinstance(c, ActOnTicket) and c.action in _MAY_FINISH})
    if len(ids) > 1:
        await uow.visits.lock_of_tickets(ids)


async def transfer_ticket(cmd: TransferTicket, uow: QueueUnitOfWork, ports: Ports) -> tuple[Ticket, Ticket]:
    ticket = await uow.tickets.get(cmd.ticket_id, lock=True)
    if ticket is None:
        raise NotFound(cmd.ticket_id)
    if ticket.state not in (TicketState.WAITING, TicketState.CALLED, TicketState.SERVING):
        raise WrongState("ticket", ticket.state.value, "transfer")
    if ports.catalogue.service(cmd.to_service_type) is None:
        raise UnknownServiceType(cmd.to_service_type)
    visit = await uow.visits.get(ticket.visit_id, lock=True)
    if visit is None:
        raise NotFound(ticket.visit_id)
    now = ports.clock.now()
    new = await _issue(
        uow,
        ports,
        visit=visit,
        service_type=cmd.to_service_type,
        priority_group=ticket.priority_group,
        at=now,
        transferred_from=ticket,
    )
    ticket.transfer(to=new, officer=cmd.officer, reason=cmd.reason, at=now)
    await uow.tickets.save(ticket)
    uow.publish(*_ticket_events(ticket, cmd.correlation_id), _issued(new, cmd.correlation_id))
    return ticket, new


async def put_policy(cmd: PutPolicy, uow: QueueUnitOfWork, ports: Ports) -> OrderingPolicy:
    """Store a validated policy and re-rank the waiting tickets it governs."""
    policy = OrderingPolicy.load(cmd.document)
    document = policy.model_dump(mode="json")
    await uow.policies.put(cmd.site, cmd.agency or SITE_DEFAULT, document, cmd.actor, ports.clock.now())
    if cmd.agency is not None:
        await uow.tickets.rerank(cmd.site, cmd.agency, policy)
    else:
        # Agencies with a policy of their own keep it; everyone else follows the new default.
        for t_agency in await uow.tickets.agencies_waiting(cmd.site):
            if await uow.policies.find(cmd.site, t_agency) is None:
                await uow.tickets.rerank(cmd.site, t_agency, policy)
    return policy


# --- appointments -------------------------------------------------------------------------------


class NotBookable(QueueError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"service type {code!r} cannot be booked online")


@dataclass(frozen=True)
class BookAppointment:
    site: str
    service_type: str
    slot_start: datetime
    channel: Channel
    citizen_ref: str
    booker: str
    correlation_id: str


@dataclass(frozen=True)
class CancelAppointment:
    appointment_id: str
    cancelled_by: CancelledBy
    reason_code: str
    correlation_id: str


@dataclass(frozen=True)
class CheckInAppointment:
    booking_code: str
    site: str
    priority_group: PriorityGroup
    correlation_id: str


@dataclass(frozen=True)
class SweepMissed:
    correlation_id: str
    site: str | None = None
    """None: every site."""
    limit: int = 500


BOOKING_CODE_ATTEMPTS = 8


def _appointment_envelope(a: Appointment, payload: EventPayload, corr: str) -> Envelope:
    return _wrap(payload, agency=a.agency, site=a.site, subject=a.id, corr=corr)


async def book_appointment(cmd: BookAppointment, uow: QueueUnitOfWork, ports: Ports) -> Appointment:
    """Book a seat in a slot: the slot must be one of the service type's slots on an open day, in the
    future and within the booking horizon, with a seat left under the slot's and the day's quotas."""
    service = ports.catalogue.service(cmd.service_type)
    if service is None:
        raise UnknownServiceType(cmd.service_type)
    if not service.online_enabled:
        raise NotBookable(cmd.service_type)
    rules = ports.appointments.for_service(service.code)
    tz = ports.catalogue.site_zone(cmd.site)
    slot = find_slot(ports.catalogue.site_calendar(cmd.site), tz, rules, cmd.slot_start)
    if slot is None:
        raise SlotUnavailable(cmd.slot_start.isoformat())
    now = ports.clock.now()
    if slot.start <= now:
        raise SlotInPast(slot.start.isoformat())
    local_day = slot.start.astimezone(tz).date()
    if local_day > now.astimezone(tz).date() + timedelta(days=rules.book_ahead_days):
        raise SlotTooFarAhead(rules.book_ahead_days)
    day = local_day.isoformat()
    if await uow.appointments.active_for(cmd.citizen_ref, service.code, day) is not None:
        raise AlreadyBooked(day)
    full = await uow.appointments.take_seat(
        site=cmd.site,
        service_type=service.code,
        slot_start=slot.start,
        day=day,
        per_slot=rules.quota_per_slot,
        per_day=rules.quota_per_day,
    )
    if full is not None:
        raise SlotFull(per_day=full == "day")
    for _ in range(BOOKING_CODE_ATTEMPTS):
        code = new_booking_code()
        if not await uow.appointments.code_taken(code):
            break
    else:  # pragma: no cover - 32^8 codes
        raise QueueError("no free booking code")
    appointment = Appointment(
        id=str(uuid.uuid4()),
        booking_code=code,
        site=cmd.site,
        service_type=service.code,
        agency=service.agency,
        day=day,
        slot_start=slot.start.astimezone(UTC),
        slot_end=slot.end.astimezone(UTC),
        channel=cmd.channel.value,
        citizen_ref=cmd.citizen_ref,
        booker=cmd.booker,
        booked_at=now,
    )
    await uow.appointments.add(appointment)
    uow.publish(
        _appointment_envelope(
            appointment,
            AppointmentBookedV1(
                appointment_id=appointment.id,
                service_type=appointment.service_type,
                agency=appointment.agency,
                citizen_ref=appointment.citizen_ref,
                channel=cmd.channel,
                booking_code=appointment.booking_code,
                slot_start=appointment.slot_start,
                slot_end=appointment.slot_end,
                booked_at=now,
            ),
            cmd.correlation_id,
        )
    )
    return appointment


async def cancel_appointment(cmd: CancelAppointment, uow: QueueUnitOfWork, ports: Ports) -> Appointment:
    appointment = await uow.appointments.get(cmd.appointment_id, lock=True)
    if appointment is None:
        raise NotFound(cmd.appointment_id)
    now = ports.clock.now()
    appointment.cancel(by=cmd.cancelled_by.value, at=now)
    await uow.appointments.save(appointment)
    await uow.appointments.give_back_seat(
        site=appointment.site,
        service_type=appointment.service_type,
        slot_start=appointment.slot_start,
        day=appointment.day,
    )
    uow.publish(
        _appointment_envelope(
            appointment,
            AppointmentCancelledV1(
                appointment_id=appointment.id,
                service_type=appointment.service_type,
                agency=appointment.agency,
                cancelled_by=cmd.cancelled_by,
                reason_code=cmd.reason_code,
                slot_start=appointment.slot_start,
                cancelled_at=now,
            ),
            cmd.correlation_id,
        )
    )
    return appointment


async def check_in_appointment(
    cmd: CheckInAppointment, uow: QueueUnitOfWork, ports: Ports
) -> tuple[Appointment, Visit, Ticket]:
    """Start the visit of a booked appointment within its check-in window and merge its ticket into
    the queue as if issued at the slot start (see :mod:`mpp.queue.domain.appointments`)."""
    appointment = await uow.appointments.by_code(cmd.booking_code, lock=True)
    if appointment is None or appointment.site != cmd.site:
        raise NotFound(cmd.booking_code)
    if appointment.state is not AppointmentState.BOOKED:
        raise WrongState("appointment", appointment.state.value, "check_in")
    rules = ports.appointments.for_service(appointment.service_type)
    now = ports.clock.now()
    appointment.ensure_checkin_open(now, rules)
    channel = Channel(appointment.channel)
    visit = Visit(id=str(uuid.uuid4()), site=appointment.site, channel=channel, started_at=now)
    await uow.visits.add(visit)
    uow.publish(
        _wrap(
            VisitStartedV1(
                visit_id=visit.id,
                channel=channel,
                citizen_ref=appointment.citizen_ref,
                appointment_id=appointment.id,
                started_at=now,
            ),
            agency=ports.catalogue.site_manager(visit.site),
            site=visit.site,
            subject=visit.id,
            corr=cmd.correlation_id,
        )
    )
    ticket = await _issue(
        uow,
        ports,
        visit=visit,
        service_type=appointment.service_type,
        priority_group=cmd.priority_group,
        at=now,
        queued_at=merge_queued_at(appointment.slot_start, now).astimezone(UTC),
    )
    uow.publish(_issued(ticket, cmd.correlation_id, appointment_id=appointment.id))
    appointment.check_in(at=now, rules=rules, visit_id=visit.id, ticket_id=ticket.id)
    await uow.appointments.save(appointment)
    uow.publish(
        _appointment_envelope(
            appointment,
            AppointmentCheckedInV1(
                appointment_id=appointment.id,
                service_type=appointment.service_type,
                agency=appointment.agency,
                visit_id=visit.id,
                ticket_id=ticket.id,
                slot_start=appointment.slot_start,
                checked_in_at=now,
                offset_seconds=round((now - appointment.slot_start).total_seconds()),
            ),
            cmd.correlation_id,
        )
    )
    return appointment, visit, ticket


async def sweep_missed(cmd: SweepMissed, uow: QueueUnitOfWork, ports: Ports) -> list[Appointment]:
    """Mark booked appointments whose check-in window has passed as missed, each with its event.

    Rows another sweep holds are skipped, so two service instances sweeping at once never mark (and
    announce) the same appointment twice.
    """
    now = ports.clock.now()
    before = now - timedelta(minutes=ports.appointments.shortest_late_minutes)
    missed: list[Appointment] = []
    for appointment in await uow.appointments.lock_overdue(before, site=cmd.site, limit=cmd.limit):
        rules = ports.appointments.for_service(appointment.service_type)
        if not appointment.miss(at=now, rules=rules):
            continue
        await uow.appointments.save(appointment)
        closes = appointment.slot_start + timedelta(minutes=rules.checkin_late_minutes)
        uow.publish(
            _appointment_envelope(
                appointment,
                AppointmentMissedV1(
                    appointment_id=appointment.id,
                    service_type=appointment.service_type,
                    agency=appointment.agency,
                    slot_start=appointment.slot_start,
                    window_closed_at=closes,
                    marked_at=now,
                ),
                cmd.correlation_id,
            )
        )
        missed.append(appointment)
    return missed


# --- day close ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseDay:
    site: str
    correlation_id: str
    limit: int = 500
    """Tickets (and visits) one transaction closes at most; run it again until it reports nothing."""


async def close_day(cmd: CloseDay, uow: QueueUnitOfWork, ports: Ports) -> DayCloseReport:
    """Close what is left open of the site's days that are over (see :mod:`mpp.queue.domain.dayclose`).

    Idempotent: only unfinished tickets, visits not ended and open counters are touched, each with its
    event. Safe with several replicas: rows another transaction holds are skipped (``SKIP LOCKED``), so
    two closes running at once never close (and announce) the same row twice.
    """
    report = DayCloseReport()
    now = ports.clock.now()
    calendar = ports.catalogue.site_calendar(cmd.site)
    tz = ports.catalogue.site_zone(cmd.site)
    grace = ports.day_close_grace
    days = [
        d
        for d in await uow.tickets.open_days(cmd.site)
        if now >= day_closes_at(calendar, tz, date.fromisoformat(d), grace)
    ]
    if days:
        for ticket in await uow.tickets.lock_open(cmd.site, days, limit=cmd.limit):
            called = ticket.state is TicketState.CALLED
            ticket.close_day(at=now, reason_code=DAY_CLOSED)
            await uow.tickets.save(ticket)
            uow.publish(*_ticket_events(ticket, cmd.correlation_id))
            if called:
                report.tickets_no_show += 1
            else:
                report.tickets_cancelled += 1
    cutoff = closed_before(calendar, tz, now, grace)
    for visit in await uow.visits.lock_open(cmd.site, cutoff, limit=cmd.limit):
        if visit.end_at_day_close(await uow.tickets.of_visit(visit.id), now):
            await uow.visits.save(visit)
            uow.publish(_visit_ended(visit, ports, cmd.correlation_id))
            report.visits_ended += 1
    for counter in await uow.counters.lock_open(cmd.site, cutoff):
        counter.close()
        await uow.counters.save(counter)
        assert counter.opened_at is not None
        uow.publish(
            _wrap(
                CounterClosedV1(
                    counter=counter.code,
                    agency=counter.agency,
                    officer_ref=DAY_CLOSE_ACTOR,
                    reason=CounterCloseReason.END_OF_DAY,
                    opened_at=counter.opened_at,
                    closed_at=now,
                    tickets_served=counter.tickets_served,
                ),
                agency=counter.agency,
                site=counter.site,
                subject=f"{counter.site}.{counter.code}",
                corr=cmd.correlation_id,
            )
        )
        report.counters_closed += 1
    return report


async def sites_with_open_work(uow: QueueUnitOfWork) -> list[str]:
    """Sites with an unfinished ticket, a visit not ended or an open counter."""
    found = {
        *await uow.tickets.sites_open(),
        *await uow.visits.sites_open(),
        *await uow.counters.sites_open(),
    }
    return sorted(found)


Handler = Callable[[Any, QueueUnitOfWork, Ports], Awaitable[Any]]

HANDLERS: dict[type, Handler] = {
    StartVisit: start_visit,
    AddTicket: add_ticket,
    OpenCounter: open_counter,
    CloseCounter: close_counter,
    CallNext: call_next,
    ActOnTicket: act_on_ticket,
    TransferTicket: transfer_ticket,
    PutPolicy: put_policy,
    BookAppointment: book_appointment,
    CancelAppointment: cancel_appointment,
    CheckInAppointment: check_in_appointment,
    SweepMissed: sweep_missed,
    CloseDay: close_day,
}
