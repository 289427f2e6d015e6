"""The HTTP edge every service shares: one error shape, request limits, correlation ids, spans, metrics.

Every error response has the shape ``{"error": {"code": str, "message": str, "details": ...}}`` with the
message in Bahasa Indonesia.
"""

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from http import HTTPStatus
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from mpp.kit.auth import AuthError, ForbiddenError, TokenVerifier
from mpp.kit.db import is_transient, retrying_conflicts
from mpp.kit.observability import ServiceMetrics, context_from_traceparent, correlation_id, redact
from mpp.kit.settings import ServiceSettings

__all__ = [
    "DomainError",
    "FastJSONResponse",
    "add_inner_middleware",
    "create_http_app",
    "error_body",
    "error_response",
]

_logger = logging.getLogger(__name__)

CORRELATION_HEADER: Final = "X-Correlation-Id"
_UNMATCHED_ROUTE: Final = "unmatched"
_PROBE_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
EDGE_CONFLICT_ATTEMPTS: Final = 3
"""How many times the edge runs a request whose transaction PostgreSQL rolls back as a deadlock's victim or
for a serialization failure (:meth:`_EdgeMiddleware._run`); the last conflict is answered with 503."""
_CORRELATION_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")

_MESSAGE_INVALID_INPUT: Final = "Data yang dikirim tidak valid"
_MESSAGE_INVALID_JSON: Final = "Isi permintaan bukan JSON yang valid"
_MESSAGE_TOO_LARGE: Final = "Ukuran data yang dikirim melebihi batas {limit} byte"
_MESSAGE_INTERNAL: Final = "Terjadi kesalahan pada sistem. Silakan coba lagi nanti."
_MESSAGE_UNAVAILABLE: Final = "Layanan sedang tidak tersedia sementara. Silakan coba lagi sebentar lagi."
_MESSAGE_INVALID_CHARACTER: Final = "Data yang dikirim mengandung karakter yang tidak diizinkan"
# PostgreSQL cannot store these characters in text (character_not_in_repertoire, untranslatable_character).
_UNSTORABLE_TEXT_SQLSTATES: Final = frozenset({"22021", "22P05"})
_STATUS_MESSAGES: Final[dict[int, str]] = {
    400: "Permintaan tidak valid",
    401: "Token tidak valid atau sudah kedaluwarsa",
    403: "Anda tidak berwenang untuk tindakan ini",
    404: "Alamat yang diminta tidak ditemukan",
    405: "Metode tidak diizinkan untuk alamat ini",
    406: "Format tanggapan yang diminta tidak didukung",
    409: "Permintaan bertentangan dengan keadaan data saat ini",
    413: "Ukuran data yang dikirim melebihi batas",
    415: "Jenis konten tidak didukung",
    429: "Terlalu banyak permintaan. Silakan coba lagi nanti.",
    503: "Layanan sedang tidak tersedia. Silakan coba lagi nanti.",
}
_DEFAULT_STATUS_MESSAGE: Final = "Permintaan tidak dapat diproses"
# Pydantic's messages are English; the common ones get an Indonesian text, the rest pass through.
_PROBLEM_MESSAGES: Final[dict[str, str]] = {
    "missing": "Wajib diisi",
    "string_type": "Harus berupa teks",
    "string_too_short": "Terlalu pendek",
    "string_too_long": "Terlalu panjang",
    "string_pattern_mismatch": "Formatnya tidak sesuai",
    "int_type": "Harus berupa bilangan bulat",
    "int_parsing": "Harus berupa bilangan bulat",
    "float_type": "Harus berupa angka",
    "float_parsing": "Harus berupa angka",
    "bool_type": "Harus berupa true atau false",
    "bool_parsing": "Harus berupa true atau false",
    "date_type": "Harus berupa tanggal (YYYY-MM-DD)",
    "date_parsing": "Harus berupa tanggal (YYYY-MM-DD)",
    "date_from_datetime_parsing": "Harus berupa tanggal (YYYY-MM-DD)",
    "datetime_type": "Harus berupa tanggal dan waktu ISO 8601",
    "datetime_parsing": "Harus berupa tanggal dan waktu ISO 8601",
    "datetime_from_date_parsing": "Harus berupa tanggal dan waktu ISO 8601",
    "uuid_type": "Harus berupa UUID",
    "uuid_parsing": "Harus berupa UUID",
    "enum": "Nilai tidak termasuk pilihan yang diizinkan",
    "literal_error": "Nilai tidak termasuk pilihan yang diizinkan",
    "list_type": "Harus berupa daftar",
    "dict_type": "Harus berupa objek",
    "model_type": "Harus berupa objek",
    "model_attributes_type": "Harus berupa objek",
    "extra_forbidden": "Kolom ini tidak dikenal",
    "greater_than": "Nilainya terlalu kecil",
    "greater_than_equal": "Nilainya terlalu kecil",
    "less_than": "Nilainya terlalu besar",
    "less_than_equal": "Nilainya terlalu besar",
    "too_short": "Jumlah isian terlalu sedikit",
    "too_long": "Jumlah isian terlalu banyak",
}


