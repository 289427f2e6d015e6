"""What the HTTP edge and the consumer share: the rules, the dispatcher and units of work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mpp.contracts.events.notification import (
    DeliveryFailure,
    MessageKind,
    NotificationChannel,
    NotificationDeliveredV1,
)
from mpp.kit.outbox import UnitOfWork
from mpp.kit.runtime import ServiceRuntime
from mpp.notification.dispatcher import Dispatcher
from mpp.notification.domain.model import Contact, DeliveryState
from mpp.notification.handlers import Rules, Source, plan_delivery, wrap_event
from mpp.notification.persistence import repository as repo
from mpp.notification.persistence.repository import ContactRepository
from mpp.notification.ports import SendResult


class DeliveryNotFound(Exception):
    pass


class NotResendable(Exception):
    pass


@dataclass(frozen=True)
class StatusUpdate:
    provider_message_id: str
    status: str
    at: datetime
    error_code: str | None = None


class NotificationService:
    def __init__(self, runtime: ServiceRuntime, rules: Rules, dispatcher: Dispatcher) -> None:
        self.runtime = runtime
        self.rules = rules
        self.dispatcher = dispatcher

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.runtime.sessions, self.runtime.outbox, self.runtime.relay_wakeup)

    # -- contacts ----------------------------------------------------------------------------

    async def save_contact(self, contact: Contact) -> None:
        async with self.uow() as uow:
            await ContactRepository(uow.session, self.rules.cipher).save(contact, self.rules.now())
            await uow.commit()

    async def contact(self, citizen_ref: str) -> Contact | None:
        async with self.runtime.sessions() as session:
            return await ContactRepository(session, self.rules.cipher).get(citizen_ref)

    async def withdraw_contact(self, citizen_ref: str) -> bool:
        async with self.uow() as uow:
            removed = await ContactRepository(uow.session, self.rules.cipher).remove(citizen_ref)
            await uow.commit()
        return removed

    # -- operator ----------------------------------------------------------------------------

    async def deliveries_for(self, trigger_event_id: str) -> list[dict[str, Any]]:
        async with self.runtime.sessions() as session:
            return await repo.for_trigger(session, trigger_event_id)

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        async with self.runtime.sessions() as session:
            return await repo.delivery(session, delivery_id)

    async def failures(self, site: str | None, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        async with self.runtime.sessions() as session:
            return await repo.failures(session, site, page, size)

    async def resend(self, row: dict[str, Any], requested_by: str) -> dict[str, Any]:
        """A new round of the trigger's message (current contact details, first channel again)."""
        if row["state"] not in (
            DeliveryState.FAILED.value,
            DeliveryState.SENT.value,
            DeliveryState.DELIVERED.value,
        ):
            raise NotResendable
        trigger = self.rules.config.trigger(row["trigger_event_type"])
        if trigger is None:
            raise NotResendable
        now = self.rules.now()
        async with self.uow() as uow:
            round_ = await repo.last_round(
                uow.session, row["trigger_event_id"], row["recipient_ref"], row["message_kind"]
            )
            source = Source(row["trigger_event_id"], row["trigger_event_type"], row["site"], row["agency"])
            failed = await plan_delivery(
                uow.session,
                source,
                trigger.model_copy(update={"urgent": True}),
                row["recipient_ref"],
                ContactRepository(uow.session, self.rules.cipher),
                self.rules,
                now,
                round_=round_ + 1,
                requested_by=requested_by,
                resend_of=row["id"],
                context=row["context"],
            )
            if failed is not None:
                uow.publish(failed)
            created = [
                r
                for r in await repo.for_trigger(uow.session, row["trigger_event_id"])
                if r["round"] == round_ + 1
            ]
            await uow.commit()
        self.dispatcher.kick.set()
        return created[0]

    # -- provider callbacks ------------------------------------------------------------------

    async def apply_status(self, provider: str, update: StatusUpdate) -> bool:
        """A provider's delivery report; False when the message is unknown."""
        async with self.runtime.sessions() as session:
            row = await repo.by_provider_message(session, provider, update.provider_message_id)
        if row is None:
            return False
        if update.status == "failed":
            if row["state"] in (DeliveryState.SENT.value, DeliveryState.SENDING.value):
                await self.dispatcher.fail_channel(
                    row, SendResult.permanent(DeliveryFailure.UNDELIVERABLE, update.error_code)
                )
            return True
        if update.status not in ("delivered", "read"):
            return True
        read_at = update.at if update.status == "read" else None
        async with self.uow() as uow:
            if row["state"] == DeliveryState.DELIVERED.value:
                if read_at is not None and row["read_at"] is None:
                    await repo.set_delivery(
                        uow.session, row["id"], read_at=read_at, updated_at=self.rules.now()
                    )
                    await uow.commit()
                return True
            if row["state"] != DeliveryState.SENT.value:
                return True
            values = {
                "state": DeliveryState.DELIVERED.value,
                "delivered_at": update.at,
                "read_at": read_at,
                "updated_at": self.rules.now(),
            }
            await repo.set_delivery(uow.session, row["id"], **values)
            uow.publish(
                wrap_event(
                    NotificationDeliveredV1(
                        notification_id=row["id"],
                        channel=NotificationChannel(row["channel"]),
                        provider=row["provider"],
                        message_kind=MessageKind(row["message_kind"]),
                        trigger_event_id=uuid.UUID(row["trigger_event_id"]),
                        sent_at=row["sent_at"],
                        delivered_at=update.at,
                        read_at=read_at,
                    ),
                    row,
                )
            )
            await uow.commit()
        return True
