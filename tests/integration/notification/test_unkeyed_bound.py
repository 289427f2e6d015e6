"""A provider without an idempotency key (SMTP) gets few calls at a time from the running dispatcher:
each call in flight is a message of unknown outcome if the process dies. Providers with a key are not
held to that bound."""

from __future__ import annotations

import asyncio

import pytest

from mpp.contracts.events.notification import NotificationChannel
from mpp.notification.ports import OutgoingMessage, Provider, SendResult
from tests.integration.notification.harness import (
    application_returned,
    citizen_ref,
    contact_event,
    running_notification,
)

pytestmark = pytest.mark.integration

W, E = NotificationChannel.WHATSAPP, NotificationChannel.EMAIL


class SlowProvider:
    """Answers after a while and records how many calls were in flight at most."""

    def __init__(self, name: str, *, idempotent: bool) -> None:
        self.name = name
        self.idempotent = idempotent
        self.in_flight = 0
        self.most = 0
        self.keys: list[str] = []

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.05)
        finally:
            self.in_flight -= 1
        self.keys.append(message.delivery_id)
        return SendResult.sent(f"{self.name}-{len(self.keys)}")

    async def close(self) -> None:
        return None


async def test_calls_to_a_provider_without_a_key_are_bounded_and_the_others_are_not(
    database_url: str,
) -> None:
    email, whatsapp = SlowProvider("smtp", idempotent=False), SlowProvider("wa", idempotent=True)
    providers: dict[NotificationChannel, Provider] = {E: email, W: whatsapp}
    mail_refs, phone_refs = [citizen_ref() for _ in range(16)], [citizen_ref() for _ in range(16)]
    async with running_notification(
        database_url, providers=providers, dispatcher_enabled=True, dispatch_unkeyed_concurrency=2
    ) as api:
        await api.deliver(
            *(
                contact_event(r, phone=None, whatsapp=False, email=f"w{i}@example.id", preferred=E)
                for i, r in enumerate(mail_refs)
            ),
            *(contact_event(r, phone=f"+62812000001{i:02d}") for i, r in enumerate(phone_refs)),
        )
        await api.deliver(*(application_returned(r) for r in mail_refs + phone_refs))
        api.service.dispatcher.kick.set()
        for _ in range(600):
            rows = await api.deliveries()
            if len(rows) == 32 and all(r["state"] == "sent" for r in rows):
                break
            await asyncio.sleep(0.05)
        rows = await api.deliveries()
    assert sorted(r["state"] for r in rows) == ["sent"] * 32
    assert len(email.keys) == len(set(email.keys)) == 16
    assert len(whatsapp.keys) == len(set(whatsapp.keys)) == 16
    assert email.most <= 2
    assert whatsapp.most > 2
