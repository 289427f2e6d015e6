"""How the HTTP providers read a gateway's answers to a repeated idempotency key."""

from __future__ import annotations

import asyncio
import json

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

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in head[1:] if line)}
        await reader.readexactly(int(headers["content-length"]))
        seen.append(headers["idempotency-key"])
        body = json.dumps({"error": {"code": "x"}}).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        for provider in (
            WhatsAppCloudProvider(base_url=url, phone_number_id="1", token="t"),
            HttpSmsProvider(url=f"{url}/v1", token="t"),
        ):
            result = await provider.send(_message())
            await provider.close()
            assert result.outcome is outcome
            assert result.error_code == (f"http_{status}" if outcome is Outcome.TRANSIENT else "x")
    assert seen == ["d-1", "d-1"]
