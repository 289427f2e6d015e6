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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
from mpp.notification.domain.context import message_context
from mpp.notification.domain.model import NO_CHANNEL, Contact, DeliveryState, plan_channels
from mpp.notification.domain.phone import InvalidPhone, normalise_phone
from mpp.notification.domain.rules import ConfigError, Trigger, TriggerConfig
from mpp.notification.domain.templates import DEFAULT_LOCALE, TemplateBook, render
from mpp.notification.persistence.protection import ContactCipher
from mpp.notification.persistence.repository import (
    ContactRepository,
    insert_delivery,
    linked_citizen,
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


async def _recipient(session: AsyncSession, trigger: Trigger, data: dict[str, Any]) -> str | None:
    spec = trigger.recipient
    if spec.field is not None:
        value = data.get(spec.field)
        return str(value) if value else None
    key = data.get(spec.key_field or "")
    if not key or spec.link is None:
        return None
    return await linked_citizen(session, spec.link, str(key))


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


async def apply_events(session: AsyncSession, envelopes: Sequence[Envelope], rules: Rules) -> list[Envelope]:
    """Apply a consumed batch; returns the events to publish (failures decided at once)."""
    published: list[Envelope] = []
    contact_repo = ContactRepository(session, rules.cipher)
    now = rules.now()
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
        trigger = rules.config.trigger(env.type)
        if trigger is None:
            continue
        recipient = await _recipient(session, trigger, data)
        if recipient is None:
            continue  # an anonymous visitor or complainant: nobody to tell
        event = await plan_delivery(
            session,
            Source.of(env),
            trigger,
            recipient,
            contact_repo,
            rules,
            now,
            context=message_context(env, rules.names),
            # One microsecond apart: a citizen's records keep the order of their triggers within the batch
            # (the dispatcher sends a citizen's messages in queued_at order).
            queued_at=now + timedelta(microseconds=index),
        )
        if event is not None:
            published.append(event)
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
    """Write the delivery record of the trigger's first usable channel; a NotificationFailed envelope
    when no channel can be used (no contact, no consent)."""
    contact = await contact_repo.get(recipient)
    plan = plan_channels(trigger, contact)
    values = context
    for channel in plan.channels:
        template = rules.book.find(trigger.template, channel)
        if template is None:
            raise ConfigError(f"no template {trigger.template!r} for {channel.value}")
        render(template, values)  # a template the event cannot fill is an error, never a half message
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
        "context": values,
        "failure_reason": plan.refused.value if plan.refused else None,
        "resend_of": resend_of,
        "requested_by": requested_by,
        "created_at": now,
        "updated_at": now,
    }
    if not await insert_delivery(session, row):
        return None
    if plan.refused is not None:
        log.info(
            "notification.delivery.refused",
            extra={"delivery": row["id"], "kind": row["message_kind"], "reason": plan.refused.value},
        )
        return failed_event(row, final=True, now=now)
    return None
