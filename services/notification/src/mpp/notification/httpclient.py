"""A lean HTTP/1.1 client for the providers' JSON APIs.

Each provider call is one ``POST`` with a small JSON body and a small JSON answer, many of them in flight
at once. A general client (httpx over httpcore, anyio and h11) spent about half of the dispatcher's CPU
on each call: request and response models, URL parsing, header validation, a pool scanned on every
request. This one keeps what those calls need and nothing else:

- connections are asyncio protocols, kept alive and reused (last used first), at most
  ``max_connections`` per origin; a call that finds none free waits for one (within its total timeout);
- the request is written in one piece (head and body); the answer is parsed by httptools (llhttp, the
  parser uvicorn uses), content-length, chunked and close-delimited bodies alike;
- TLS is verified (certificate chain and host name) against certifi's CA bundle, the one httpx used, or
  a configured CA file;
- timeouts: ``connect_timeout_s`` (TCP and TLS handshake), ``read_timeout_s`` (no byte of the answer
  for that long), ``total_timeout_s`` (the whole call, waiting for a free connection included). A
  timed-out or cancelled call closes its connection: it is never reused for another request;
- nothing is read from the environment (no proxy): the provider's address is configured. Redirects are
  not followed and nothing is decompressed (no ``Accept-Encoding`` is sent).

Every failure is an :class:`HttpError`: :class:`HttpTimeout` (with the phase that ran out),
:class:`HttpConnectError` (refused, unreachable), :class:`TlsCertificateError` (the server's certificate
does not verify) or :class:`HttpProtocolError` (closed before a whole answer, or not HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import quote, urlsplit

import certifi
import httptools
import orjson

Phase = Literal["connect", "pool", "read", "total"]


class HttpError(Exception):
    """The call got no complete answer."""


class HttpTimeout(HttpError):
    def __init__(self, phase: Phase) -> None:
        super().__init__(f"{phase} timeout")
        self.phase = phase


class HttpConnectError(HttpError):
    """No connection: refused, unreachable, name not resolved, TLS handshake failed."""


class TlsCertificateError(HttpConnectError):
    """The server's certificate does not verify (unknown CA, another name, expired)."""


class HttpProtocolError(HttpError):
    """The connection closed before a whole answer arrived, or the answer was not HTTP."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    """Header names in lower case (a repeated header keeps its last value)."""
    body: bytes

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return orjson.loads(self.body)


def _check_header(name: str, value: str) -> None:
    if any(c in name for c in "\r\n:") or any(c in value for c in "\r\n"):
        raise ValueError(f"invalid HTTP header {name!r}")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self.exchanges = 0
        """Requests written on this connection."""
        self.answered = False
        """Bytes of an answer arrived for the current request."""
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._activity = 0.0
        self._deadline = 0.0
        self._read_timeout = 0.0
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._headers_done = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self._activity = self._loop.time()
        self.answered = True
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpProtocolError(f"invalid HTTP answer: {type(exc).__name__}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and self._close_delimited():
            self._finish()  # the body ran until the server closed the connection
        else:
            waiter.set_exception(HttpProtocolError("the connection closed before the answer"))

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._status, self._headers, self._body, self._headers_done = 0, {}, [], False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            return  # an interim answer (103 Early Hints, an unasked 100 Continue): the final one follows
        if not self._parser.should_keep_alive():
            self.reusable = False
        self._finish()

    # -- the exchange --------------------------------------------------------------------------

    def _close_delimited(self) -> bool:
        return "content-length" not in self._headers and "chunked" not in self._headers.get(
            "transfer-encoding", ""
        )

    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(HttpResponse(self._status, self._headers, b"".join(self._body)))

    def _fail(self, error: HttpError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    async def exchange(self, data: bytes, deadline: float, read_timeout: float) -> HttpResponse:
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            raise HttpProtocolError("the connection closed before the request")
        waiter: asyncio.Future[HttpResponse] = self._loop.create_future()
        self._waiter = waiter
        self._activity = self._loop.time()
        self._deadline, self._read_timeout = deadline, read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self.exchanges += 1
        self.answered = False
        self.transport.write(data)
        self._timer = self._loop.call_at(min(deadline, self._activity + read_timeout), self._check_time)
        try:
            return await waiter
        finally:
            self._timer.cancel()
            self._waiter = self._timer = None

    def _check_time(self) -> None:
        """The read or total timeout may have run out; data arrived meanwhile moves the read one on."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        now = self._loop.time()
        if now >= self._deadline:
            self._fail(HttpTimeout("total"))
        elif now >= self._activity + self._read_timeout:
            self._fail(HttpTimeout("read"))
        else:
            self._timer = self._loop.call_at(
                min(self._deadline, self._activity + self._read_timeout), self._check_time
            )