class DomainError(Exception):
    """Base of the errors a service raises on purpose; the HTTP edge maps them to ``status_code``.

    Subclasses set ``status_code``, ``code`` and an Indonesian ``message``, e.g. a 409 conflict with
    ``details={"state": ..., "allowed_actions": [...]}``. Messages never reveal data the caller may not see.
    """

    status_code: int = 400
    code: str = "domain_error"
    message: str = _DEFAULT_STATUS_MESSAGE

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        if message is not None:
            self.message = message
        self.details = details
        super().__init__(self.message)


class FastJSONResponse(JSONResponse):
    """A JSON response rendered by orjson: for hot routes that return a JSON-ready dict themselves (the
    same bytes as ``JSONResponse`` for such content, with no validation pass and no ``json.dumps``)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _error_bytes(code: str, message: str, details: Any = None) -> bytes:
    return orjson.dumps(error_body(code, message, details))


def _error_response(
    status_code: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status_code, headers=headers)


def _status_code_name(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def _field_name(loc: tuple[int | str, ...] | list[int | str]) -> str:
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def _problem(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind == "value_error":
        # A validator's own message (Indonesian by convention), without pydantic's English prefix.
        message = str(error.get("msg", "")).removeprefix("Value error, ")
    else:
        message = _PROBLEM_MESSAGES.get(kind) or str(error.get("msg", ""))
    return redact(message)


# --------------------------------------------------------------------------------------------------
# Exception handlers (async, so Starlette does not hop to a thread)
# --------------------------------------------------------------------------------------------------


async def _handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    json_errors = [error for error in errors if error.get("type") == "json_invalid"]
    if json_errors:
        error = json_errors[0]
        loc = error.get("loc", ())
        position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        problem = "JSON tidak valid" + (f" pada posisi {position}" if position is not None else "")
        return _error_response(
            400, "invalid_json", _MESSAGE_INVALID_JSON, {"problems": [{"field": "body", "problem": problem}]}
        )
    problems = [
        {"field": _field_name(error.get("loc", ())), "problem": _problem(error), "type": error.get("type")}
        for error in errors
    ]
    return _error_response(422, "validation_error", _MESSAGE_INVALID_INPUT, {"problems": problems})


def error_response(exc: AuthError | ForbiddenError | DomainError) -> JSONResponse:
    """The answer to an error a route raises on purpose: 401 with a Bearer challenge, 403, or the domain
    error's own status. The exception handlers and routes served outside FastAPI both answer with it."""
    if isinstance(exc, AuthError):
        return _error_response(401, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, ForbiddenError):
        return _error_response(403, exc.code, exc.message)
    return _error_response(exc.status_code, exc.code, exc.message, exc.details)


async def _handle_auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return error_response(exc)


async def _handle_forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ForbiddenError)
    return error_response(exc)


async def _handle_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(exc)


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # The detail is English framework text ("There was an error parsing the body"): the response carries
    # the Indonesian text for the status instead. Services raise DomainError for messages of their own.
    status_code = exc.status_code
    message = _STATUS_MESSAGES.get(status_code, _DEFAULT_STATUS_MESSAGE)
    headers = dict(exc.headers) if exc.headers else None
    return _error_response(status_code, _status_code_name(status_code), message, headers=headers)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    # Reached only when an error escapes the edge middleware itself.
    _logger.error("http.request.failed", exc_info=exc)
    return _error_response(500, "internal_error", _MESSAGE_INTERNAL, {"correlation_id": correlation_id.get()})


# --------------------------------------------------------------------------------------------------
# Edge middleware
# --------------------------------------------------------------------------------------------------


class _BodyTooLargeError(Exception):
    pass


