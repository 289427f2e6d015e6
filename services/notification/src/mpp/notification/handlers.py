"""Use cases: apply consumed events (contacts, links, triggers), and build the delivery events.

Applying a trigger writes the delivery record of its first channel (state ``pending``) in the
consumer's transaction, so a trigger consumed twice (or replayed) never makes a second record: the
record's unique key is (trigger event id, recipient, message kind, channel, round).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.notification import (
    CitizenContactRegisteredV1,
    CitizenContactWithdrawnV1,
    DeliveryFailure,
    MessageKind,
    NotificationChannel,
    NotificationFailedV1,
    NotificationSentV1,
)
from mpp.contracts.events.queue import (
    TicketCalledV1,
    TicketCancelledV1,
    TicketIssuedV1,
    TicketNoShowV1,
    TicketTransferredV1,
)
from mpp.notification.domain.almost import WaitingTicket, queue_rank, to_alert, transfer_credit
from mpp.notification.domain.context import message_context
from mpp.notification.domain.model import NO_CHANNEL, Contact, DeliveryState, plan_channels
from mpp.notification.domain.phone import InvalidPhone, normalise_phone
from mpp.notification.domain.rules import AlmostCalled, ConfigError, Trigger, TriggerConfig
from mpp.notification.domain.templates import DEFAULT_LOCALE, TemplateBook, render
from mpp.notification.persistence import repository as repo
from mpp.notification.persistence.protection import ContactCipher
from mpp.notification.persistence.repository import (
    ContactRepository,
    insert_delivery,
    new_delivery_id,
    save_link,
)
from mpp.notification.ports import Names

PRODUCER = "mpp.notification"
CONTACT_TYPES = frozenset({CitizenContactRegisteredV1.event_type, CitizenContactWithdrawnV1.event_type})

log = logging.getLogger(__name__)


def check_templates(config: TriggerConfig, book: TemplateBook) -> None:
    """Every trigger has a template on each of its channels; :class:`ConfigError` names what is missing."""
    for t in config.triggers:
        for channel in t.channels:
            if book.find(t.template, channel) is None:
                raise ConfigError(f"trigger {t.event_type}: no template {t.template!r} for {channel.value}")
    if config.almost_called is not None:
        for channel in config.almost_called.channels:
            if book.find(config.almost_called.template, channel) is None:
                raise ConfigError(
                    f"almost_called: no template {config.almost_called.template!r} for {channel.value}"
                )


@dataclass
class Rules:
    """What consumption needs: the configuration, the templates, names for messages and a clock."""

    config: TriggerConfig
    book: TemplateBook
    names: Names
    cipher: ContactCipher
    now: Callable[[], datetime]


def contact_from_event(payload: CitizenContactRegisteredV1) -> Contact:
    phone = payload.phone
    # A number that is not a mobile one is kept as given (the contract's form): sending to it fails with
    # invalid_recipient and the message falls back to the next channel.
    if phone is not None:
        with contextlib.suppress(InvalidPhone):
            phone = normalise_phone(phone)
    return Contact(
        citizen_ref=payload.citizen_ref,
        phone=phone,
        email=payload.email,
        whatsapp=payload.whatsapp,
        preferred_channel=payload.preferred_channel,
        optional_consent=payload.optional_messages_consent,
        consent_recorded_at=payload.consent_recorded_at,
        source=payload.source_agency,
    )


def failed_event(row: dict[str, Any], *, final: bool, now: datetime) -> Envelope:
    channel = row["channel"]
    return wrap_event(
        NotificationFailedV1(
            notification_id=row["id"],
            citizen_ref=row["recipient_ref"],
            channel=None if channel == NO_CHANNEL else NotificationChannel(channel),
            provider=row.get("provider"),
            message_kind=MessageKind(row["message_kind"]),
            trigger_event_id=uuid.UUID(row["trigger_event_id"]),
            reason=DeliveryFailure(row["failure_reason"]),
            provider_error_code=row.get("provider_error_code"),
            attempts=row["attempts"],
            final=final,
            failed_at=now,
        ),
        row,
    )


def sent_event(row: dict[str, Any]) -> Envelope:
    return wrap_event(
        NotificationSentV1(
            notification_id=row["id"],
            citizen_ref=row["recipient_ref"],
            channel=NotificationChannel(row["channel"]),
            provider=row["provider"],
            message_kind=MessageKind(row["message_kind"]),
            template=row["template"],
            trigger_event_id=uuid.UUID(row["trigger_event_id"]),
            trigger_event_type=row["trigger_event_type"],
            provider_message_id=row.get("provider_message_id"),
            sent_at=row["sent_at"],
        ),
        row,
    )


def wrap_event(payload: Any, row: dict[str, Any]) -> Envelope:
    return Envelope.wrap(
        payload,
        producer=PRODUCER,
        agency=row["agency"],
        site=row["site"],
        subject=row["id"],
        correlation_id=row["trigger_event_id"],
        causation_id=row["trigger_event_id"],
    )


@dataclass(frozen=True)
class Planned:
    """A message a consumed event asks for, before its recipient's contact is read."""

    source: Source
    trigger: Trigger
    context: dict[str, Any]
    queued_at: datetime
    recipient: str | None = None
    """The citizen, when the event names one; otherwise found through ``link_key``."""
    link_key: str | None = None