class HttpPool:
    """Keep-alive connections to one origin (``scheme://host[:port]``) and the calls over them."""

    def __init__(
        self,
        origin: str,
        *,
        max_connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        total_timeout_s: float,
        headers: Sequence[tuple[str, str]] = (),
        keepalive_s: float = 30.0,
        ca_file: str | None = None,
    ) -> None:
        self.origin = origin
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {parts.scheme}://{parts.hostname}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._ssl: ssl.SSLContext | None = None
        if self._tls:
            self._ssl = ssl.create_default_context(cafile=ca_file or certifi.where())
        host = f"[{self._host}]" if ":" in self._host else self._host
        default_port = 443 if self._tls else 80
        authority = host if self._port == default_port else f"{host}:{self._port}"
        fixed = [("Host", authority), ("User-Agent", "mpp-notification"), *headers]
        for name, value in fixed:
            _check_header(name, value)
        self._head_tail = "".join(f"{name}: {value}\r\n" for name, value in fixed)
        self._max = max_connections
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._total_timeout = total_timeout_s
        self._keepalive = keepalive_s
        self._idle: deque[_Connection] = deque()
        self._open = 0
        """Connections open or being opened."""
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @staticmethod
    def target(url: str) -> tuple[str, str]:
        """``(origin, request target)`` of an absolute URL, the path percent-encoded where needed."""
        parts = urlsplit(url)
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
        return f"{parts.scheme}://{parts.netloc}", path + (f"?{parts.query}" if parts.query else "")

    async def post_json(
        self,
        target: str,
        body: bytes,
        headers: Sequence[tuple[str, str]] = (),
        *,
        total_timeout_s: float | None = None,
        resend_stale: bool = False,
    ) -> HttpResponse:
        head = f"POST {target} HTTP/1.1\r\n{self._head_tail}"
        for name, value in headers:
            _check_header(name, value)
            head += f"{name}: {value}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return await self.request(
            head.encode("latin-1") + body, total_timeout_s=total_timeout_s, resend_stale=resend_stale
        )

    async def request(
        self, data: bytes, *, total_timeout_s: float | None = None, resend_stale: bool = False
    ) -> HttpResponse:
        """Sends ``data`` (a whole HTTP/1.1 request) and returns the answer; ``total_timeout_s``
        replaces the pool's total timeout for this call.

        ``resend_stale``: a kept-alive connection the server closed just as the request was written
        (its idle timeout) fails before any byte of an answer; the request is then sent once more on
        another connection. Only for requests the server deduplicates (an ``Idempotency-Key``): the
        server may have received the first copy."""
        loop = asyncio.get_running_loop()
        total = self._total_timeout if total_timeout_s is None else total_timeout_s
        deadline = loop.time() + total
        attempts = 2 if resend_stale else 1
        while True:
            attempts -= 1
            connection = await self._acquire(loop, deadline)
            try:
                response = await connection.exchange(data, deadline, self._read_timeout)
            except HttpProtocolError:
                connection.close()
                self._release(connection, loop)
                if attempts > 0 and connection.exchanges > 1 and not connection.answered:
                    continue
                raise
            except BaseException:
                connection.close()
                self._release(connection, loop)
                raise
            self._release(connection, loop)
            return response

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        while True:
            if self._closed:
                raise HttpConnectError("the client is closed")
            now = loop.time()
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed and now - connection.idle_since < self._keepalive:
                    return connection
                connection.close()
                self._open -= 1
            if self._open < self._max:
                self._open += 1
                try:
                    return await self._connect(loop, deadline)
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken but leaving: the freed connection goes to the next call
                else:
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                if isinstance(exc, TimeoutError):
                    raise HttpTimeout("pool") from None
                raise

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        timeout = max(0.0, min(self._connect_timeout, deadline - loop.time()))
        try:
            async with asyncio.timeout(timeout):
                _transport, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise HttpTimeout("connect") from None
        except ssl.SSLCertVerificationError as exc:
            raise TlsCertificateError(exc.verify_message or "certificate verify failed") from None
        except (OSError, ssl.SSLError) as exc:
            raise HttpConnectError(type(exc).__name__) from None
        return connection

    def _release(self, connection: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        if connection.reusable and not connection.closed and not self._closed:
            connection.idle_since = loop.time()
            self._idle.append(connection)
        else:
            connection.close()
            self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
            self._open -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
