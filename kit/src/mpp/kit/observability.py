"""Logging, tracing and metrics shared by every service.

Personal data (NIK, phone numbers, e-mail addresses) must never reach a log line or a metric label:
:func:`configure_logging` installs a filter that runs :func:`redact` over every record, and
:class:`ServiceMetrics` only has labels with small, fixed value sets.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import orjson
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import OTEL_TRACES_SAMPLER
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "DeadLetterReason",
    "ServiceMetrics",
    "SpanReadingTracerProvider",
    "bind_correlation_id",
    "configure_logging",
    "context_from_traceparent",
    "correlation_id",
    "inject_traceparent",
    "redact",
    "setup_tracing",
    "shutdown_tracing",
]

correlation_id: ContextVar[str | None] = ContextVar("mpp_correlation_id", default=None)


@contextmanager
def bind_correlation_id(value: str | None) -> Iterator[str | None]:
    """Bind ``value`` as the current correlation id for the duration of the block."""
    token = correlation_id.set(value)
    try:
        yield value
    finally:
        correlation_id.reset(token)


# --------------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------------

_EMAIL_RE: Final = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)
# One pass for both digit patterns. A NIK (or KK number) is any 16-digit run not touching other digits;
# Indonesian phone numbers start with +62 / 62 / 08 and may be grouped by single spaces or dashes (their
# digit count, 9-15, is checked in the replacement function).
# (The leading lookahead lets the regex engine skip quickly over text without digits.)
_DIGITS_RE: Final = re.compile(
    r"(?=[+\d])(?<!\d)(?:(?P<nik>\d{16})(?!\d)|(?P<phone>(?:\+62|62|08)(?:[ -]?\d)+))"
)
_DIGIT_RE: Final = re.compile(r"\d")
_PHONE_MIN_DIGITS: Final = 9
_PHONE_MAX_DIGITS: Final = 15
_SMALLEST_MASKED_INT: Final = 10**8
_MAX_DEPTH: Final = 3


def _mask_email(match: re.Match[str]) -> str:
    return f"{match.group(1)}***@{match.group(2)}"


def _mask_digits(match: re.Match[str]) -> str:
    nik = match.group("nik")
    if nik is not None:
        return "************" + nik[-4:]
    phone = match.group("phone")
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not _PHONE_MIN_DIGITS <= len(digits) <= _PHONE_MAX_DIGITS:
        return phone
    return "*" * (len(digits) - 3) + digits[-3:]


def redact(text: str) -> str:
    """Mask personal data in free text.

    * e-mail addresses keep their first character and the domain: ``a***@example.org``;
    * 16-digit runs (NIK, KK) keep their last 4 digits: ``************1234``;
    * Indonesian phone numbers (``+62``, ``62`` or ``08`` prefix, 9-15 digits, optional spaces or
      dashes) keep their last 3 digits: ``*********890``.

    Accepted false positives: any other 16-digit number (card or account numbers) and any 9-15 digit
    number starting with ``62`` or ``08`` (amounts, fractional parts) are masked as well; masking too
    much is cheaper than leaking personal data.
    """
    if "@" in text:
        text = _EMAIL_RE.sub(_mask_email, text)
    if _DIGIT_RE.search(text) is None:
        return text
    return _DIGITS_RE.sub(_mask_digits, text)


def _redact_value(value: Any, depth: int = 0) -> Any:
    """Redact a log ``extra`` value; anything that is not a plain scalar or container becomes text."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if value < _SMALLEST_MASKED_INT:
            return value
        # An id-sized integer (a NIK or phone number stored as a number) is masked as text.
        text = str(value)
        masked = redact(text)
        return value if masked == text else masked
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return {str(key): _redact_value(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_redact_value(item, depth + 1) for item in value]
    return redact(str(value))


# --------------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------------

_RESERVED_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "correlation_id",
    "trace_id",
    "span_id",
    "service",
}
_REDACTED_MARK: Final = "_mpp_redacted"