async def apply_events(session: AsyncSession, envelopes: Sequence[Envelope], rules: Rules) -> list[Envelope]:
    """Apply a consumed batch; returns the events to publish (failures decided at once).

    Contacts, links and the queues' copy are written event by event (later events of the batch see
    them); the messages the batch asks for are then written together: one query for the linked
    citizens of each link kind, one for the contacts, one insert of every delivery record."""
    contact_repo = ContactRepository(session, rules.cipher)
    now = rules.now()
    planned: list[Planned] = []
    writes = QueueWrites()
    for index, env in enumerate(envelopes):
        payload = env.payload
        if isinstance(payload, CitizenContactRegisteredV1):
            await contact_repo.save(contact_from_event(payload), now)
            continue
        if isinstance(payload, CitizenContactWithdrawnV1):
            await contact_repo.remove(payload.citizen_ref)
            continue
        data = payload.model_dump(mode="json")
        for link in rules.config.links_from(env.type):
            key, citizen = data.get(link.key_field), data.get(link.citizen_field)
            if key and citizen:
                await save_link(session, link.kind, str(key), str(citizen), now)
        # One microsecond apart: a citizen's records keep the order of their triggers within the batch
        # (the dispatcher sends a citizen's messages in queued_at order).
        queued_at = now + timedelta(microseconds=index)
        if rules.config.almost_called is not None:
            planned.extend(
                await track_queue(session, env, rules.config.almost_called, rules, now, queued_at, writes)
            )
        trigger = rules.config.trigger(env.type)
        if trigger is None:
            continue
        spec = trigger.recipient
        if spec.field is not None:
            value = data.get(spec.field)
            if not value:
                continue  # an anonymous visitor or complainant: nobody to tell
            recipient, link_key = str(value), None
        else:
            key = data.get(spec.key_field or "")
            if not key:
                continue
            recipient, link_key = None, str(key)
        context = message_context(env, rules.names)
        planned.append(Planned(Source.of(env), trigger, context, queued_at, recipient, link_key))
    await writes.flush(session)
    if rules.config.almost_called is not None and any(
        isinstance(e.payload, TicketIssuedV1) for e in envelopes
    ):
        # Yesterday's queues are closed: keep two days (time zones, a late event), drop the rest.
        await repo.forget_queue_days(session, now.date() - timedelta(days=2))
    return await plan_deliveries(session, planned, contact_repo, rules, now)


async def plan_deliveries(
    session: AsyncSession,
    planned: Sequence[Planned],
    contact_repo: ContactRepository,
    rules: Rules,
    now: datetime,
) -> list[Envelope]:
    """Write the delivery records of ``planned`` (one insert); NotificationFailed envelopes for those
    that no channel can carry. A record that exists already (a redelivered trigger) is left alone."""
    if not planned:
        return []
    linked: dict[str, dict[str, str]] = {}
    for kind in {p.trigger.recipient.link for p in planned if p.recipient is None}:
        if kind is not None:
            keys = sorted({p.link_key for p in planned if p.trigger.recipient.link == kind and p.link_key})
            linked[kind] = await repo.links_for(session, kind, keys)
    resolved: list[tuple[Planned, str]] = []
    for p in planned:
        recipient = p.recipient
        if recipient is None and p.trigger.recipient.link is not None and p.link_key is not None:
            recipient = linked.get(p.trigger.recipient.link, {}).get(p.link_key)
        if recipient is not None:
            resolved.append((p, recipient))
    found = await contact_repo.get_many(sorted({r for _, r in resolved}))
    rows: list[dict[str, Any]] = []
    refused: dict[str, DeliveryFailure] = {}
    for p, recipient in resolved:
        row, why = delivery_row(
            p.source,
            p.trigger,
            recipient,
            found.get(recipient),
            rules,
            now,
            context=p.context,
            queued_at=p.queued_at,
        )
        rows.append(row)
        if why is not None:
            refused[row["id"]] = why
    inserted = await repo.insert_deliveries(session, rows)
    published = []
    for row in rows:
        if row["id"] in refused and row["id"] in inserted:
            log.info(
                "notification.delivery.refused",
                extra={
                    "delivery": row["id"],
                    "kind": row["message_kind"],
                    "reason": refused[row["id"]].value,
                },
            )
            published.append(failed_event(row, final=True, now=now))
    return published


