"""The dispatcher: sends pending deliveries through the channel's provider, with retries, circuit
breakers, rate limits and fallback to the next channel.

Exactly one message per trigger and channel:

1. the consumer writes the delivery record (``pending``) in the same transaction as the inbox entry;
2. before calling the provider the record becomes ``sending`` (attempts + 1) and that is committed;
3. the outcome is committed afterwards: ``sent`` (and NotificationSent), back to ``pending`` with a
   later ``not_before`` (transient error, attempts left), or ``failed`` (and NotificationFailed, plus
   the record of the next channel if there is one).

After a crash, records left in ``sending`` are resolved at startup: for providers that deduplicate by
idempotency key (the delivery id: WhatsApp, SMS gateway, loopback) the record goes back to ``pending``
and is sent again with the same key, so the citizen gets it once; for providers without one (SMTP) the
outcome is unknown and the record is ``failed`` with ``provider_error_code = outcome_unknown`` and no
automatic resend or fallback (an operator may resend it), so nobody gets the message twice.

Per-recipient order: only the oldest unfinished delivery of a recipient is due, so messages to one
citizen go out in the order of their triggers while different citizens are served concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.events.notification import DeliveryFailure, NotificationChannel
from mpp.kit.outbox import UnitOfWork
from mpp.notification.domain.model import DeliveryState
from mpp.notification.domain.phone import is_valid_phone
from mpp.notification.domain.resilience import Backoff, CircuitBreaker, TokenBucket
from mpp.notification.domain.templates import TemplateError, render
from mpp.notification.handlers import Rules, failed_event, sent_event
from mpp.notification.persistence import repository as repo
from mpp.notification.persistence.repository import ContactRepository
from mpp.notification.ports import Outcome, OutgoingMessage, Provider, SendResult

log = logging.getLogger(__name__)
OUTCOME_UNKNOWN = "outcome_unknown"
CIRCUIT_OPEN = "circuit_open"


@dataclass
class ProviderSlot:
    """A channel's provider with its own circuit breaker and rate limit."""

    provider: Provider
    breaker: CircuitBreaker
    bucket: TokenBucket