def _extra_items(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    for key, value in record.__dict__.items():
        if key not in _RESERVED_ATTRS and not key.startswith("_"):
            yield key, value


class _ContextFilter(logging.Filter):
    """Adds service, correlation and trace ids; redacts the message, its args and ``extra`` values."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        # One record may pass several handlers: redact it once.
        if getattr(record, _REDACTED_MARK, False):
            return True
        # Formatting first means an int NIK passed as %d is caught as well.
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        for key, value in list(_extra_items(record)):
            setattr(record, key, _redact_value(value))
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.service = self.service
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = correlation_id.get()
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        else:
            record.trace_id = None
            record.span_id = None
        setattr(record, _REDACTED_MARK, True)
        return True


class _RedactingFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:  # noqa: N802 (stdlib name)
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (stdlib name)
        return redact(super().formatStack(stack_info))


def _json_default(value: Any) -> str:
    return redact(str(value))


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line: timestamp, level, logger, event, service, ids and ``extra`` keys."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "service": getattr(record, "service", None),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None:
            document["trace_id"] = trace_id
            document["span_id"] = getattr(record, "span_id", None)
        for key, value in _extra_items(record):
            document.setdefault(key, value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = redact(record.exc_text)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(document, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


class TextFormatter(_RedactingFormatter):
    """Human-readable lines for local development: ``time LEVEL logger event key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [f"{key}={value}" for key, value in _extra_items(record)]
        cid = getattr(record, "correlation_id", None)
        if cid is not None:
            context.append(f"correlation_id={cid}")
        if not context:
            return line
        head, sep, tail = line.partition("\n")
        return f"{head} {' '.join(context)}{sep}{tail}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr`` (which test runners and supervisors may swap).

    Its type also lets :func:`configure_logging` find and replace the handler it installed.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(service: str, level: str, json: bool) -> None:
    """Send all logging to stderr, redacted, as JSON lines (or plain text when ``json`` is false).

    Idempotent: a second call replaces the handler installed by the first.
    """
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, _StderrHandler):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Route the server's own loggers through the redacting handler (access logs carry query strings).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True


# --------------------------------------------------------------------------------------------------
# Tracing
# --------------------------------------------------------------------------------------------------

_tracing_lock = threading.Lock()
_tracer_provider: TracerProvider | None = None
_W3C: Final = TraceContextTextMapPropagator()
_logger = logging.getLogger(__name__)


class _Recording(Sampler):
    """Drops every span until :attr:`on`, then asks ``delegate``. A dropped span still has its ids (the
    current span of logs, the ``traceparent`` of messages), but records no attributes or events and
    reaches no span processor."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate
        self.on = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if self.on:
            return self.delegate.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        parent = trace.get_current_span(parent_context).get_span_context()
        return SamplingResult(Decision.DROP, trace_state=parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        return f"Recording({'on' if self.on else 'off'}, {self.delegate.get_description()})"


class SpanReadingTracerProvider(TracerProvider):
    """A tracer provider that records spans only once a span processor is there to read them (an
    exporter, a test's in-memory processor). Without one, recording a span's attributes and events is
    work no one reads: about 5% of a busy HTTP service's CPU.

    Once recording, every span is recorded, whatever its parent's flag says (the parent's service may
    have no exporter, which marks its spans not sampled), unless ``OTEL_TRACES_SAMPLER`` names another
    sampler."""

    def __init__(self, resource: Resource) -> None:
        configured = bool(os.environ.get(OTEL_TRACES_SAMPLER))
        # Without a sampler, the provider takes the one OTEL_TRACES_SAMPLER names.
        super().__init__(resource=resource, sampler=None if configured else ALWAYS_ON)
        self._recording = _Recording(self.sampler)
        self.sampler = self._recording

    @property
    def recording(self) -> bool:
        return self._recording.on

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self._recording.on = True


def setup_tracing(service: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install the process-wide tracer provider (once; later calls return the same provider).

    With ``otlp_endpoint`` (the OTLP/HTTP base address, as in ``OTEL_EXPORTER_OTLP_ENDPOINT``) spans are
    recorded and exported in batches; without it spans only carry their ids, for logs and propagation
    (see :class:`SpanReadingTracerProvider`).
    """
    global _tracer_provider  # noqa: PLW0603 (OpenTelemetry's provider is process-wide by design)
    with _tracing_lock:
        if _tracer_provider is not None:
            return _tracer_provider
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            _tracer_provider = current
            return current
        provider = SpanReadingTracerProvider(Resource.create({SERVICE_NAME: service}))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = otlp_endpoint.rstrip("/")
            if not endpoint.endswith("/v1/traces"):
                endpoint += "/v1/traces"
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
        _tracer_provider = provider
        _logger.info("observability.tracing.configured", extra={"exporting": bool(otlp_endpoint)})
        return provider


