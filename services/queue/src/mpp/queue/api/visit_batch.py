"""Group commit of kiosk visits: concurrent ``POST /v1/visits`` requests are written in one transaction.

A request hands its visit to the batcher and waits for its own answer. When no batch is being written,
the first request waits ``wait_seconds`` (a few milliseconds) for others to join; requests that arrive
while a batch is being written form the next batch, which starts as soon as the first commits. A batch
of one is written as a single visit always was. A batch is one transaction (one idempotency lookup, one
INSERT for the visits, one for the tickets, one for the idempotency records, one for the outbox rows);
when it fails for any reason, each of its visits is retried on its own, so one bad visit fails only its
own request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mpp.queue.domain.model import Ticket, Visit
from mpp.queue.handlers import StartVisit, start_visits
from mpp.queue.ports import Catalogue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisitAnswer:
    """What a visit request gets: the new visit's body, or the answer stored under its key."""

    body: dict[str, Any] | None = None
    stored: tuple[str, int, dict[str, Any]] | None = None


@dataclass
class VisitRequest:
    cmd: StartVisit
    subject: str
    key: str | None
    request_hash: str
    context: contextvars.Context
    future: asyncio.Future[VisitAnswer] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


Render = Callable[[Visit, list[Ticket]], dict[str, Any]]
Single = Callable[[VisitRequest], Coroutine[Any, Any, VisitAnswer]]


class VisitBatcher:
    """Collects concurrent visit requests and writes them in batches (see the module's docstring)."""

    def __init__(
        self, svc: Any, render: Render, single: Single, *, wait_seconds: float, max_batch: int
    ) -> None:
        self._svc = svc
        self._render = render
        self._single = single
        self._wait = wait_seconds
        self._max = max(1, max_batch)
        self._pending: list[VisitRequest] = []
        self._current: list[VisitRequest] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches of more than one visit committed (for tests and benchmarks)."""

    async def submit(self, request: VisitRequest) -> VisitAnswer:
        self._pending.append(request)
        if self._writer is None:
            # A context of its own: the batch belongs to no single request (each visit's events carry
            # its own request's trace, and a visit retried alone runs in its request's context).
            self._writer = asyncio.create_task(self._write(), context=contextvars.Context())
        # The batch goes on if this request is cancelled (its client left): its answer is simply unused.
        return await asyncio.shield(request.future)

    async def _write(self) -> None:
        try:
            if self._wait > 0:
                await asyncio.sleep(self._wait)
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                self._current = batch
                await self._write_batch(batch)
        finally:
            self._writer = None
            for request in [*self._current, *self._pending]:  # only after a cancellation (shutdown)
                if not request.future.done():
                    request.future.set_exception(RuntimeError("visit batcher stopped"))
            self._current = []

    async def _write_batch(self, batch: list[VisitRequest]) -> None:
        together, alone = _split(batch, self._svc.ports.catalogue)
        if len(together) > 1:
            try:
                answers = await self._together(together)
            except Exception as exc:
                log.info(
                    "queue.visits.batch_retried", extra={"visits": len(together), "error": type(exc).__name__}
                )
                alone = [*together, *alone]
            else:
                self.batches += 1
                for request, answer in zip(together, answers, strict=True):
                    _resolve(request, answer)
        else:
            alone = [*together, *alone]
        for request in alone:
            try:
                # In the request's own context: its correlation id and trace.
                answer = await asyncio.create_task(self._single(request), context=request.context)
            except Exception as exc:
                if not request.future.done():
                    request.future.set_exception(exc)
            else:
                _resolve(request, answer)

    async def _together(self, batch: list[VisitRequest]) -> list[VisitAnswer]:
        svc = self._svc
        answers: dict[int, VisitAnswer] = {}
        async with svc.uow() as uow:
            keyed = [(r.subject, r.key) for r in batch if r.key is not None]
            stored = await uow.idempotency.find_many(keyed)
            fresh: list[VisitRequest] = []
            for i, request in enumerate(batch):
                found = None if request.key is None else stored.get((request.subject, request.key))
                if found is not None:
                    answers[i] = VisitAnswer(stored=found)
                else:
                    fresh.append(request)
            written = await start_visits([r.cmd for r in fresh], uow, svc.ports)
            records: list[dict[str, Any]] = []
            bodies: list[dict[str, Any]] = []
            for request, (visit, tickets) in zip(fresh, written, strict=True):
                body = self._render(visit, tickets)
                bodies.append(body)
                if request.key is not None:
                    records.append(
                        {
                            "principal": request.subject,
                            "key": request.key,
                            "request_hash": request.request_hash,
                            "status_code": 201,
                            "response": body,
                            "created_at": visit.started_at,
                        }
                    )
            await uow.idempotency.remember_many(records)
            await uow.commit()
        new = iter(bodies)
        return [answers[i] if i in answers else VisitAnswer(body=next(new)) for i in range(len(batch))]


def _split(batch: list[VisitRequest], catalogue: Catalogue) -> tuple[list[VisitRequest], list[VisitRequest]]:
    """The requests a batch can take, and those written after it, one by one: repeats of an idempotency
    key already in the batch (they find the first one's answer) and visits asking for a service type the
    catalogue does not know (they fail on their own)."""
    seen: set[tuple[str, str]] = set()
    together: list[VisitRequest] = []
    alone: list[VisitRequest] = []
    for request in batch:
        if any(catalogue.service(code) is None for code in request.cmd.service_types):
            alone.append(request)
        elif request.key is None:
            together.append(request)
        elif (request.subject, request.key) in seen:
            alone.append(request)
        else:
            seen.add((request.subject, request.key))
            together.append(request)
    return together, alone


def _resolve(request: VisitRequest, answer: VisitAnswer) -> None:
    if not request.future.done():
        request.future.set_result(answer)
