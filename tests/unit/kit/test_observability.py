import functools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CONTENT_TYPE_LATEST

from mpp.kit.observability import (
    DeadLetterReason,
    ServiceMetrics,
    SpanReadingTracerProvider,
    bind_correlation_id,
    configure_logging,
    context_from_traceparent,
    correlation_id,
    inject_traceparent,
    redact,
    setup_tracing,
)

pytestmark = pytest.mark.unit

NIK = "3201014508900001"


@dataclass
class _Citizen:
    nik: str


class TestRedact:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (NIK, "************0001"),
            (f"nik={NIK}", "nik=************0001"),
            (f"NIK{NIK}.", "NIK************0001."),
            ("hp 081234567890", "hp *********890"),
            ("hp 0812-3456-7890", "hp *********890"),
            ("hp 0812 3456 789", "hp ********789"),
            ("wa +62 812 3456 7890", "wa **********890"),
            ("wa 6281234567890", "wa **********890"),
            ("kantor (+6221) 5551234", "kantor (+6221) 5551234"),
            ("email budi.santoso@example.co.id", "email b***@example.co.id"),
            ("contact 081234567890@example.org", "contact 0***@example.org"),
        ],
    )
    def test_personal_data_is_masked(self, text: str, expected: str) -> None:
        assert redact(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "licensing.application.submitted",
            "ticket A-017 called at counter 3",
            "took 0.0123 s for 2000 rows",
            "2024-08-12T10:00:00+07:00",
            "order 0812345",
            "123456789012345",
            "550e8400-e29b-41d4-a716-446655440000",
            "user@localhost",
        ],
    )
    def test_ordinary_text_is_unchanged(self, text: str) -> None:
        assert redact(text) == text

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # Any 16-digit number looks like a NIK (card and account numbers included).
            ("card 4111111111111111", "card ************1111"),
            # Amounts without separators that start like a phone number.
            ("fee 620000000", "fee ******000"),
        ],
    )
    def test_accepted_false_positives(self, text: str, expected: str) -> None:
        assert redact(text) == expected


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(err: str, logger: str = "mpp.") -> list[dict[str, Any]]:
    """The JSON lines written by ``logger`` (and its children) only: libraries may log too."""
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    return [line for line in lines if line["logger"].startswith(logger)]


