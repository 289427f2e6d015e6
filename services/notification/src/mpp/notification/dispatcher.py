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

Throughput: the running dispatcher claims due deliveries in batches (one ``sending`` transaction per
batch) and writes successful outcomes in groups (one transaction for every outcome that arrived while the
previous group was written). Neither changes the rule above: ``sending`` is committed before any call,
and an outcome not yet committed at a crash is a record in ``sending``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.events.notification import DeliveryFailure, NotificationChannel
from mpp.kit.outbox import UnitOfWork
from mpp.notification.domain.model import Contact, DeliveryState
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
        unkeyed_concurrency: int = 4,
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
        self._unkeyed_concurrency = unkeyed_concurrency
        self._unkeyed: Counter[NotificationChannel] = Counter()
        """Calls in flight per channel whose provider has no idempotency key."""
        self._semaphore = asyncio.Semaphore(concurrency)
        self._poll = poll_interval_s
        self._send_timeout = send_timeout_s
        self._rng = rng or random.Random()
        self.kick = asyncio.Event()
        """Set to make the dispatcher look for due deliveries at once."""
        self._grouped = False
        self._sent: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._sent_waiting = asyncio.Event()

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
        """Dispatch until ``stop`` is set. Each due batch is claimed at once (one query for the due
        deliveries, one for their contacts, one transaction marking them ``sending``); each delivery then
        runs as its own task (up to ``concurrency``), so a slow provider call holds up only its own
        recipient; successful outcomes are written in groups by one writer (one transaction for all the
        outcomes that arrived meanwhile)."""
        await self.recover()
        in_flight: dict[str, asyncio.Task[None]] = {}
        writer = asyncio.create_task(self._write_sent_loop(), name="dispatcher-writer")
        self._grouped = True

        def done(task: asyncio.Task[None], delivery_id: str, unkeyed: NotificationChannel | None) -> None:
            in_flight.pop(delivery_id, None)
            if unkeyed is not None:
                self._unkeyed[unkeyed] -= 1
            self.kick.set()

        # Claim when a quarter of the slots are free (or nothing is in flight) rather than after every
        # finished call: one claim (three statements) then serves many calls.
        refill = max(1, min(self._batch, self._concurrency // 4))
        try:
            while not stop.is_set():
                self.kick.clear()  # set again by a finished delivery, a consumed trigger or a resend
                free = self._concurrency - len(in_flight)
                fetched = 0
                ready: list[tuple[dict[str, Any], ProviderSlot, OutgoingMessage]] = []
                if free >= refill or (free > 0 and not in_flight):
                    try:
                        fetched, ready = await self._claim(min(self._batch, free), list(in_flight))
                    except Exception as exc:  # a database outage must not end the loop; the next pass retries
                        log.warning("notification.dispatcher.failed", extra={"error": type(exc).__name__})
                for row, slot, message in ready:
                    task = asyncio.create_task(
                        self._guarded_send(row, slot, message), name=f"delivery-{row['id']}"
                    )
                    in_flight[row["id"]] = task
                    unkeyed = None if slot.provider.idempotent else message.channel
                    if unkeyed is not None:
                        self._unkeyed[unkeyed] += 1
                    task.add_done_callback(functools.partial(done, delivery_id=row["id"], unkeyed=unkeyed))
                if not fetched:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wait(stop), timeout=self._poll)
            if in_flight:
                await asyncio.gather(*in_flight.values(), return_exceptions=True)
        finally:
            self._grouped = False
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self._flush_sent()

    async def _claim(
        self, limit: int, exclude: list[str]
    ) -> tuple[int, list[tuple[dict[str, Any], ProviderSlot, OutgoingMessage]]]:
        """How many due deliveries were dealt with, and those now marked ``sending`` with their message;
        the others (no provider, no usable contact, open circuit) are failed over or rescheduled here.

        Providers without an idempotency key (SMTP) get at most ``unkeyed_concurrency`` calls at a time:
        each call in flight (``sending``, including one waiting for the rate limit) is a message of
        unknown outcome if the process dies, so their deliveries stay ``pending`` meanwhile."""
        full = [
            channel.value
            for channel, slot in self.slots.items()
            if not slot.provider.idempotent and self._unkeyed[channel] >= self._unkeyed_concurrency
        ]
        refused: list[tuple[dict[str, Any], SendResult | ProviderSlot]] = []
        ready = []
        dealt = 0
        # One transaction: the due heads, their contacts and the ``sending`` mark, committed before
        # any call (BEGIN, two reads, one update, COMMIT).
        async with self._uow() as uow:
            rows = await repo.due_heads(
                uow.session, self._rules.now(), limit, exclude=exclude, skip_channels=full
            )
            found = await ContactRepository(uow.session, self._rules.cipher).get_many(
                sorted({r["recipient_ref"] for r in rows})
            )
            chosen: Counter[NotificationChannel] = Counter()
            for row in rows:
                channel = NotificationChannel(row["channel"])
                slot = self.slots.get(channel)
                if slot is not None and not slot.provider.idempotent:
                    if self._unkeyed[channel] + chosen[channel] >= self._unkeyed_concurrency:
                        continue  # stays pending: the channel's calls in flight are at their bound
                    chosen[channel] += 1
                dealt += 1
                if slot is None:
                    refused.append(
                        (row, SendResult.permanent(DeliveryFailure.PROVIDER_UNAVAILABLE, "no_provider"))
                    )
                    continue
                prepared = self._message(row, channel, found.get(row["recipient_ref"]))
                if isinstance(prepared, SendResult):
                    refused.append((row, prepared))
                    continue
                if not slot.breaker.allow():
                    refused.append((row, slot))
                    continue
                ready.append((row, slot, prepared))
            if ready:
                claimed = await repo.mark_sending_many(
                    uow.session, [r["id"] for r, _, _ in ready], self._rules.now()
                )
                await uow.commit()
                ready = [item for item in ready if item[0]["id"] in claimed]
        # The others (no provider, no usable contact, open circuit) are failed over or rescheduled,
        # each in its own transaction.
        for row, why in refused:
            if isinstance(why, ProviderSlot):
                await self._guarded(self._circuit_open(row, why), row)
            else:
                await self._guarded(self.fail_channel(row, why), row)
        return dealt, ready

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
            await asyncio.gather(*(self._guarded_deliver(row) for row in rows))
        return len(rows)

    async def drain(self, *, max_passes: int = 100) -> None:
        """Dispatch until nothing is due (tests and tools)."""
        for _ in range(max_passes):
            if await self.dispatch_once() == 0:
                return

    async def _guarded(self, work: Awaitable[None], row: dict[str, Any]) -> None:
        try:
            await work
        except Exception as exc:  # a database outage mid-delivery: the record stays as it was written
            log.warning(
                "notification.delivery.interrupted",
                extra={"delivery": row["id"], "error": type(exc).__name__},
            )

    async def _guarded_deliver(self, row: dict[str, Any]) -> None:
        async with self._semaphore:
            await self._guarded(self.deliver(row), row)

    async def _guarded_send(self, row: dict[str, Any], slot: ProviderSlot, message: OutgoingMessage) -> None:
        await self._guarded(self._send(row, slot, message), row)

    async def deliver(self, row: dict[str, Any]) -> None:
        """One delivery on its own: checks, ``sending``, the provider call and its outcome."""
        channel = NotificationChannel(row["channel"])
        slot = self.slots.get(channel)
        if slot is None:
            await self.fail_channel(
                row, SendResult.permanent(DeliveryFailure.PROVIDER_UNAVAILABLE, "no_provider")
            )
            return
        async with self._sessions() as session:
            contact = await ContactRepository(session, self._rules.cipher).get(row["recipient_ref"])
        prepared = self._message(row, channel, contact)
        if isinstance(prepared, SendResult):
            await self.fail_channel(row, prepared)
            return
        if not slot.breaker.allow():
            await self._circuit_open(row, slot)
            return
        async with self._uow() as uow:
            if not await repo.mark_sending(uow.session, row["id"], self._rules.now()):
                return  # resolved elsewhere meanwhile
            await uow.commit()
        await self._send(row, slot, prepared)

    async def _circuit_open(self, row: dict[str, Any], slot: ProviderSlot) -> None:
        # The provider is down: hand the message to the next channel now rather than let it go stale
        # (a call to a counter is useless an hour later); with no other channel, wait for the breaker.
        if row["remaining_channels"]:
            result = SendResult.permanent(DeliveryFailure.PROVIDER_UNAVAILABLE, CIRCUIT_OPEN)
            await self.fail_channel({**row, "provider": slot.provider.name}, result)
        else:
            retry = self._rules.now() + timedelta(seconds=max(slot.breaker.retry_in(), 0.05))
            await self._reschedule(row, retry)

    async def _send(self, row: dict[str, Any], slot: ProviderSlot, message: OutgoingMessage) -> None:
        """The provider call of a delivery already marked ``sending``, and its outcome."""
        wait = slot.bucket.take()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            result = await asyncio.wait_for(slot.provider.send(message), timeout=self._send_timeout)
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

    def _message(
        self, row: dict[str, Any], channel: NotificationChannel, contact: Contact | None
    ) -> OutgoingMessage | SendResult:
        """The message to send, or the permanent failure that stops this channel before any attempt."""
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
        if self._grouped:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._sent.append(({**row, "provider_message_id": result.provider_message_id}, done))
            self._sent_waiting.set()
            await done  # the delivery's task ends once its outcome is committed
            return
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

    async def _write_sent_loop(self) -> None:
        while True:
            await self._sent_waiting.wait()
            self._sent_waiting.clear()
            await self._flush_sent()

    async def _flush_sent(self) -> None:
        """Commits every successful outcome waiting (state ``sent`` and NotificationSent) in one
        transaction. A crash before it leaves them ``sending``: they are sent again with the same
        idempotency key, which the provider answers without a second message."""
        batch, self._sent = self._sent, []
        if not batch:
            return
        now = self._rules.now()
        rows = [
            {**row, "state": DeliveryState.SENT.value, "sent_at": now, "updated_at": now} for row, _ in batch
        ]
        try:
            async with self._uow() as uow:
                await repo.set_sent_many(uow.session, rows)
                for row in rows:
                    uow.publish(sent_event({**row, "provider_error_code": None}))
                await uow.commit()
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)
        if log.isEnabledFor(logging.INFO):
            for row in rows:
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