@dataclass(frozen=True)
class Source:
    """The trigger event, as far as a delivery record needs it."""

    event_id: str
    event_type: str
    site: str
    agency: str

    @classmethod
    def of(cls, env: Envelope) -> Source:
        return cls(str(env.id), env.type, env.site, env.agency)


def delivery_row(
    source: Source,
    trigger: Trigger,
    recipient: str,
    contact: Contact | None,
    rules: Rules,
    now: datetime,
    *,
    round_: int = 0,
    requested_by: str | None = None,
    resend_of: str | None = None,
    context: dict[str, Any],
    queued_at: datetime | None = None,
) -> tuple[dict[str, Any], DeliveryFailure | None]:
    """The delivery record of the trigger's first usable channel, and why no channel can carry the
    message (no contact, no consent) if so. Every usable channel's template is rendered once to check
    it: a template the event cannot fill is an error, never a half message."""
    plan = plan_channels(trigger, contact)
    for channel in plan.channels:
        template = rules.book.find(trigger.template, channel)
        if template is None:
            raise ConfigError(f"no template {trigger.template!r} for {channel.value}")
        render(template, context)
    quiet = rules.config.quiet_hours.for_site(source.site)
    not_before = now if trigger.urgent or quiet is None else quiet.release_at(now)
    row = {
        "id": new_delivery_id(),
        "trigger_event_id": source.event_id,
        "trigger_event_type": source.event_type,
        "recipient_ref": recipient,
        "message_kind": trigger.message_kind.value,
        "channel": plan.channels[0].value if plan.channels else NO_CHANNEL,
        "round": round_,
        "site": source.site,
        "agency": source.agency,
        "template": trigger.template,
        "locale": DEFAULT_LOCALE,
        "critical": trigger.critical,
        "urgent": trigger.urgent,
        "state": DeliveryState.PENDING.value if plan.channels else DeliveryState.FAILED.value,
        "attempts": 0,
        "not_before": not_before,
        "queued_at": queued_at or now,
        "remaining_channels": ",".join(c.value for c in plan.channels[1:]),
        "context": context,
        "failure_reason": plan.refused.value if plan.refused else None,
        "resend_of": resend_of,
        "requested_by": requested_by,
        "created_at": now,
        "updated_at": now,
    }
    return row, plan.refused


async def plan_delivery(
    session: AsyncSession,
    source: Source,
    trigger: Trigger,
    recipient: str,
    contact_repo: ContactRepository,
    rules: Rules,
    now: datetime,
    *,
    round_: int = 0,
    requested_by: str | None = None,
    resend_of: str | None = None,
    context: dict[str, Any],
    queued_at: datetime | None = None,
) -> Envelope | None:
    """Write the delivery record of one message (an operator's resend); a NotificationFailed envelope
    when no channel can be used (no contact, no consent)."""
    row, refused = delivery_row(
        source,
        trigger,
        recipient,
        await contact_repo.get(recipient),
        rules,
        now,
        round_=round_,
        requested_by=requested_by,
        resend_of=resend_of,
        context=context,
        queued_at=queued_at,
    )
    if not await insert_delivery(session, row):
        return None
    if refused is not None:
        log.info(
            "notification.delivery.refused",
            extra={"delivery": row["id"], "kind": row["message_kind"], "reason": refused.value},
        )
        return failed_event(row, final=True, now=now)
    return None


# -- "your number is almost called" -----------------------------------------------------------


def _local_day(at: datetime, site: str, rules: Rules) -> date:
    return at.astimezone(ZoneInfo(rules.names.timezone(site))).date()


@dataclass
class QueueWrites:
    """Tickets issued in a consumed batch, written together (kiosks issue in bursts) before any ticket
    leaves a queue and at the end of the batch."""

    issued: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def flush(self, session: AsyncSession) -> None:
        if self.issued:
            await repo.queue_tickets_issued(session, list(self.issued.values()))
            self.issued.clear()


