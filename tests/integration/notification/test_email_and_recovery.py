"""Email to a real SMTP server on loopback, the loopback provider, and the resolution after a crash of
records left in ``sending``."""

from __future__ import annotations

from typing import Any

import pytest

from mpp.contracts.events.notification import NotificationChannel
from mpp.notification.persistence import repository as repo
from mpp.notification.ports import Provider
from mpp.notification.providers import SmtpEmailProvider
from tests.integration.notification.fakes import smtp_server
from tests.integration.notification.harness import (
    application_returned,
    citizen_ref,
    contact_event,
    running_notification,
)

E = NotificationChannel.EMAIL

pytestmark = pytest.mark.integration


def smtp(port: int) -> dict[NotificationChannel, Provider]:
    return {
        E: SmtpEmailProvider(
            host="127.0.0.1", port=port, sender="MPP Kota Sukamaju <noreply@mpp.example.id>", tls="none"
        )
    }


async def test_an_email_reaches_the_smtp_server_with_subject_body_and_headers(database_url: str) -> None:
    ref = citizen_ref()
    with smtp_server() as (box, port):
        async with running_notification(database_url, providers=smtp(port)) as api:
            returned = application_returned(ref)
            await api.deliver(
                contact_event(ref, phone=None, whatsapp=False, email="warga@example.id", preferred=E),
                returned,
            )
            await api.settle()
            [row] = await api.deliveries(returned)
            [sent] = await api.published("NotificationSent")
    assert row["state"] == "sent" and row["channel"] == "email"
    [mail] = box.messages
    assert box.envelopes == [("noreply@mpp.example.id", ["warga@example.id"])]
    assert mail["Subject"] == "Permohonan perlu dilengkapi"
    assert mail["To"] == "warga@example.id"
    assert mail["From"] == "MPP Kota Sukamaju <noreply@mpp.example.id>"
    assert mail["Message-ID"] == f"<{row['id']}@mpp.example.id>"
    assert mail["X-MPP-Delivery-Id"] == row["id"]
    assert mail["X-MPP-Template"] == "application_returned"
    assert mail["Content-Language"] == "id"
    body = mail.get_payload(decode=True).decode()
    assert "Persetujuan Bangunan Gedung (PBG)" in body
    assert "Dokumen rencana teknis" in body
    assert "Gambar struktur belum ditandatangani tenaga ahli." in body
    assert sent.payload["channel"] == "email" and sent.payload["provider"] == "smtp"


async def test_a_refused_mailbox_is_a_final_invalid_recipient(database_url: str) -> None:
    ref = citizen_ref()
    with smtp_server() as (box, port):
        async with running_notification(database_url, providers=smtp(port)) as api:
            await api.deliver(
                contact_event(ref, phone=None, whatsapp=False, email="nobody@refused.invalid", preferred=E),
                application_returned(ref),
            )
            await api.settle()
            [failed] = await api.published("NotificationFailed")
    assert box.messages == []
    assert failed.payload["reason"] == "invalid_recipient" and failed.payload["final"] is True


async def test_the_smtp_server_down_is_transient_then_gives_up(database_url: str) -> None:
    ref = citizen_ref()
    with smtp_server() as (_box, port):
        pass  # the port is closed again: connections are refused
    async with running_notification(database_url, providers=smtp(port), max_attempts=2) as api:
        await api.deliver(
            contact_event(ref, phone=None, whatsapp=False, email="warga@example.id", preferred=E),
            application_returned(ref),
        )
        await api.settle()
        [row] = await api.deliveries()
    assert row["state"] == "failed" and row["attempts"] == 2
    assert row["failure_reason"] == "provider_unavailable"


async def test_the_loopback_provider_keeps_messages_without_the_recipient(database_url: str) -> None:
    ref = citizen_ref()
    async with running_notification(database_url) as api:
        returned = application_returned(ref)
        await api.deliver(contact_event(ref), returned)
        await api.settle()
        [kept] = await api.loopback()
        [row] = await api.deliveries(returned)
    assert kept["delivery_id"] == row["id"] and kept["channel"] == "whatsapp"
    assert kept["recipient"] == "+62812****7890"
    assert "perlu dilengkapi" in kept["body"] and kept["duplicates"] == 0


async def _crash_while_sending(api: Any, returned: Any) -> dict[str, Any]:
    """The record marked ``sending`` and the process gone before the outcome was written."""
    [row] = await api.deliveries(returned)
    async with api.service.runtime.sessions() as session, session.begin():
        assert await repo.mark_sending(session, row["id"], api.clock.now())
    return dict(row)


async def test_after_a_crash_an_idempotent_provider_gets_the_message_again_under_the_same_key(
    database_url: str,
) -> None:
    ref = citizen_ref()
    async with running_notification(database_url) as api:
        returned = application_returned(ref)
        await api.deliver(contact_event(ref), returned)
        row = await _crash_while_sending(api, returned)
        # The provider had received it before the crash.
        provider = api.service.dispatcher.slots[NotificationChannel.WHATSAPP].provider
        from mpp.notification.domain.templates import render
        from mpp.notification.ports import OutgoingMessage

        template = api.service.rules.book.find(row["template"], NotificationChannel.WHATSAPP)
        assert template is not None
        await provider.send(
            OutgoingMessage(
                row["id"], NotificationChannel.WHATSAPP, "+6281234567890", render(template, row["context"])
            )
        )
        assert await api.service.dispatcher.recover() == 1
        await api.settle()
        [kept] = await api.loopback()
        [final] = await api.deliveries(returned)
        sent = await api.published("NotificationSent")
    assert final["state"] == "sent" and final["attempts"] == 2
    assert kept["duplicates"] == 1, "the provider saw the key twice and kept one message"
    assert len(sent) == 1


async def test_after_a_crash_smtp_deliveries_are_not_sent_twice(database_url: str) -> None:
    ref = citizen_ref()
    with smtp_server() as (box, port):
        async with running_notification(database_url, providers=smtp(port)) as api:
            returned = application_returned(ref)
            await api.deliver(
                contact_event(ref, phone=None, whatsapp=False, email="warga@example.id", preferred=E),
                returned,
            )
            await _crash_while_sending(api, returned)
            assert await api.service.dispatcher.recover() == 1
            await api.settle()
            [row] = await api.deliveries(returned)
            [failed] = await api.published("NotificationFailed")
    assert box.messages == []
    assert row["state"] == "failed" and row["provider_error_code"] == "outcome_unknown"
    assert failed.payload["reason"] == "undeliverable" and failed.payload["final"] is True
