"""A citizen's messages keep the order of their triggers when several arrive in one consumed batch, with
the dispatcher running (batched claims, grouped outcome writes)."""

from __future__ import annotations

import asyncio
import re

import pytest

from mpp.contracts.events.licensing import ApplicationReturnedV1
from mpp.contracts.events.notification import NotificationChannel
from mpp.notification.providers import WhatsAppCloudProvider
from tests.integration.notification.fakes import FakeGateway
from tests.integration.notification.harness import (
    DAYTIME,
    citizen_ref,
    contact_event,
    running_notification,
    wrap,
)

pytestmark = pytest.mark.integration


def returned(ref: str, application: str, n: int) -> object:
    return wrap(
        ApplicationReturnedV1(
            application_id=application,
            service_type="dpmptsp.pbg",
            applicant_ref=ref,
            missing=(f"berkas{n:03d}",),
            note="Berkas perlu dilengkapi.",
            returned_at=DAYTIME,
        ),
        producer="mpp.licensing",
        agency="dpmptsp",
        subject=application,
    )


async def test_one_batch_of_a_citizens_triggers_goes_out_in_order_once_each(
    database_url: str, whatsapp: FakeGateway
) -> None:
    refs = [citizen_ref() for _ in range(4)]
    provider = WhatsAppCloudProvider(base_url=whatsapp.url, phone_number_id="1", token="t", timeout_s=2)
    async with running_notification(
        database_url, providers={NotificationChannel.WHATSAPP: provider}, dispatcher_enabled=True
    ) as api:
        await api.deliver(*(contact_event(r, phone=f"+628120000000{i}") for i, r in enumerate(refs)))
        # Twelve triggers for the first citizen, one for each other, all in one consumed batch.
        batch = [returned(refs[0], "lic-order-0", n) for n in range(12)]
        batch[3:3] = [returned(r, f"lic-order-{i + 1}", 100 + i) for i, r in enumerate(refs[1:])]
        await api.deliver(*batch)  # type: ignore[arg-type]
        api.service.dispatcher.kick.set()
        await whatsapp.until(lambda: len(whatsapp.sent) >= 15, timeout_s=60)
        await asyncio.sleep(0.3)  # a duplicate would arrive now
        rows = await api.deliveries()
    first = [
        re.findall(r"berkas\d{3}", r.body["template"]["components"][0]["parameters"][1]["text"])[0]
        for r in whatsapp.sent
        if r.body["to"] == "6281200000000"
    ]
    assert first == [f"berkas{n:03d}" for n in range(12)]
    assert len(whatsapp.sent) == 15 and whatsapp.duplicates == 0
    assert sorted(r["state"] for r in rows) == ["sent"] * 15
