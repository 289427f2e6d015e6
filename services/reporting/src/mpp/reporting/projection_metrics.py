"""Prometheus metrics of the projection: what the projector applies, how fast, how far behind it is, and
how far a rebuild has come.

Labels hold event types, topics and partitions only: never a site, a person or an event id.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_SIZES: Final = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000)
_APPLY_SECONDS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProjectionMetrics:
    """The projection's metrics, registered in the service's registry (served at ``/metrics``)."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "mpp_reporting_") -> None:
        self.events_applied = Counter(
            prefix + "projection_events_applied_total",
            "Events folded into the read models, by event type (rate() gives events applied per second).",
            ["type"],
            registry=registry,
        )
        self.batch_events = Histogram(
            prefix + "projection_batch_events",
            "New events applied per consumed batch.",
            buckets=_BATCH_SIZES,
            registry=registry,
        )
        self.apply_seconds = Histogram(
            prefix + "projection_apply_seconds",
            "Time to fold one batch and write its increments (inside the batch's transaction).",
            buckets=_APPLY_SECONDS,
            registry=registry,
        )
        self.lag = Gauge(
            prefix + "projection_lag",
            "Records between the partition's end offset on the broker and the offset stored with the read "
            "models (refreshed periodically).",
            ["topic", "partition"],
            registry=registry,
        )
        self.rebuild_progress = Gauge(
            prefix + "rebuild_progress_ratio",
            "Share of the records to replay that a running rebuild has read (0 to 1).",
            registry=registry,
        )
        self.rebuild_records_read = Gauge(
            prefix + "rebuild_records_read",
            "Records a running rebuild has read so far.",
            registry=registry,
        )
        self.rebuild_records_total = Gauge(
            prefix + "rebuild_records_total",
            "Records a running rebuild replays (from each partition's start to its end when it began).",
            registry=registry,
        )

    def applied(self, types: Iterable[str], seconds: float) -> None:
        """Count one applied batch: its events by type, its size and how long it took."""
        tally = Tally(types)
        for event_type, n in tally.items():
            self.events_applied.labels(type=event_type).inc(n)
        self.batch_events.observe(sum(tally.values()))
        self.apply_seconds.observe(seconds)