def shutdown_tracing() -> None:
    """Flush and stop span export. The global provider cannot be replaced afterwards (OpenTelemetry)."""
    with _tracing_lock:
        if _tracer_provider is not None:
            _tracer_provider.shutdown()


def inject_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, for a Kafka header; None without a valid span."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(tp: str | None) -> Context:
    """An OpenTelemetry context whose span is the remote parent named by ``tp``.

    Without a (valid) traceparent the context is empty, so a consumer span started in it is a new root
    rather than a child of whatever happens to be current.
    """
    if not tp:
        return Context()
    return _W3C.extract({"traceparent": tp}, context=Context())


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter topic (the only values of the ``reason`` label)."""

    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_type"
    HANDLER_ERROR = "handler_error"


_HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NAME_RE: Final = re.compile(r"[^a-zA-Z0-9_]")


class ServiceMetrics:
    """The standard Prometheus metrics of one service, in a registry of their own.

    Names are ``mpp_<service>_...`` in base units. Labels hold only bounded values (route templates,
    topics, consumer groups, partitions, fixed reasons): never NIK, ticket or application ids.
    """

    def __init__(self, service: str, *, process_metrics: bool = True) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        prefix = f"mpp_{_NAME_RE.sub('_', service)}_"
        registry = self.registry
        self.http_requests_total = Counter(
            prefix + "http_requests_total",
            "HTTP requests handled, by route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_request_duration_seconds = Histogram(
            prefix + "http_request_duration_seconds",
            "Time to handle an HTTP request, by route template.",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=registry,
        )
        self.events_published_total = Counter(
            prefix + "events_published_total",
            "Events acknowledged by the broker, by topic.",
            ["topic"],
            registry=registry,
        )
        self.events_consumed_total = Counter(
            prefix + "events_consumed_total",
            "Events processed, by consumer group and topic.",
            ["group", "topic"],
            registry=registry,
        )
        self.events_duplicate_total = Counter(
            prefix + "events_duplicate_total",
            "Events skipped because the inbox had already recorded them.",
            ["group"],
            registry=registry,
        )
        self.dead_letters_total = Counter(
            prefix + "dead_letters_total",
            "Events sent to the dead-letter topic, by reason (malformed, unknown_type, handler_error).",
            ["group", "topic", "reason"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            prefix + "consumer_lag",
            "Messages between the committed offset and the end of the partition.",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.consumer_paused = Gauge(
            prefix + "consumer_paused",
            "1 while the consumer group is paused (e.g. the database is unavailable).",
            ["group"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            prefix + "outbox_backlog",
            "Outbox rows not yet published.",
            registry=registry,
        )
        self.outbox_relay_batch_seconds = Histogram(
            prefix + "outbox_relay_batch_seconds",
            "Time to publish and mark one outbox batch.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.consumer_batch_seconds = Histogram(
            prefix + "consumer_batch_seconds",
            "Time to process and commit one consumed batch.",
            ["group"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.event_loop_lag_seconds = Histogram(
            prefix + "event_loop_lag_seconds",
            "How late the event loop ran a task due now: every request in flight waits as long.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        if process_metrics:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request; ``route`` must be a template (``/applications/{id}``), never a raw path."""
        if method not in _HTTP_METHODS:
            method = "OTHER"
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = (
                self.http_requests_total.labels(method=method, route=route, status=str(status)),
                self.http_request_duration_seconds.labels(method=method, route=route),
            )
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def record_dead_letter(self, group: str, topic: str, reason: DeadLetterReason | str) -> None:
        """Count one dead letter; ``reason`` must be one of :class:`DeadLetterReason`."""
        self.dead_letters_total.labels(group=group, topic=topic, reason=DeadLetterReason(reason).value).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
