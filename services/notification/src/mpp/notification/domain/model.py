"""Contacts, delivery states and the choice of channels for one message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mpp.contracts.events.notification import DeliveryFailure, NotificationChannel
from mpp.notification.domain.rules import Trigger

NO_CHANNEL = "none"


class DeliveryState(StrEnum):
    PENDING = "pending"
    """Written, waiting for its time (quiet hours, backoff) or for the dispatcher."""
    SENDING = "sending"
    """Handed to the provider; the outcome is not recorded yet."""
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.FAILED)


@dataclass(frozen=True)
class Contact:
    """A citizen's contact details (personal data: never logged, masked in answers)."""

    citizen_ref: str
    phone: str | None
    email: str | None
    whatsapp: bool
    preferred_channel: NotificationChannel
    optional_consent: bool
    consent_recorded_at: datetime
    source: str

    def reaches(self, channel: NotificationChannel) -> bool:
        if channel is NotificationChannel.WHATSAPP:
            return self.phone is not None and self.whatsapp
        if channel is NotificationChannel.SMS:
            return self.phone is not None
        return self.email is not None

    def address(self, channel: NotificationChannel) -> str | None:
        return self.email if channel is NotificationChannel.EMAIL else self.phone


@dataclass(frozen=True)
class Plan:
    """The channels to try in order, or why the message cannot be sent at all."""

    channels: tuple[NotificationChannel, ...]
    refused: DeliveryFailure | None = None


def plan_channels(trigger: Trigger, contact: Contact | None) -> Plan:
    """Channels of the trigger that the contact can be reached on, the citizen's preferred one first.

    Critical messages go out whatever the consent; the others need consent to optional messages.
    """
    if contact is None:
        return Plan((), DeliveryFailure.NO_CONTACT)
    if not trigger.critical and not contact.optional_consent:
        return Plan((), DeliveryFailure.NO_CONSENT)
    usable = [c for c in trigger.channels if contact.reaches(c)]
    if contact.preferred_channel in usable:
        usable.remove(contact.preferred_channel)
        usable.insert(0, contact.preferred_channel)
    if not usable:
        return Plan((), DeliveryFailure.NO_CONTACT)
    return Plan(tuple(usable))