class TestJsonLogging:
    def test_line_has_event_service_and_correlation_id(
        self, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging("licensing", "INFO", json=True)

        with bind_correlation_id("corr-123"):
            logging.getLogger("mpp.licensing.handlers").info(
                "licensing.application.submitted", extra={"agency": "dpmptsp", "copies": 2}
            )

        [line] = _json_lines(capsys.readouterr().err)
        assert line["event"] == "licensing.application.submitted"
        assert line["service"] == "licensing"
        assert line["correlation_id"] == "corr-123"
        assert line["level"] == "INFO"
        assert line["logger"] == "mpp.licensing.handlers"
        assert line["timestamp"].endswith("Z")
        assert (line["agency"], line["copies"]) == ("dpmptsp", 2)

    def test_personal_data_is_redacted_in_message_args_and_extras(
        self, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging("identity", "INFO", json=True)
        logger = logging.getLogger("mpp.identity")

        logger.warning(f"identity.lookup.failed nik={NIK}")
        logger.warning("identity.lookup.failed phone=%s", "081234567890")
        logger.warning(
            "identity.lookup.failed",
            extra={
                "email": "siti@example.org",
                "numbers": [int(NIK)],
                "form": {"applicant": {"phone": "0812-3456-7890"}},
                "citizen": _Citizen(nik=NIK),
            },
        )

        output = capsys.readouterr().err
        lines = _json_lines(output)
        assert lines[0]["event"] == "identity.lookup.failed nik=************0001"
        assert lines[1]["event"] == "identity.lookup.failed phone=*********890"
        assert lines[2]["email"] == "s***@example.org"
        assert lines[2]["form"] == {"applicant": {"phone": "*********890"}}
        assert lines[2]["citizen"] == "_Citizen(nik='************0001')"
        assert NIK not in output
        assert "081234567890" not in output

    def test_exception_text_is_redacted(
        self, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging("identity", "INFO", json=True)

        try:
            raise ValueError(f"duplicate NIK {NIK}")
        except ValueError:
            logging.getLogger("mpp.identity").exception("identity.citizen.register_failed")

        [line] = _json_lines(capsys.readouterr().err)
        assert "ValueError: duplicate NIK ************0001" in line["exception"]

    def test_line_has_trace_and_span_ids_inside_a_span(
        self, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        setup_tracing("test", None)
        configure_logging("queue", "INFO", json=True)

        with trace.get_tracer("test").start_as_current_span("work") as span:
            logging.getLogger("mpp.queue").info("queue.ticket.called")

        [line] = _json_lines(capsys.readouterr().err)
        assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
        assert line["span_id"] == format(span.get_span_context().span_id, "016x")

    def test_configuring_twice_does_not_duplicate_lines(
        self, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging("queue", "INFO", json=True)
        configure_logging("queue", "INFO", json=True)

        logging.getLogger("mpp.queue").info("queue.ticket.issued")

        assert len(_json_lines(capsys.readouterr().err)) == 1

    def test_level_filters_records(
        self, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging("queue", "warning", json=True)

        logging.getLogger("mpp.queue").info("queue.ticket.issued")

        assert capsys.readouterr().err == ""


class TestTextLogging:
    def test_line_has_event_extras_and_correlation_id_redacted(
        self, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging("notification", "INFO", json=False)

        with bind_correlation_id("corr-9"):
            logging.getLogger("mpp.notification").info(
                "notification.sms.sent", extra={"to": "+6281234567890"}
            )

        line = capsys.readouterr().err.strip()
        assert "INFO" in line
        assert "notification.sms.sent" in line
        assert "to=**********890" in line
        assert "correlation_id=corr-9" in line


class TestCorrelationId:
    def test_binding_is_scoped_to_the_block(self) -> None:
        with bind_correlation_id("outer"), bind_correlation_id("inner"):
            assert correlation_id.get() == "inner"

        assert correlation_id.get() is None


def _parent_span_id(span: trace.Span) -> int | None:
    assert isinstance(span, ReadableSpan)
    return span.parent.span_id if span.parent is not None else None


@functools.cache
def _recorded() -> InMemorySpanExporter:
    """The process-wide provider's spans, recorded from the first call on."""
    exporter = InMemorySpanExporter()
    setup_tracing("test", None).add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


class TestSpanRecording:
    """Spans are recorded once a span processor reads them; until then they only carry their ids."""

    def test_without_a_processor_spans_carry_ids_for_logs_and_messages_but_record_nothing(
        self, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        provider = SpanReadingTracerProvider(Resource.create({}))
        tracer = provider.get_tracer("test")
        configure_logging("queue", "INFO", json=True)
        with tracer.start_as_current_span("publish", attributes={"a": 1}) as span:
            traceparent = inject_traceparent()
            logging.getLogger("mpp.queue").info("queue.ticket.called")
        context = span.get_span_context()
        assert not span.is_recording() and not provider.recording
        assert context.is_valid
        assert traceparent is not None
        _version, trace_id, span_id, flags = traceparent.split("-")
        assert (trace_id, span_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
        assert int(flags, 16) & 0x01 == 0  # not sampled
        [line] = _json_lines(capsys.readouterr().err)
        assert line["trace_id"] == format(context.trace_id, "032x")

        with tracer.start_as_current_span("consume", context=context_from_traceparent(traceparent)) as child:
            pass
        assert child.get_span_context().trace_id == context.trace_id

    def test_with_a_processor_every_span_is_recorded_whatever_its_parents_flag(self) -> None:
        provider = SpanReadingTracerProvider(Resource.create({}))
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        # The producing service records nothing (no exporter): its traceparent says "not sampled".
        unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
        with tracer.start_as_current_span("consume", context=context_from_traceparent(unsampled)) as span:
            span.set_attribute("messaging.batch.message_count", 3)
        assert provider.recording
        [finished] = exporter.get_finished_spans()
        assert finished.name == "consume"
        assert finished.attributes == {"messaging.batch.message_count": 3}
        assert finished.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
        assert finished.parent is not None and finished.parent.span_id == 0xB7AD6B7169203331

    def test_a_configured_sampler_decides_once_recording(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
        provider = SpanReadingTracerProvider(Resource.create({}))
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("test").start_as_current_span("work") as span:
            pass
        assert not span.is_recording()
        assert exporter.get_finished_spans() == ()


class TestTracePropagation:
    @pytest.fixture(autouse=True)
    def _recording(self) -> None:
        _recorded()

    def test_no_traceparent_outside_a_span(self) -> None:
        setup_tracing("test", None)

        assert inject_traceparent() is None

    def test_consumer_span_is_a_child_of_the_producer_span(self) -> None:
        tracer = trace.get_tracer("test")
        setup_tracing("test", None)
        with tracer.start_as_current_span("publish") as producer:
            traceparent = inject_traceparent()

        with tracer.start_as_current_span(
            "consume", context=context_from_traceparent(traceparent)
        ) as consumer:
            pass

        assert traceparent is not None
        assert consumer.get_span_context().trace_id == producer.get_span_context().trace_id
        assert _parent_span_id(consumer) == producer.get_span_context().span_id

    def test_missing_traceparent_starts_a_new_trace(self) -> None:
        tracer = trace.get_tracer("test")
        setup_tracing("test", None)

        with (
            tracer.start_as_current_span("outer") as outer,
            tracer.start_as_current_span("consume", context=context_from_traceparent(None)) as consumer,
        ):
            pass

        assert _parent_span_id(consumer) is None
        assert consumer.get_span_context().trace_id != outer.get_span_context().trace_id

    def test_setup_is_done_once(self) -> None:
        assert setup_tracing("test", None) is setup_tracing("other", "http://collector:4318")


class TestServiceMetrics:
    def test_names_carry_the_service_prefix_and_base_units(self) -> None:
        metrics = ServiceMetrics("licensing", process_metrics=False)
        metrics.events_published_total.labels(topic="licensing.application").inc()
        metrics.consumer_lag.labels(group="reporting", topic="licensing.application", partition="0").set(7)
        metrics.outbox_backlog.set(3)
        metrics.observe_http("GET", "/applications/{application_id}", 200, 0.004)

        payload, content_type = metrics.render()

        text = payload.decode()
        assert content_type == CONTENT_TYPE_LATEST
        assert 'mpp_licensing_events_published_total{topic="licensing.application"} 1.0' in text
        assert (
            'mpp_licensing_consumer_lag{group="reporting",partition="0",topic="licensing.application"} 7.0'
            in text
        )
        assert "mpp_licensing_outbox_backlog 3.0" in text
        assert "mpp_licensing_http_request_duration_seconds_bucket" in text

    def test_each_instance_has_its_own_registry(self) -> None:
        first = ServiceMetrics("queue")
        second = ServiceMetrics("queue")
        first.events_duplicate_total.labels(group="queue").inc()

        assert b"mpp_queue_events_duplicate_total{" not in second.render()[0]

    def test_unknown_http_methods_share_one_label(self) -> None:
        metrics = ServiceMetrics("queue", process_metrics=False)

        metrics.observe_http("BREW", "unmatched", 405, 0.001)

        assert b'method="OTHER"' in metrics.render()[0]

    def test_dead_letter_reason_is_a_fixed_set(self) -> None:
        metrics = ServiceMetrics("reporting", process_metrics=False)
        metrics.record_dead_letter("reporting", "queue.ticket", DeadLetterReason.MALFORMED)

        with pytest.raises(ValueError, match="timeout"):
            metrics.record_dead_letter("reporting", "queue.ticket", "timeout")

        assert b'reason="malformed"' in metrics.render()[0]
