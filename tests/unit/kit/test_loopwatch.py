"""The event loop watch: lag measured all the time, a stall named with the stack that held the loop."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram

from mpp.kit.loopwatch import LoopWatch

pytestmark = pytest.mark.unit


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a blocking call does to every request in flight


def _lag_histogram() -> tuple[Histogram, CollectorRegistry]:
    registry = CollectorRegistry()
    return Histogram("lag_seconds", "lag", buckets=(0.1, 0.3, 1.0), registry=registry), registry


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


async def test_a_stall_is_logged_once_with_the_frames_that_held_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    histogram, registry = _lag_histogram()
    watch = LoopWatch(histogram, interval=0.02, block_threshold=0.15)
    caplog.set_level(logging.WARNING, logger="mpp.kit.loopwatch")
    watch.start()
    try:
        await asyncio.sleep(0.1)
        _hold_the_loop(0.5)
        await asyncio.sleep(0.2)
    finally:
        await watch.stop()
    records = [r for r in caplog.records if r.name == "mpp.kit.loopwatch"]
    assert [r.getMessage() for r in records] == ["kit.loop.blocked", "kit.loop.unblocked"]
    blocked, unblocked = records
    stack: str = blocked.__dict__["stack"]
    assert stack.split(" < ", maxsplit=1)[0].endswith("_hold_the_loop"), stack
    assert "test_loopwatch.py" in stack
    assert not any(frame.startswith("/") for frame in stack.split(" < "))  # no machine directories
    assert 400 <= unblocked.__dict__["stalled_ms"] < 2000
    assert watch.stalls == 1
    # The tick after the stall woke about 0.5 s late.
    assert _sample(registry, "lag_seconds_bucket", le="0.3") < _sample(registry, "lag_seconds_count")


async def test_a_loop_that_keeps_coming_round_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    histogram, registry = _lag_histogram()
    watch = LoopWatch(histogram, interval=0.02, block_threshold=0.5)
    caplog.set_level(logging.WARNING, logger="mpp.kit.loopwatch")
    watch.start()
    try:
        for _ in range(10):
            _hold_the_loop(0.01)
            await asyncio.sleep(0.02)
    finally:
        await watch.stop()
    assert [r for r in caplog.records if r.name == "mpp.kit.loopwatch"] == []
    assert watch.stalls == 0
    assert _sample(registry, "lag_seconds_count") >= 5