async def track_queue(
    session: AsyncSession,
    env: Envelope,
    almost: AlmostCalled,
    rules: Rules,
    now: datetime,
    queued_at: datetime,
    writes: QueueWrites,
) -> list[Planned]:
    """Keep the copy of the ticket's queue; after a call, plan the "almost called" messages it brings
    within reach (each ticket once: the ``alerted`` flag commits with the delivery records)."""
    payload = env.payload
    if isinstance(payload, TicketIssuedV1):
        credit = 0.0
        if payload.transferred_from is not None:
            first = writes.issued.get(payload.transferred_from) or await repo.queue_ticket(
                session, payload.transferred_from
            )
            if first is not None:
                credit = transfer_credit(
                    first["issued_at"], first["left_at"] or payload.issued_at, almost.transfer_credit_minutes
                )
        writes.issued.setdefault(
            payload.ticket_id,
            {
                "ticket_id": payload.ticket_id,
                "site": env.site,
                "service_type": payload.service_type,
                "day": _local_day(payload.issued_at, env.site, rules),
                "visit_id": payload.visit_id,
                "ticket_number": payload.ticket_number,
                "rank_ms": queue_rank(
                    payload.issued_at,
                    payload.priority_group,
                    almost.head_start_minutes,
                    transfer_credit_s=credit,
                ),
                "issued_at": payload.issued_at,
                "left_at": None,
                "waiting": True,
                "alerted": False,
                "updated_at": now,
            },
        )
        return []
    left: tuple[str, str, datetime] | None = None
    if isinstance(payload, TicketCalledV1):
        left = (payload.ticket_id, payload.service_type, payload.called_at)
    elif isinstance(payload, TicketCancelledV1):
        left = (payload.ticket_id, payload.service_type, payload.cancelled_at)
    elif isinstance(payload, TicketNoShowV1):
        left = (payload.ticket_id, payload.service_type, payload.marked_at)
    elif isinstance(payload, TicketTransferredV1):
        left = (payload.ticket_id, payload.from_service_type, payload.transferred_at)
    if left is None:
        return []
    ticket_id, service_type, at = left
    day = _local_day(at, env.site, rules)
    await writes.flush(session)
    await repo.queue_ticket_left(
        session,
        {
            "ticket_id": ticket_id,
            "site": env.site,
            "service_type": service_type,
            "day": day,
            "rank_ms": 0,
            "left_at": at,
            "waiting": False,
            "alerted": False,
            "updated_at": now,
        },
    )
    if not isinstance(payload, TicketCalledV1):
        return []
    return await _alert_after_call(session, env, almost, rules, now, queued_at, day)


async def _alert_after_call(
    session: AsyncSession,
    env: Envelope,
    almost: AlmostCalled,
    rules: Rules,
    now: datetime,
    queued_at: datetime,
    day: date,
) -> list[Planned]:
    assert isinstance(env.payload, TicketCalledV1)
    head = await repo.queue_head(session, env.site, env.payload.service_type, day, almost.tickets_ahead + 1)
    by_id = {r["ticket_id"]: r for r in head}
    due = to_alert(
        [WaitingTicket(r["ticket_id"], r["rank_ms"], r["issued_at"], r["alerted"]) for r in head],
        almost.tickets_ahead,
    )
    if not due:
        return []
    await repo.mark_alerted(session, [t.ticket_id for t, _ in due], now)
    visits = [str(by_id[t.ticket_id]["visit_id"]) for t, _ in due if by_id[t.ticket_id]["visit_id"]]
    citizens = await repo.links_for(session, almost.link, visits)
    # Only citizens who left contact details are told: nobody else gets a record (nor a failure event).
    known = await ContactRepository(session, rules.cipher).get_many(sorted(set(citizens.values())))
    trigger, source = almost.trigger, Source.of(env)
    planned: list[Planned] = []
    for ticket, ahead in due:
        row = by_id[ticket.ticket_id]
        citizen = citizens.get(str(row["visit_id"]))
        if citizen is None or citizen not in known:
            continue
        context = {
            "ticket_number": row["ticket_number"],
            "service_type": row["service_type"],
            "service_name": rules.names.service_name(row["service_type"]),
            "site_name": rules.names.site_name(env.site),
            "tickets_ahead": ahead,
        }
        planned.append(Planned(source, trigger, context, queued_at, recipient=citizen))
    return planned
