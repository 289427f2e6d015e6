"""The ports of the notification service: message providers (one per channel) and the names used in
messages (from the site's catalogue)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mpp.contracts.events.notification import DeliveryFailure, NotificationChannel
from mpp.notification.domain.templates import RenderedMessage


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: str
    """Also the idempotency key given to providers that support one."""
    channel: NotificationChannel
    recipient: str
    """E.164 phone number or email address: personal data, never logged."""
    message: RenderedMessage


class Outcome(StrEnum):
    SENT = "sent"
    TRANSIENT = "transient"
    """Try again later (timeouts, 5xx, 429, connection refused)."""
    PERMANENT = "permanent"
    """This channel will not carry the message (rejected, invalid recipient)."""


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str | None = None
    retry_after_s: float | None = None
    reason: DeliveryFailure | None = None
    error_code: str | None = None

    @classmethod
    def sent(cls, provider_message_id: str | None) -> SendResult:
        return cls(Outcome.SENT, provider_message_id=provider_message_id)

    @classmethod
    def transient(cls, error_code: str, retry_after_s: float | None = None) -> SendResult:
        return cls(
            Outcome.TRANSIENT,
            retry_after_s=retry_after_s,
            reason=DeliveryFailure.PROVIDER_UNAVAILABLE,
            error_code=error_code,
        )

    @classmethod
    def permanent(cls, reason: DeliveryFailure, error_code: str | None = None) -> SendResult:
        return cls(Outcome.PERMANENT, reason=reason, error_code=error_code)


class Provider(Protocol):
    name: str
    """Code of the gateway, e.g. ``whatsapp-cloud`` (a Code in the contracts)."""
    idempotent: bool
    """The provider deduplicates by the idempotency key: a message whose outcome is unknown after a crash
    can be sent again with the same key."""

    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def close(self) -> None: ...


class Names(Protocol):
    """Labels for messages, from the site's master data (codes are shown when a name is unknown)."""

    def site_name(self, site: str) -> str: ...

    def service_name(self, service_type: str) -> str: ...

    def counter_name(self, counter: str) -> str: ...

    def requirement_name(self, service_type: str, code: str) -> str: ...

    def timezone(self, site: str) -> str: ...