class _Exchange:
    """The state of one request as it passes the edge middleware."""

    __slots__ = (
        "cid_header",
        "downstream",
        "max_bytes",
        "read",
        "received",
        "replayed",
        "started",
        "status",
        "too_large",
        "upstream",
    )

    def __init__(self, receive: Receive, send: Send, cid_header: tuple[bytes, bytes], max_bytes: int) -> None:
        self.upstream = receive
        self.downstream = send
        self.cid_header = cid_header
        self.max_bytes = max_bytes
        self.received = 0
        self.read: list[Message] = []
        """The body's messages as the application read them, for a rerun (:meth:`rewind`)."""
        self.replayed = 0
        self.too_large = False
        self.started = False
        # Stays 500 if the application returns without answering.
        self.status = 500

    async def receive(self) -> Message:
        if self.replayed < len(self.read):
            self.replayed += 1
            return self.read[self.replayed - 1]
        message = await self.upstream()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                self.too_large = True
                raise _BodyTooLargeError
            if not self.read or self.read[-1].get("more_body", False):  # up to the body's last part
                self.read.append(message)
                self.replayed += 1
        return message

    def rewind(self) -> None:
        """The application runs the request again: it reads the same body from the start."""
        self.replayed = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if self.too_large:
                return
            self.started = True
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), self.cid_header]
        elif self.too_large and not self.started:
            # The application's answer to the aborted read is replaced by the 413.
            return
        await self.downstream(message)

    async def respond(
        self,
        status: int,
        body: bytes,
        *,
        close: bool = False,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.started = True
        self.status = status
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            self.cid_header,
            *(headers or []),
        ]
        if close:
            # The client may still be sending the rejected body.
            headers.append((b"connection", b"close"))
        await self.downstream({"type": "http.response.start", "status": status, "headers": headers})
        await self.downstream({"type": "http.response.body", "body": body})


def _read_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int | None, str | None]:
    cid: str | None = None
    content_length: int | None = None
    traceparent: str | None = None
    for name, value in headers:
        if name == b"x-correlation-id":
            cid = value.decode("latin-1")
        elif name == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                content_length = None
        elif name == b"traceparent":
            traceparent = value.decode("latin-1")
    return cid, content_length, traceparent


