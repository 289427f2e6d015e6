"""Group commit of the counters' cycle: concurrent call-next, start, complete, recall and no-show requests
run one after the other in one transaction (PostgreSQL).

Every counter of a site loops call-next -> start -> complete, each a short transaction of a few statements.
Alone, each pays its own connection checkout, ``BEGIN``, outbox ``INSERT`` and ``COMMIT`` (with its WAL
flush), and waits on the rows the other counters' transactions hold (a visit two counters complete at
once, a ticket another counter's ``SKIP LOCKED`` looked at). Here a request hands its command to the
batcher and waits for its own answer. When no batch is being written, the first request starts one at once;
requests that arrive meanwhile form the next batch, written as soon as the first commits. A batch runs each
command's handler in turn, in its request's own context (correlation id, trace), in one unit of work: one
connection, one outbox ``INSERT`` for all their events, one commit. Each command sees what the commands
before it in the batch wrote (READ COMMITTED statements see their own transaction's writes), so two
call-nexts in a batch never get the same ticket, and a batch decides exactly as the same requests would,
one after the other.

A batch first locks, in id order, the visits its completes, no-shows and cancels may end
(:func:`~mpp.queue.handlers.lock_visits_first`): two batches that end the same visits wait for each other
instead of each holding one visit and waiting for the other's (a deadlock PostgreSQL breaks only after
its ``deadlock_timeout``).

A batch is all or nothing: when any of its commands fails (a 409 for a ticket in the wrong state, a 404, a
lost connection), the batch rolls back and each command runs again in its own transaction, so a request
gets exactly the answer it would get alone and one bad request fails only itself. A batch of one is such a
transaction from the start.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mpp.queue.handlers import HANDLERS, lock_visits_first

log = logging.getLogger(__name__)

After = Callable[[Any, Any], Awaitable[Any]]
Single = Callable[[Any, After | None], Coroutine[Any, Any, Any]]


@dataclass
class CycleRequest:
    cmd: Any
    after: After | None
    context: contextvars.Context
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class CycleBatcher:
    """Collects concurrent commands of the counters' cycle and commits them in batches (see the module)."""

    def __init__(self, svc: Any, single: Single, *, max_batch: int, writers: int = 1) -> None:
        self._svc = svc
        self._single = single
        self._max = max(1, max_batch)
        self._writers_max = max(1, writers)
        self._pending: list[CycleRequest] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Batches of more than one command committed (for tests and benchmarks)."""
        self.retried = 0
        """Batches rolled back and run again command by command."""

    async def submit(self, cmd: Any, after: After | None = None) -> Any:
        """Run ``cmd`` (and ``after(uow, result)`` in its transaction); its result, or its error."""
        request = CycleRequest(cmd, after, contextvars.copy_context())
        self._pending.append(request)
        if len(self._writers) < self._writers_max:
            # A context of its own: the batch belongs to no single request.
            writer = asyncio.create_task(self._write(), context=contextvars.Context())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        # The batch goes on if this request is cancelled (its client left): its answer is simply unused.
        return await asyncio.shield(request.future)

    async def _write(self) -> None:
        batch: list[CycleRequest] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                await self._write_batch(batch)
        except BaseException:
            # Only a cancellation (shutdown): nothing waits forever.
            waiting, self._pending = [*batch, *self._pending], []
            for request in waiting:
                _settle(request, error=RuntimeError("cycle batcher stopped"))
            raise

    async def _write_batch(self, batch: list[CycleRequest]) -> None:
        if len(batch) > 1:
            try:
                results = await self._together(batch)
            except Exception as exc:
                self.retried += 1
                log.debug(
                    "queue.cycle.batch_retried", extra={"commands": len(batch), "error": type(exc).__name__}
                )
            else:
                self.batches += 1
                for request, result in zip(batch, results, strict=True):
                    _settle(request, result)
                return
        for request in batch:
            try:
                # In the request's own context: its correlation id and trace.
                result = await asyncio.create_task(
                    self._single(request.cmd, request.after), context=request.context
                )
            except Exception as exc:
                _settle(request, error=exc)
            else:
                _settle(request, result)

    async def _together(self, batch: list[CycleRequest]) -> list[Any]:
        svc = self._svc
        results: list[Any] = []
        async with svc.uow(lean=True) as uow:
            await lock_visits_first([r.cmd for r in batch], uow)
            for request in batch:
                results.append(await asyncio.create_task(self._one(uow, request), context=request.context))
            await uow.commit()
        return results

    async def _one(self, uow: Any, request: CycleRequest) -> Any:
        mark = uow.staged()
        result = await HANDLERS[type(request.cmd)](request.cmd, uow, self._svc.ports)
        if request.after is not None:
            await request.after(uow, result)
        # Its events carry this request's trace, not the batch's.
        uow.trace_staged(mark)
        return result


def _settle(request: CycleRequest, result: Any = None, error: BaseException | None = None) -> None:
    """Give the request its answer (unless it has one)."""
    if request.future.done():
        return
    if error is not None:
        request.future.set_exception(error)
    else:
        request.future.set_result(result)
