"""The HTTP API: contacts (citizen and counter), operators' delivery status, failures and resend, and
the providers' signed delivery callbacks."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from mpp.kit.auth import Role
from mpp.notification.api.http import SIGNATURE_HEADER, signature
from mpp.notification.config import DEV_WEBHOOK_SECRET
from mpp.notification.persistence.tables import contacts
from tests.integration.notification.harness import (
    OTHER_SITE,
    application_returned,
    bearer,
    citizen_ref,
    contact_event,
    running_notification,
)

OPERATOR = bearer(roles=[Role.OPERATOR], subject="op-1")
MINISTRY = bearer(roles=[Role.MINISTRY], subject="kemenpan-1", site=None)
OTHER_OPERATOR = bearer(roles=[Role.OPERATOR], subject="op-2", site=OTHER_SITE)

pytestmark = pytest.mark.integration


async def test_a_citizen_registers_their_own_contact_stored_encrypted_and_shown_masked(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ref = citizen_ref()
    me = bearer(roles=[Role.CITIZEN], subject=ref)
    caplog.set_level(logging.DEBUG)
    async with running_notification(database_url) as api:
        body = {
            "phone": "0812-3456-7890",
            "email": "warga@example.id",
            "whatsapp": True,
            "preferred_channel": "whatsapp",
        }
        put = await api.client.put("/v1/contacts/me", json=body, headers=me)
        got = await api.client.get("/v1/contacts/me", headers=me)
        async with api.engine.connect() as conn:
            stored = (
                (await conn.execute(select(contacts).where(contacts.c.citizen_ref == ref))).mappings().one()
            )
        contact = await api.service.contact(ref)
        gone = await api.client.delete("/v1/contacts/me", headers=me)
        after = await api.client.get("/v1/contacts/me", headers=me)
    assert put.status_code == 200, put.text
    assert put.json()["phone"] == "+62812****7890" and put.json()["email"] == "w***@example.id"
    assert got.json() == put.json()
    assert b"6281234567890" not in bytes(stored["phone"]) and b"warga" not in bytes(stored["email"])
    assert contact is not None and contact.phone == "+6281234567890" and contact.email == "warga@example.id"
    assert gone.status_code == 204 and after.status_code == 404
    assert "3456" not in caplog.text and "warga@" not in caplog.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "021-555-1234", "preferred_channel": "sms"}, "phone"),
        ({"phone": "+1 415 555 0100", "preferred_channel": "sms"}, "phone"),
        ({"email": "warga@example.id", "preferred_channel": "whatsapp"}, "preferred_channel"),
        ({"phone": "081234567890", "whatsapp": False, "preferred_channel": "whatsapp"}, "preferred_channel"),
    ],
)
async def test_bad_contacts_are_refused_with_a_message(
    database_url: str, body: dict[str, object], field: str
) -> None:
    me = bearer(roles=[Role.CITIZEN], subject=citizen_ref())
    async with running_notification(database_url) as api:
        response = await api.client.put("/v1/contacts/me", json=body, headers=me)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"]["field"] == field
    assert "555" not in error["message"]


async def test_an_officer_registers_a_contact_at_the_counter_of_their_site_only(database_url: str) -> None:
    ref = citizen_ref()
    body = {"phone": "081234567890", "preferred_channel": "sms", "optional_messages_consent": True}
    async with running_notification(database_url) as api:
        ok = await api.client.put(
            f"/v1/contacts/{ref}", json=body, headers=bearer(roles=[Role.OFFICER], agency="disdukcapil")
        )
        elsewhere = await api.client.put(
            f"/v1/contacts/{ref}",
            json=body,
            headers=bearer(roles=[Role.OFFICER], agency="disdukcapil", site=OTHER_SITE),
        )
        citizen = await api.client.put(
            f"/v1/contacts/{ref}", json=body, headers=bearer(roles=[Role.CITIZEN], subject=ref)
        )
        anonymous = await api.client.put(f"/v1/contacts/{ref}", json=body)
        contact = await api.service.contact(ref)
    assert ok.status_code == 200 and ok.json()["optional_messages_consent"] is True
    assert contact is not None and contact.source == "disdukcapil"
    assert elsewhere.status_code == 403 and citizen.status_code == 403 and anonymous.status_code == 401


async def test_operators_see_status_and_failures_of_their_site_and_resend(database_url: str) -> None:
    ref, stranger = citizen_ref(), citizen_ref()
    async with running_notification(database_url) as api:
        returned, unknown = application_returned(ref), application_returned(stranger)
        elsewhere = application_returned(citizen_ref(), site=OTHER_SITE)
        await api.deliver(contact_event(ref), returned, unknown, elsewhere)
        await api.settle()
        status = await api.client.get(
            "/v1/deliveries", params={"trigger_event_id": str(returned.id)}, headers=OPERATOR
        )
        failures = await api.client.get("/v1/deliveries/failures", params={"size": 1}, headers=OPERATOR)
        everywhere = await api.client.get("/v1/deliveries/failures", headers=MINISTRY)
        [failed] = [r for r in failures.json()["items"]]
        # The citizen registers afterwards; the operator sends the message again.
        await api.deliver(contact_event(stranger, phone="+6281298765432"))
        by_ministry = await api.client.post(f"/v1/deliveries/{failed['id']}/resend", headers=MINISTRY)
        by_other = await api.client.post(f"/v1/deliveries/{failed['id']}/resend", headers=OTHER_OPERATOR)
        resent = await api.client.post(f"/v1/deliveries/{failed['id']}/resend", headers=OPERATOR)
        await api.settle()
        rows = await api.deliveries(unknown)
        hidden = await api.client.get(
            "/v1/deliveries", params={"trigger_event_id": str(returned.id)}, headers=OTHER_OPERATOR
        )
    assert status.status_code == 200
    [item] = status.json()["items"]
    assert item["state"] == "sent" and item["channel"] == "whatsapp"
    assert "recipient_ref" not in item and "context" not in item
    assert failures.json()["total"] == 1 and failed["failure_reason"] == "no_contact"
    assert everywhere.json()["total"] == 2
    assert by_ministry.status_code == 403 and by_other.status_code == 404
    assert resent.status_code == 202, resent.text
    assert resent.json()["round"] == 1 and resent.json()["resend_of"] == failed["id"]
    assert [(r["round"], r["state"]) for r in rows] == [(0, "failed"), (1, "sent")]
    assert rows[1]["requested_by"] == "op-1"
    assert hidden.json()["items"] == []


async def test_a_signed_delivery_report_marks_the_message_delivered(database_url: str) -> None:
    ref = citizen_ref()
    async with running_notification(database_url) as api:
        returned = application_returned(ref)
        await api.deliver(contact_event(ref), returned)
        await api.settle()
        [row] = await api.deliveries(returned)
        report = json.dumps(
            {
                "statuses": [
                    {"id": row["provider_message_id"], "status": "delivered", "timestamp": "1772420400"}
                ]
            }
        ).encode()
        provider = row["provider"]
        forged = await api.client.post(
            f"/v1/webhooks/{provider}/status", content=report, headers={SIGNATURE_HEADER: "sha256=00"}
        )
        good = {SIGNATURE_HEADER: signature(DEV_WEBHOOK_SECRET, report), "content-type": "application/json"}
        accepted = await api.client.post(f"/v1/webhooks/{provider}/status", content=report, headers=good)
        again = await api.client.post(f"/v1/webhooks/{provider}/status", content=report, headers=good)
        junk = b'{"statuses": 3}'
        malformed = await api.client.post(
            f"/v1/webhooks/{provider}/status",
            content=junk,
            headers={SIGNATURE_HEADER: signature(DEV_WEBHOOK_SECRET, junk)},
        )
        [after] = await api.deliveries(returned)
        delivered = await api.published("NotificationDelivered")
    assert forged.status_code == 401
    assert accepted.status_code == 200 and accepted.json() == {"received": 1, "matched": 1}
    assert again.status_code == 200
    assert malformed.status_code == 422
    assert after["state"] == "delivered"
    [event] = delivered
    assert event.payload["notification_id"] == row["id"]
    assert event.payload["delivered_at"].startswith("2026-03-02T03:00:00")


async def test_a_failure_report_after_sending_hands_the_message_to_the_next_channel(
    database_url: str,
) -> None:
    ref = citizen_ref()
    async with running_notification(database_url) as api:
        returned = application_returned(ref)
        await api.deliver(contact_event(ref), returned)
        await api.settle()
        [row] = await api.deliveries(returned)
        report = json.dumps(
            {"statuses": [{"id": row["provider_message_id"], "status": "failed", "error_code": "131047"}]}
        ).encode()
        headers = {SIGNATURE_HEADER: signature(DEV_WEBHOOK_SECRET, report)}
        answer = await api.client.post(
            f"/v1/webhooks/{row['provider']}/status", content=report, headers=headers
        )
        await api.settle()
        rows = await api.deliveries(returned)
    assert answer.status_code == 200
    assert [(r["channel"], r["state"]) for r in rows] == [("whatsapp", "failed"), ("sms", "sent")]
    assert rows[0]["provider_error_code"] == "131047"