class Dispatcher:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        wakeup: asyncio.Event | None,
        slots: Mapping[NotificationChannel, ProviderSlot],
        rules: Rules,
        backoff: Backoff,
        max_attempts: int = 5,
        batch_size: int = 200,
        concurrency: int = 32,
        poll_interval_s: float = 0.2,
        send_timeout_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._wakeup = wakeup
        self.slots = dict(slots)
        self._rules = rules
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._batch = batch_size
        self._concurrency = concurrency
        self._semaphore = asyncio.Semaphore(concurrency)
        self._poll = poll_interval_s
        self._send_timeout = send_timeout_s
        self._rng = rng or random.Random()
        self.kick = asyncio.Event()
        """Set to make the dispatcher look for due deliveries at once."""

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, self._outbox, self._wakeup)

    # -- startup -----------------------------------------------------------------------------

    async def recover(self) -> int:
        """Resolve the records a crash left in ``sending`` (see the module's rule)."""
        now = self._rules.now()
        async with self._uow() as uow:
            stuck = await repo.stuck_sending(uow.session)
            for row in stuck:
                slot = self.slots.get(NotificationChannel(row["channel"]))
                if slot is not None and slot.provider.idempotent:
                    await repo.set_delivery(
                        uow.session, row["id"], state=DeliveryState.PENDING.value, updated_at=now
                    )
                    continue
                values = {
                    "state": DeliveryState.FAILED.value,
                    "failure_reason": DeliveryFailure.UNDELIVERABLE.value,
                    "provider_error_code": OUTCOME_UNKNOWN,
                    "updated_at": now,
                }
                await repo.set_delivery(uow.session, row["id"], **values)
                uow.publish(failed_event({**row, **values}, final=True, now=now))
            await uow.commit()
        if stuck:
            log.warning("notification.dispatcher.recovered", extra={"deliveries": len(stuck)})
        return len(stuck)

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set. Each delivery runs as its own task (up to ``concurrency``); a
        slow provider call holds up only its own recipient, never the others."""
        await self.recover()
        in_flight: dict[str, asyncio.Task[None]] = {}

        def done(task: asyncio.Task[None], delivery_id: str) -> None:
            in_flight.pop(delivery_id, None)
            self.kick.set()

        while not stop.is_set():
            free = self._concurrency - len(in_flight)
            rows: list[dict[str, Any]] = []
            if free > 0:
                try:
                    async with self._sessions() as session:
                        rows = await repo.due_heads(
                            session, self._rules.now(), min(self._batch, free), exclude=list(in_flight)
                        )
                except Exception as exc:  # a database outage must not end the loop; the next pass retries
                    log.warning("notification.dispatcher.failed", extra={"error": type(exc).__name__})
            for row in rows:
                task = asyncio.create_task(self._guarded(row), name=f"delivery-{row['id']}")
                in_flight[row["id"]] = task
                task.add_done_callback(functools.partial(done, delivery_id=row["id"]))
            if not rows:
                self.kick.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait(stop), timeout=self._poll)
        if in_flight:
            await asyncio.gather(*in_flight.values(), return_exceptions=True)

    async def _wait(self, stop: asyncio.Event) -> None:
        kicked = asyncio.create_task(self.kick.wait())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({kicked, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kicked.cancel()
            stopped.cancel()

    # -- one pass ----------------------------------------------------------------------------

    async def dispatch_once(self) -> int:
        """Send every delivery that is due now (one per recipient); returns how many were handled."""
        async with self._sessions() as session:
            rows = await repo.due_heads(session, self._rules.now(), self._batch)
        if rows:
            await asyncio.gather(*(self._guarded(row) for row in rows))
        return len(rows)

    async def drain(self, *, max_passes: int = 100) -> None:
        """Dispatch until nothing is due (tests and tools)."""
        for _ in range(max_passes):
            if await self.dispatch_once() == 0:
                return

    async def _guarded(self, row: dict[str, Any]) -> None:
        async with self._semaphore:
            try:
                await self.deliver(row)
            except Exception as exc:  # a database outage mid-delivery: the record stays as it was written
                log.warning(
                    "notification.delivery.interrupted",
                    extra={"delivery": row["id"], "error": type(exc).__name__},
                )

    async def deliver(self, row: dict[str, Any]) -> None:
        channel = NotificationChannel(row["channel"])
        slot = self.slots.get(channel)
        if slot is None:
            await self.fail_channel(
                row, SendResult.permanent(DeliveryFailure.PROVIDER_UNAVAILABLE, "no_provider")
            )
            return
        prepared = await self._prepare(row, channel)
        if isinstance(prepared, SendResult):
            await self.fail_channel(row, prepared)
            return
        if not slot.breaker.allow():
            # The provider is down: hand the message to the next channel now rather than let it go stale
            # (a call to a counter is useless an hour later); with no other channel, wait for the breaker.
            if row["remaining_channels"]:
                result = SendResult.permanent(DeliveryFailure.PROVIDER_UNAVAILABLE, CIRCUIT_OPEN)
                await self.fail_channel({**row, "provider": slot.provider.name}, result)
            else:
                retry = self._rules.now() + timedelta(seconds=max(slot.breaker.retry_in(), 0.05))
                await self._reschedule(row, retry)
            return
        wait = slot.bucket.take()
        if wait > 0:
            await asyncio.sleep(wait)
        async with self._uow() as uow:
            if not await repo.mark_sending(uow.session, row["id"], self._rules.now()):
                return  # resolved elsewhere meanwhile
            await uow.commit()
        try:
            result = await asyncio.wait_for(slot.provider.send(prepared), timeout=self._send_timeout)
        except TimeoutError:
            result = SendResult.transient("timeout")
        except Exception as exc:  # an adapter bug must not lose the record: treat it as transient
            log.error(
                "notification.provider.error",
                extra={"provider": slot.provider.name, "error": type(exc).__name__},
            )
            result = SendResult.transient(type(exc).__name__)
        await self._record(
            {**row, "attempts": int(row["attempts"]) + 1, "provider": slot.provider.name}, slot, result
        )

    async def _prepare(
        self, row: dict[str, Any], channel: NotificationChannel
    ) -> OutgoingMessage | SendResult:
        """The message to send, or the permanent failure that stops this channel before any attempt."""
        async with self._sessions() as session:
            contact = await ContactRepository(session, self._rules.cipher).get(row["recipient_ref"])
        address = contact.address(channel) if contact is not None else None
        if contact is None or address is None or not contact.reaches(channel):
            return SendResult.permanent(DeliveryFailure.NO_CONTACT)
        if channel is not NotificationChannel.EMAIL and not is_valid_phone(address):
            return SendResult.permanent(DeliveryFailure.INVALID_RECIPIENT, "invalid_phone")
        template = self._rules.book.find(row["template"], channel, row["locale"])
        try:
            if template is None:
                raise TemplateError(row["template"], f"no template for {channel.value}")
            message = render(template, row["context"])
        except TemplateError as exc:
            log.error(
                "notification.delivery.template_failed", extra={"delivery": row["id"], "error": str(exc)}
            )
            return SendResult.permanent(DeliveryFailure.UNDELIVERABLE, "template")
        return OutgoingMessage(row["id"], channel, address, message)

    async def _record(self, row: dict[str, Any], slot: ProviderSlot, result: SendResult) -> None:
        if result.outcome is Outcome.SENT:
            slot.breaker.success()
            await self._finish_sent(row, result)
        elif result.outcome is Outcome.TRANSIENT:
            slot.breaker.failure()
            if row["attempts"] < self._max_attempts:
                delay = self._backoff.delay(row["attempts"], self._rng, result.retry_after_s)
                await self._reschedule(
                    row,
                    self._rules.now() + timedelta(seconds=delay),
                    provider=slot.provider.name,
                    provider_error_code=result.error_code,
                )
            else:
                await self.fail_channel(row, result)
        else:
            slot.breaker.success()  # the provider answered: it is up
            await self.fail_channel(row, result)

    async def _reschedule(self, row: dict[str, Any], at: datetime, **values: Any) -> None:
        async with self._uow() as uow:
            await repo.set_delivery(
                uow.session,
                row["id"],
                state=DeliveryState.PENDING.value,
                not_before=at,
                updated_at=self._rules.now(),
                **values,
            )
            await uow.commit()

    async def _finish_sent(self, row: dict[str, Any], result: SendResult) -> None:
        now = self._rules.now()
        values = {
            "state": DeliveryState.SENT.value,
            "provider": row["provider"],
            "provider_message_id": result.provider_message_id,
            "provider_error_code": None,
            "sent_at": now,
            "updated_at": now,
        }
        async with self._uow() as uow:
            await repo.set_delivery(uow.session, row["id"], **values)
            uow.publish(sent_event({**row, **values}))
            await uow.commit()
        log.info(
            "notification.delivery.sent",
            extra={"delivery": row["id"], "channel": row["channel"], "kind": row["message_kind"]},
        )

    async def fail_channel(self, row: dict[str, Any], result: SendResult) -> None:
        """This channel will not carry the message: record why, and hand it to the next channel."""
        now = self._rules.now()
        reason = result.reason or DeliveryFailure.UNDELIVERABLE
        values = {
            "state": DeliveryState.FAILED.value,
            "failure_reason": reason.value,
            "provider_error_code": result.error_code,
            "updated_at": now,
        }
        remaining = [c for c in row["remaining_channels"].split(",") if c]
        async with self._uow() as uow:
            await repo.set_delivery(uow.session, row["id"], **values)
            handed_on = False
            if remaining:
                follow = {
                    **{k: row[k] for k in _COPIED},
                    "id": repo.new_delivery_id(),
                    "channel": remaining[0],
                    "remaining_channels": ",".join(remaining[1:]),
                    "state": DeliveryState.PENDING.value,
                    "attempts": 0,
                    "not_before": now,
                    "created_at": now,
                    "updated_at": now,
                }
                handed_on = await repo.insert_delivery(uow.session, follow)
            uow.publish(failed_event({**row, **values}, final=not handed_on, now=now))
            await uow.commit()
        log.info(
            "notification.delivery.failed",
            extra={
                "delivery": row["id"],
                "channel": row["channel"],
                "reason": reason.value,
                "error_code": result.error_code,
                "fallback": bool(remaining),
            },
        )


_COPIED = (
    "trigger_event_id",
    "trigger_event_type",
    "recipient_ref",
    "message_kind",
    "round",
    "site",
    "agency",
    "template",
    "locale",
    "critical",
    "urgent",
    "queued_at",
    "context",
    "resend_of",
    "requested_by",
)
