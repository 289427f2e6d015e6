"""The providers' HTTP client against raw servers on loopback: keep-alive reuse and its bound, the shapes
of an answer's body, the three timeouts, connections that close early, and TLS verified against a CA
the test makes (refused for an unknown CA or another name)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

from mpp.contracts.events.notification import NotificationChannel
from mpp.notification.domain.templates import default_book, render
from mpp.notification.httpclient import (
    HttpConnectError,
    HttpPool,
    HttpProtocolError,
    HttpTimeout,
    TlsCertificateError,
)
from mpp.notification.ports import Outcome, OutgoingMessage
from mpp.notification.providers import WhatsAppCloudProvider
from tests.integration.notification.test_smtp_tls import make_pki

pytestmark = pytest.mark.integration

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'

Answer = Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]
"""Writes the answer to one request (its body given); False closes the connection afterwards."""


async def answer_ok(writer: asyncio.StreamWriter, body: bytes) -> bool:
    writer.write(OK)
    return True


@dataclass
class RawServer:
    answer: Answer = answer_ok
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v for k, _, v in (x.partition(": ") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((lines[0], headers, body))
                try:
                    keep = await self.answer(writer, body)
                    await writer.drain()
                except ConnectionError:
                    return  # the client gave up and closed
                if not keep:
                    return
        finally:
            self.open_now -= 1
            with contextlib.suppress(ConnectionError):
                writer.close()


@contextlib.asynccontextmanager
async def raw_server(
    answer: Answer = answer_ok, *, context: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    state = RawServer(answer)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if context else 'http'}://127.0.0.1:{port}"
    async with server:
        yield state
        server.close()


def pool(url: str, **kwargs: Any) -> HttpPool:
    settings: dict[str, Any] = {
        "max_connections": 4,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 2.0,
        "total_timeout_s": 5.0,
        **kwargs,
    }
    return HttpPool(url, **settings)


async def test_calls_reuse_kept_alive_connections_and_never_open_more_than_the_bound() -> None:
    async def slow_ok(writer: asyncio.StreamWriter, body: bytes) -> bool:
        await asyncio.sleep(0.05)
        writer.write(OK)
        return True

    async with raw_server(slow_ok) as server:
        client = pool(server.url, max_connections=3, headers=[("Authorization", "Bearer t")])
        for n in range(3):
            answer = await client.post_json("/v1/x", b'{"n":%d}' % n, [("Idempotency-Key", f"k{n}")])
            assert answer.status == 200 and answer.json() == {"ok": True}
        assert server.connections == 1, "one call at a time: the same connection every time"
        answers = await asyncio.gather(*(client.post_json("/v1/x", b"{}") for _ in range(20)))
        await client.aclose()
    assert [a.status for a in answers] == [200] * 20
    assert server.most_open == 3 and server.connections == 3
    line, headers, body = server.requests[1]
    assert line == "POST /v1/x HTTP/1.1"
    assert headers["host"] == server.url.removeprefix("http://")
    assert headers["authorization"] == "Bearer t" and headers["idempotency-key"] == "k1"
    assert headers["content-type"] == "application/json" and body == b'{"n":1}'


def test_the_client_runs_on_uvloop_as_the_service_does() -> None:
    async def scenario() -> tuple[list[int], int]:
        async with raw_server() as server:
            client = pool(server.url, max_connections=2)
            answers = await asyncio.gather(*(client.post_json("/", b"{}") for _ in range(6)))
            answers.append(await client.post_json("/", b"{}"))
            await client.aclose()
        return [a.status for a in answers], server.connections

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        statuses, connections = runner.run(scenario())
    assert statuses == [200] * 7 and connections == 2


async def test_interim_chunked_and_close_delimited_answers_are_read_whole() -> None:
    async def chunked(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n")
        writer.write(b'5\r\n{"id"\r\n')
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b'6\r\n:"m-1"\r\n1\r\n}\r\n0\r\n\r\n')
        return True

    async def until_close(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"id":')
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b'"m-2"}')
        return False

    async def interim_first(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK)
        return True

    async with raw_server(interim_first) as server:
        client = pool(server.url)
        answers = [await client.post_json("/", b"{}") for _ in range(2)]
        await client.aclose()
    assert [(a.status, a.json()) for a in answers] == [(200, {"ok": True})] * 2
    assert "link" not in answers[0].headers
    async with raw_server(chunked) as first, raw_server(until_close) as second:
        client = pool(first.url)
        answer = await client.post_json("/", b"{}")
        await client.aclose()
        assert (answer.status, answer.json(), answer.headers["retry-after"]) == (201, {"id": "m-1"}, "3")
        client = pool(second.url)
        answers = [await client.post_json("/", b"{}") for _ in range(2)]
        await client.aclose()
    assert [a.json() for a in answers] == [{"id": "m-2"}, {"id": "m-2"}]
    assert second.connections == 2, "an answer with Connection: close is not followed by a reuse"


async def test_a_silent_server_runs_out_the_read_timeout_and_its_connection_is_dropped() -> None:
    calls = 0

    async def first_silent(writer: asyncio.StreamWriter, body: bytes) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(1.0)
            return False
        writer.write(OK)
        return True

    async with raw_server(first_silent) as server:
        client = pool(server.url, read_timeout_s=0.2)
        with pytest.raises(HttpTimeout) as raised:
            await client.post_json("/", b"{}")
        assert raised.value.phase == "read"
        answer = await client.post_json("/", b"{}")
        await client.aclose()
    assert answer.status == 200
    assert server.connections == 2, "the timed-out connection was not used again"


async def test_a_trickling_answer_is_cut_by_the_total_timeout() -> None:
    async def trickle(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(40):
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"x")
        return False

    async with raw_server(trickle) as server:
        client = pool(server.url, read_timeout_s=0.5, total_timeout_s=0.6)
        with pytest.raises(HttpTimeout) as raised:
            await client.post_json("/", b"{}")
        await client.aclose()
    assert raised.value.phase == "total"


async def test_all_connections_busy_a_call_waits_for_one_and_gives_up_at_its_total_timeout() -> None:
    release = asyncio.Event()

    async def held(writer: asyncio.StreamWriter, body: bytes) -> bool:
        await release.wait()
        writer.write(OK)
        return True

    async with raw_server(held) as server:
        client = pool(server.url, max_connections=1, total_timeout_s=5.0, read_timeout_s=5.0)
        first = asyncio.create_task(client.post_json("/", b"{}"))
        await asyncio.sleep(0.05)
        with pytest.raises(HttpTimeout) as raised:
            await client.post_json("/", b"{}", total_timeout_s=0.2)
        assert raised.value.phase == "pool"
        release.set()
        assert (await first).status == 200
        answers = await asyncio.gather(*(client.post_json("/", b"{}") for _ in range(5)))
        await client.aclose()
    assert [a.status for a in answers] == [200] * 5


async def test_refused_connections_and_answers_cut_short_are_errors() -> None:
    async with raw_server() as server:
        url = server.url
    client = pool(url)
    with pytest.raises(HttpConnectError):
        await client.post_json("/", b"{}")
    await client.aclose()

    async def cut(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{")
        return False

    async def nonsense(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        return True

    for answer in (cut, nonsense):
        async with raw_server(answer) as server:
            client = pool(server.url)
            with pytest.raises(HttpProtocolError):
                await client.post_json("/", b"{}")
            await client.aclose()


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def once(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(OK)  # keep-alive announced, then closed (a server's idle timeout)
        return False

    async with raw_server(once) as server:
        client = pool(server.url)
        await client.post_json("/", b"{}")
        await asyncio.sleep(0.1)
        answer = await client.post_json("/", b"{}")
        await client.aclose()
    assert answer.status == 200 and server.connections == 2


async def test_a_request_meeting_a_stale_connection_is_sent_again_only_when_allowed() -> None:
    async def first_only(writer: asyncio.StreamWriter, body: bytes) -> bool:
        if body == b'"first"':
            writer.write(OK)
            return True
        return False  # a later request on this connection: closed unanswered, as at an idle timeout

    async with raw_server(first_only) as server:
        client = pool(server.url)
        await client.post_json("/", b'"first"')
        with pytest.raises(HttpProtocolError):
            await client.post_json("/", b'"later"')
        await client.post_json("/", b'"first"')
        with pytest.raises(HttpProtocolError):  # sent again once, on a new connection: closed too
            await client.post_json("/", b'"later"', resend_stale=True)
        await client.aclose()
        bodies = [body for _line, _headers, body in server.requests]
    assert bodies == [b'"first"', b'"later"', b'"first"', b'"later"', b'"later"']

    async def keyed_once(writer: asyncio.StreamWriter, body: bytes) -> bool:
        writer.write(OK)
        return False  # announces keep-alive, then closes after each answer

    async with raw_server(keyed_once) as server:
        client = pool(server.url)
        await client.post_json("/", b"{}")
        # The close may not have reached the client yet: either way the call succeeds.
        answer = await client.post_json("/", b"{}", resend_stale=True)
        await client.aclose()
    assert answer.status == 200


async def test_header_values_cannot_smuggle_lines() -> None:
    client = pool("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="invalid HTTP header"):
        await client.post_json("/", b"{}", [("Idempotency-Key", "k\r\nX-Evil: 1")])
    with pytest.raises(ValueError, match="invalid HTTP header"):
        pool("http://127.0.0.1:9", headers=[("Authorization", "Bearer t\n")])


def _message() -> OutgoingMessage:
    template = default_book().find("ticket_called", NotificationChannel.WHATSAPP)
    assert template is not None
    rendered = render(template, {"ticket_number": "A-012", "counter_name": "Loket 2", "site_name": "MPP"})
    return OutgoingMessage("d-1", NotificationChannel.WHATSAPP, "+6281234567890", rendered)


async def test_tls_is_verified_against_the_configured_ca_and_the_host_name(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "good", server_names=("localhost",), ips=("127.0.0.1",))
    other = make_pki(tmp_path / "other", server_names=("gateway.example",), ips=())
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(pki.cert_file, pki.key_file)
    misnamed = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    misnamed.load_cert_chain(other.cert_file, other.key_file)

    async def wa_ok(writer: asyncio.StreamWriter, body: bytes) -> bool:
        answer = b'{"messages":[{"id":"wamid.1"}]}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        return True

    async with raw_server(wa_ok, context=served) as server:
        client = pool(server.url, ca_file=str(pki.ca_file))
        assert (await client.post_json("/", b"{}")).status == 200
        await client.aclose()
        for ca_file in (None, str(other.ca_file)):  # certifi's bundle, another CA
            client = pool(server.url, ca_file=ca_file)
            with pytest.raises(TlsCertificateError):
                await client.post_json("/", b"{}")
            await client.aclose()
        provider = WhatsAppCloudProvider(base_url=server.url, phone_number_id="1", token="t")
        refused = await provider.send(_message())
        await provider.close()
        provider = WhatsAppCloudProvider(
            base_url=server.url, phone_number_id="1", token="t", ca_file=str(pki.ca_file)
        )
        sent = await provider.send(_message())
        await provider.close()
        requests = len(server.requests)
    assert refused.outcome is Outcome.TRANSIENT and refused.error_code == "tls_certificate"
    assert sent.outcome is Outcome.SENT and sent.provider_message_id == "wamid.1"
    assert requests == 2, "nothing was sent over a connection whose certificate did not verify"
    async with raw_server(wa_ok, context=misnamed) as server:
        client = pool(server.url, ca_file=str(other.ca_file))  # the right CA, but not this host's name
        with pytest.raises(TlsCertificateError):
            await client.post_json("/", b"{}")
        await client.aclose()
    assert server.requests == []