class _EdgeMiddleware:
    """Pure ASGI: body limit, correlation id, server span, metrics and the 500 fallback in one layer."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.tracer = trace.get_tracer("mpp.kit.http")
        self._too_large_body = _error_bytes(
            "payload_too_large", _MESSAGE_TOO_LARGE.format(limit=max_body_bytes)
        )
        self._invalid_character_body = _error_bytes("invalid_character", _MESSAGE_INVALID_CHARACTER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        cid, content_length, traceparent = _read_headers(scope["headers"])
        # The id is echoed and logged: accept only a plain token that carries no personal data.
        if cid is None or _CORRELATION_ID_RE.fullmatch(cid) is None or redact(cid) != cid:
            cid = str(uuid.uuid4())
        exchange = _Exchange(receive, send, (b"x-correlation-id", cid.encode("latin-1")), self.max_body_bytes)
        method: str = scope["method"]
        span_cm: AbstractContextManager[Span | None] = (
            nullcontext()
            if scope["path"] in _PROBE_PATHS
            else self.tracer.start_as_current_span(
                f"HTTP {method}",
                context=context_from_traceparent(traceparent) if traceparent else None,
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "mpp.correlation_id": cid},
                record_exception=False,
                set_status_on_exception=False,
            )
        )
        token = correlation_id.set(cid)
        try:
            with span_cm as span:
                try:
                    await self._handle(scope, exchange, content_length, cid)
                finally:
                    route = _route_template(scope)
                    status = exchange.status
                    self.metrics.observe_http(method, route, status, time.perf_counter() - started_at)
                    if span is not None and span.is_recording():
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(StatusCode.ERROR)
        finally:
            correlation_id.reset(token)

    async def _handle(self, scope: Scope, exchange: _Exchange, content_length: int | None, cid: str) -> None:
        if content_length is not None and content_length > self.max_body_bytes:
            exchange.too_large = True
        elif _has_nul(scope):
            # No path or query parameter holds a NUL character, and PostgreSQL cannot store one.
            await exchange.respond(400, self._invalid_character_body, close=True)
        else:
            try:
                await self._run(scope, exchange)
            except _BodyTooLargeError:
                pass
            except Exception as exc:
                if exchange.too_large:
                    pass  # the application turned the aborted read into an error of its own
                elif exchange.started:
                    _logger.error("http.response.failed", exc_info=exc)
                    raise
                elif _is_unstorable_text(exc):
                    # Input text (a JSON string, say) the database refuses to store: the client's error.
                    _logger.info("http.request.unstorable_text", extra={"route": _route_template(scope)})
                    await exchange.respond(422, self._invalid_character_body)
                elif is_transient(exc):
                    # The database or broker is briefly unavailable: the client may retry.
                    _logger.warning(
                        "http.request.unavailable",
                        extra={"route": _route_template(scope), "error": type(exc).__name__},
                    )
                    body = _error_bytes("unavailable", _MESSAGE_UNAVAILABLE, {"correlation_id": cid})
                    await exchange.respond(503, body, headers=[(b"retry-after", b"1")])
                else:
                    _logger.error(
                        "http.request.failed",
                        exc_info=exc,
                        extra={"method": scope["method"], "route": _route_template(scope)},
                    )
                    body = _error_bytes("internal_error", _MESSAGE_INTERNAL, {"correlation_id": cid})
                    await exchange.respond(500, body)
        if exchange.too_large and not exchange.started:
            await exchange.respond(413, self._too_large_body, close=True)

    async def _run(self, scope: Scope, exchange: _Exchange) -> None:
        """Run the application; run the whole request again (up to :data:`EDGE_CONFLICT_ATTEMPTS` times,
        its body replayed) when PostgreSQL rolled its transaction back as a deadlock's victim or for a
        serialization failure before anything was answered. A client would do the same on the 503 it
        would get otherwise; every service's commands write their events through the outbox, in the
        transaction that was rolled back. Commands that retry their own transactions (the queue's) come
        here only once those retries are spent."""

        async def attempt() -> None:
            run = dict(scope)  # the router writes the route and its parameters into the scope
            try:
                await self.app(run, exchange.receive, exchange.send)
            finally:
                scope.update(run)
                exchange.rewind()

        await retrying_conflicts(
            attempt,
            attempts=EDGE_CONFLICT_ATTEMPTS,
            what=f"HTTP {scope['method']}",
            rerunnable=lambda: not exchange.started and not exchange.too_large,
        )


def _has_nul(scope: Scope) -> bool:
    """Whether the path or the query string carries a NUL character, raw or percent-encoded."""
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


def _is_unstorable_text(error: BaseException) -> bool:
    if isinstance(error, DBAPIError):
        code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    else:  # asyncpg's own error, from a statement sent straight to the driver
        code = getattr(error, "sqlstate", None)
    return code is not None and str(code) in _UNSTORABLE_TEXT_SQLSTATES


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else _UNMATCHED_ROUTE


def add_inner_middleware(app: FastAPI, middleware: Callable[..., ASGIApp], **options: Any) -> None:
    """Wrap the application's router (and its exception handling) in ``middleware``, inside the edge
    middleware: requests it answers itself still get the edge's correlation id, span, metrics, body limit
    and error fallback. ``app.add_middleware`` would place it outside the edge instead."""
    if app.middleware_stack is not None:
        raise RuntimeError("add_inner_middleware: the application has started already")
    app.user_middleware.append(Middleware(middleware, **options))


# --------------------------------------------------------------------------------------------------
# Application factory
# --------------------------------------------------------------------------------------------------


def create_http_app(
    *,
    settings: ServiceSettings,
    metrics: ServiceMetrics,
    title: str,
    version: str,
    lifespan: Lifespan[FastAPI] | None = None,
    readiness: Callable[[], Awaitable[dict[str, bool]]] | None = None,
) -> FastAPI:
    """A FastAPI application with the platform's error shape, edge middleware and probe routes.

    ``readiness`` returns named checks (``{"database": True, "kafka": False}``); ``/readyz`` answers 503
    unless all are true. Routes are added by the caller (``app.include_router(...)``).
    """
    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        # The edge middleware owns spans; FastAPI's own telemetry would duplicate them and could log
        # request input (personal data) unredacted.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.token_verifier = TokenVerifier(settings)

    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(AuthError, _handle_auth_error)
    app.add_exception_handler(ForbiddenError, _handle_forbidden)
    app.add_exception_handler(DomainError, _handle_domain_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(Exception, _handle_unexpected)
    app.add_middleware(_EdgeMiddleware, metrics=metrics, max_body_bytes=settings.http_max_body_bytes)

    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def readyz() -> JSONResponse:
        checks: dict[str, bool] = {}
        ready = True
        if readiness is not None:
            try:
                checks = await readiness()
                ready = all(checks.values())
            except Exception:
                _logger.exception("http.readiness.failed")
                ready = False
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    async def metrics_endpoint() -> Response:
        payload, content_type = metrics.render()
        return Response(content=payload, media_type=content_type)

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return app
