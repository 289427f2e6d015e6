"""Notification events: citizens' contact details, and the outcome of each message sent.

Contact details are personal data and travel only on ``mpp.notification.contacts`` (compacted, keyed
by the citizen reference), which only the notification service reads: other services name a citizen
by reference and the notification service looks the contact up. Delivery outcomes travel on
``mpp.notification.deliveries`` keyed by the notification id and carry no contact details.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AwareDatetime, Field, model_validator

from mpp.contracts.envelope import EventPayload, event, personal
from mpp.contracts.events.common import (
    AgencyCode,
    CitizenRef,
    Code,
)
from mpp.contracts.topics import NOTIFICATION_CONTACTS, NOTIFICATION_DELIVERIES

DOMAIN = "notification"

PhoneNumber = Annotated[str, Field(pattern=r"^\+62[0-9]{8,13}$")]
"""An Indonesian phone number in E.164 form, e.g. +6281234567890."""

EmailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]


NotificationId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Notification id: the record key of mpp.notification.deliveries.",
    ),
]


class NotificationChannel(StrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"
    EMAIL = "email"


class MessageKind(StrEnum):
    """What a message is about. Kinds marked optional need the citizen's consent."""

    TICKET_CONFIRMATION = "ticket_confirmation"
    TICKET_CALLED = "ticket_called"
    TICKET_ALMOST_CALLED = "ticket_almost_called"
    """Few tickets are left ahead of the citizen's ticket in its queue."""
    APPOINTMENT_CONFIRMATION = "appointment_confirmation"
    APPOINTMENT_REMINDER = "appointment_reminder"
    APPOINTMENT_CANCELLED = "appointment_cancelled"
    APPLICATION_RECEIVED = "application_received"
    APPLICATION_RETURNED = "application_returned"
    APPLICATION_APPROVED = "application_approved"
    APPLICATION_REJECTED = "application_rejected"
    DOCUMENT_READY = "document_ready"
    PERMIT_ISSUED = "permit_issued"
    COMPLAINT_UPDATE = "complaint_update"
    SURVEY_INVITATION = "survey_invitation"
    """Optional."""
    SERVICE_INFORMATION = "service_information"
    """Optional: news about services and opening hours."""

    @property
    def optional(self) -> bool:
        """True for messages that are not part of a service the citizen asked for."""
        return self in (MessageKind.SURVEY_INVITATION, MessageKind.SERVICE_INFORMATION)


class DeliveryFailure(StrEnum):
    NO_CONTACT = "no_contact"
    """No contact details are registered for the citizen on this channel."""
    NO_CONSENT = "no_consent"
    """An optional message and the citizen did not consent."""
    INVALID_RECIPIENT = "invalid_recipient"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"


@event("NotificationSent", 1, topic=NOTIFICATION_DELIVERIES, domain=DOMAIN)
class NotificationSentV1(EventPayload):
    """A message was handed to a provider for delivery."""

    notification_id: NotificationId
    citizen_ref: CitizenRef
    channel: NotificationChannel
    provider: Code = Field(description="Gateway that carries the message, e.g. a WhatsApp Business provider.")
    message_kind: MessageKind
    template: Code = Field(description="Message template code (the text itself is not in the event).")
    trigger_event_id: uuid.UUID = Field(description="Id of the event that caused the message.")
    trigger_event_type: str = Field(description="Type of that event, e.g. TicketCalled.")
    provider_message_id: str | None = Field(default=None, description="The provider's id for the message.")
    sent_at: AwareDatetime


@event("NotificationDelivered", 1, topic=NOTIFICATION_DELIVERIES, domain=DOMAIN)
class NotificationDeliveredV1(EventPayload):
    """The provider confirmed delivery to the citizen's device or mailbox."""

    notification_id: NotificationId
    channel: NotificationChannel
    provider: Code
    message_kind: MessageKind
    trigger_event_id: uuid.UUID = Field(description="Id of the event that caused the message.")
    sent_at: AwareDatetime
    delivered_at: AwareDatetime
    read_at: AwareDatetime | None = Field(
        default=None, description="Read receipt, where the channel has one."
    )


@event("NotificationFailed", 1, topic=NOTIFICATION_DELIVERIES, domain=DOMAIN)
class NotificationFailedV1(EventPayload):
    """A message could not be delivered (``final`` when no more attempts will be made)."""

    notification_id: NotificationId
    citizen_ref: CitizenRef
    channel: NotificationChannel | None = Field(
        default=None, description="Channel tried; none when no channel could be chosen."
    )
    provider: Code | None = None
    message_kind: MessageKind
    trigger_event_id: uuid.UUID = Field(description="Id of the event that caused the message.")
    reason: DeliveryFailure
    provider_error_code: str | None = Field(default=None, description="The provider's error code, if any.")
    attempts: int = Field(ge=0, description="Delivery attempts made so far.")
    final: bool = Field(description="No further attempt will be made.")
    failed_at: AwareDatetime


@event("CitizenContactRegistered", 1, topic=NOTIFICATION_CONTACTS, domain=DOMAIN)
class CitizenContactRegisteredV1(EventPayload):
    """A citizen gave or changed their contact details. The latest registration per citizen replaces
    earlier ones (the topic is compacted on the citizen reference).

    Personal data: this event travels only on the contacts topic, which only the notification service reads.
    """

    citizen_ref: CitizenRef
    phone: PhoneNumber | None = personal("Mobile number in E.164 form, for WhatsApp and SMS.", default=None)
    email: EmailAddress | None = personal("Email address.", default=None)
    whatsapp: bool = Field(default=False, description="The phone number can receive WhatsApp messages.")
    preferred_channel: NotificationChannel
    optional_messages_consent: bool = Field(
        description="Consent to optional messages (survey invitations, service information); service "
        "messages the citizen asked for need no consent."
    )
    consent_recorded_at: AwareDatetime
    source_agency: AgencyCode = Field(description="Agency whose service collected the details.")
    registered_at: AwareDatetime

    @model_validator(mode="after")
    def _preferred_channel_is_reachable(self) -> Self:
        reachable = {
            NotificationChannel.WHATSAPP: self.phone is not None and self.whatsapp,
            NotificationChannel.SMS: self.phone is not None,
            NotificationChannel.EMAIL: self.email is not None,
        }
        if not reachable[self.preferred_channel]:
            raise ValueError(
                f"preferred channel {self.preferred_channel.value} has no matching contact detail"
            )
        return self


@event("CitizenContactWithdrawn", 1, topic=NOTIFICATION_CONTACTS, domain=DOMAIN)
class CitizenContactWithdrawnV1(EventPayload):
    """The citizen withdrew their contact details (or asked for erasure); it replaces the last
    registration on the compacted topic, so the details disappear at the next compaction."""

    citizen_ref: CitizenRef
    withdrawn_at: AwareDatetime
