"""How the HTTP providers read a gateway's answers to a repeated idempotency key."""

from __future__ import annotations

import httpx
import pytest

from mpp.contracts.events.notification import NotificationChannel
from mpp.notification.domain.templates import default_book, render
from mpp.notification.ports import Outcome, OutgoingMessage
from mpp.notification.providers import HttpSmsProvider, WhatsAppCloudProvider

pytestmark = pytest.mark.unit


def _message() -> OutgoingMessage:
    template = default_book().find("ticket_called", NotificationChannel.WHATSAPP)
    assert template is not None
    rendered = render(template, {"ticket_number": "A-012", "counter_name": "Loket 2", "site_name": "MPP"})
    return OutgoingMessage("d-1", NotificationChannel.WHATSAPP, "+6281234567890", rendered)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(409, Outcome.TRANSIENT), (422, Outcome.PERMANENT), (429, Outcome.TRANSIENT), (400, Outcome.PERMANENT)],
)
async def test_a_key_still_in_progress_is_asked_again_later_but_a_reused_key_is_refused(
    status: int, outcome: Outcome
) -> None:
    """409: the request with this key before the crash is still being processed; asking again later
    gets its answer. Falling back to SMS instead would send the citizen a second message."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["idempotency-key"])
        return httpx.Response(status, json={"error": {"code": "x"}})

    transport = httpx.MockTransport(answer)
    for provider in (
        WhatsAppCloudProvider(base_url="http://wa", phone_number_id="1", token="t", transport=transport),
        HttpSmsProvider(url="http://sms/v1", token="t", transport=transport),
    ):
        result = await provider.send(_message())
        await provider.close()
        assert result.outcome is outcome
        assert result.error_code == (f"http_{status}" if outcome is Outcome.TRANSIENT else "x")
    assert seen == ["d-1", "d-1"]
