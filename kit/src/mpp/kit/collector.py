"""Python's cyclic garbage collector held off while a process works through many short-lived objects at
once: a consumer's batch of events, or a read of tens of thousands of rows that a report folds into its
figures. Everything such work allocates is freed by reference counting when it ends; the collector would
otherwise scan the live objects over and over (a fifth to a third of the work's CPU). Holders overlap
freely (several consumers, a consumer and a request): the collector comes back when the last lets go."""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_holders = 0
_was_enabled = False
_off_since = 0.0
"""When the holders last turned the collector off (monotonic seconds)."""

OFF_MAX_S = 60.0
"""Batches that overlap (a pipelined consumer under steady load, several consumers in one process) may keep
the collector off with no pause between them: once it has been off this long, the end of a batch runs one
collection (:func:`release`). A full collection with a batch of 50,000 events alive costs about
half a second of CPU, so not much more often than this."""


def hold() -> None:
    """Work starts (a batch, a large read): the collector goes off (see :func:`paused`)."""
    global _holders, _was_enabled, _off_since  # noqa: PLW0603 - one collector per process
    if _holders == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
        _off_since = time.monotonic()
    _holders += 1


def release() -> None:
    """Work has ended (its objects dropped): the collector comes back once nothing holds it. If other
    holders still do and it has been off for :data:`OFF_MAX_S`, one full collection runs
    now, so that garbage with cycles does not pile up while batches follow each other without a pause."""
    global _holders, _off_since  # noqa: PLW0603 - one collector per process
    _holders -= 1
    if not _was_enabled:
        return
    if _holders == 0:
        gc.enable()
    elif time.monotonic() - _off_since >= OFF_MAX_S:
        gc.collect()
        _off_since = time.monotonic()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a batch is read and applied (not while an outage is
    waited out, see :func:`running`). A batch allocates envelopes, payloads and increments by
    the ten thousand and frees them by reference counting; the collector would otherwise scan the live
    ones over and over (a fifth to a third of a batch's CPU), and turning it back on while they are still
    alive makes it scan them all once more (a few microseconds per event): the batch's objects are
    dropped before it ends. Garbage with cycles waits for the end of the batch. Nested or concurrent
    batches (several consumers in one process, or a pipelined consumer's batch read while the previous
    one is written, a report's read meanwhile) keep it off until the last one ends. A pipelined batch
    holds it from its parse to the end of its apply with :func:`hold` and :func:`release`."""
    hold()
    try:
        yield
    finally:
        release()


@contextlib.contextmanager
def running() -> Iterator[None]:
    """The collector on while an outage is waited out in the middle of a batch (it may last minutes, and
    the rest of the process goes on allocating), and off again after if a batch still runs."""
    global _off_since  # noqa: PLW0603 - one collector per process
    resume = _holders > 0 and _was_enabled
    if resume:
        gc.enable()
    try:
        yield
    finally:
        if resume and _holders > 0:
            gc.disable()
            _off_since = time.monotonic()


def pausing(work: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A coroutine function run with the collector held off (:func:`paused`) from its start to its end."""

    @functools.wraps(work)
    async def held(*args: P.args, **kwargs: P.kwargs) -> T:
        with paused():
            return await work(*args, **kwargs)

    return held
