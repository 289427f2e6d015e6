"""Reads and writes of contacts, recipient links and deliveries, inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.events.notification import NotificationChannel
from mpp.kit.db import dialect_insert
from mpp.notification.domain.model import Contact, DeliveryState
from mpp.notification.persistence.protection import ContactCipher
from mpp.notification.persistence.tables import contacts, deliveries, queue_tickets, recipient_links

Row = dict[str, Any]


def _aware(value: Any) -> Any:
    """SQLite hands timestamps back without a zone; they are all stored in UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _row(mapping: Any) -> Row:
    row = dict(mapping)
    for key, value in row.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            row[key] = value.replace(tzinfo=UTC)
    return row


class ContactRepository:
    def __init__(self, session: AsyncSession, cipher: ContactCipher) -> None:
        self._session = session
        self._cipher = cipher

    async def save(self, contact: Contact, now: datetime) -> None:
        ref = contact.citizen_ref
        values = {
            "phone": self._cipher.seal(contact.phone, column="phone", citizen_ref=ref)
            if contact.phone
            else None,
            "email": self._cipher.seal(contact.email, column="email", citizen_ref=ref)
            if contact.email
            else None,
            "whatsapp": contact.whatsapp,
            "preferred_channel": contact.preferred_channel.value,
            "optional_consent": contact.optional_consent,
            "consent_recorded_at": contact.consent_recorded_at,
            "source": contact.source,
            "updated_at": now,
        }
        insert = dialect_insert(self._session, contacts).values(citizen_ref=ref, **values)
        await self._session.execute(insert.on_conflict_do_update(index_elements=["citizen_ref"], set_=values))

    async def remove(self, citizen_ref: str) -> bool:
        result = await self._session.execute(delete(contacts).where(contacts.c.citizen_ref == citizen_ref))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, citizen_ref: str) -> Contact | None:
        row = (
            (await self._session.execute(select(contacts).where(contacts.c.citizen_ref == citizen_ref)))
            .mappings()
            .first()
        )
        return self._contact(row) if row is not None else None

    async def get_many(self, citizen_refs: Sequence[str]) -> dict[str, Contact]:
        """The contacts of these citizens (one query); citizens without one are left out."""
        if not citizen_refs:
            return {}
        statement = _CONTACTS_OF_ARRAY if _postgres(self._session) else _CONTACTS_OF
        rows = (await self._session.execute(statement, {"refs": list(citizen_refs)})).mappings().all()
        return {row["citizen_ref"]: self._contact(row) for row in rows}

    def _contact(self, row: Any) -> Contact:
        citizen_ref = row["citizen_ref"]
        return Contact(
            citizen_ref=citizen_ref,
            phone=self._cipher.open(row["phone"], column="phone", citizen_ref=citizen_ref)
            if row["phone"]
            else None,
            email=self._cipher.open(row["email"], column="email", citizen_ref=citizen_ref)
            if row["email"]
            else None,
            whatsapp=row["whatsapp"],
            preferred_channel=NotificationChannel(row["preferred_channel"]),
            optional_consent=row["optional_consent"],
            consent_recorded_at=_aware(row["consent_recorded_at"]),
            source=row["source"],
        )


async def save_link(session: AsyncSession, kind: str, key: str, citizen_ref: str, now: datetime) -> None:
    insert = dialect_insert(session, recipient_links).values(
        kind=kind, key=key, citizen_ref=citizen_ref, created_at=now
    )
    await session.execute(
        insert.on_conflict_do_update(index_elements=["kind", "key"], set_={"citizen_ref": citizen_ref})
    )


def new_delivery_id() -> str:
    return str(uuid.uuid4())


async def insert_delivery(session: AsyncSession, row: Row) -> bool:
    """Writes a delivery unless one with the same trigger, recipient, kind, channel and round exists."""
    insert = dialect_insert(session, deliveries).values(**row)
    result = await session.execute(
        insert.on_conflict_do_nothing(
            index_elements=["trigger_event_id", "recipient_ref", "message_kind", "channel", "round"]
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def insert_deliveries(session: AsyncSession, rows: Sequence[Row]) -> set[str]:
    """Writes deliveries in one statement (SQLAlchemy sends the rows as multi-row VALUES pages), each
    unless one with the same trigger, recipient, kind, channel and round exists; returns the ids
    written."""
    if not rows:
        return set()
    insert = dialect_insert(session, deliveries)
    statement = insert.on_conflict_do_nothing(
        index_elements=["trigger_event_id", "recipient_ref", "message_kind", "channel", "round"]
    ).returning(deliveries.c.id)
    result = await session.execute(statement, list(rows))
    return {str(found) for found in result.scalars().all()}


async def delivery(session: AsyncSession, delivery_id: str) -> Row | None:
    row = (await session.execute(select(deliveries).where(deliveries.c.id == delivery_id))).mappings().first()
    return _row(row) if row is not None else None


def _due_heads_statement() -> Any:
    """Pending deliveries whose time has come and that are the oldest unfinished one of their recipient
    (per-recipient order: a message waits for the earlier ones to its recipient). An earlier message
    held for quiet hours (never tried, not yet due) does not hold back an urgent one; an earlier one
    waiting to be retried does. Built once: ``now`` and ``limit`` are parameters (no list of ids: a
    list of another length is another statement for PostgreSQL to prepare and plan)."""
    d = deliveries
    older = deliveries.alias("older")
    now = bindparam("now", type_=d.c.not_before.type)
    earlier_unfinished = exists().where(
        older.c.recipient_ref == d.c.recipient_ref,
        or_(
            older.c.state == DeliveryState.SENDING.value,
            and_(
                older.c.state == DeliveryState.PENDING.value,
                or_(older.c.not_before <= now, older.c.attempts > 0),
            ),
        ),
        or_(
            older.c.queued_at < d.c.queued_at,
            and_(older.c.queued_at == d.c.queued_at, older.c.created_at < d.c.created_at),
            and_(
                older.c.queued_at == d.c.queued_at, older.c.created_at == d.c.created_at, older.c.id < d.c.id
            ),
        ),
    )
    return (
        select(d)
        .where(
            d.c.state == DeliveryState.PENDING.value,
            d.c.not_before <= now,
            ~earlier_unfinished,
            d.c.channel.not_in(bindparam("skip_channels", expanding=True, type_=d.c.channel.type)),
        )
        .order_by(d.c.not_before, d.c.queued_at)
        .limit(bindparam("limit", type_=Integer()))
    )


_DUE_HEADS = _due_heads_statement()


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _any_of(name: str) -> Any:
    """``= ANY(:name)`` with one array parameter (PostgreSQL): one statement whatever the list's length,
    prepared once per connection, where an expanded ``IN`` is a new statement for every length."""
    return func.any(sa_cast(bindparam(name, type_=ARRAY(String)), ARRAY(String)))


_CONTACTS_OF = select(contacts).where(
    contacts.c.citizen_ref.in_(bindparam("refs", expanding=True, type_=contacts.c.citizen_ref.type))
)
_CONTACTS_OF_ARRAY = select(contacts).where(contacts.c.citizen_ref == _any_of("refs"))


def _mark_sending_statement(array: bool) -> Any:
    ids = (
        deliveries.c.id == _any_of("ids")
        if array
        else deliveries.c.id.in_(bindparam("ids", expanding=True, type_=deliveries.c.id.type))
    )
    return (
        update(deliveries)
        .where(ids, deliveries.c.state == DeliveryState.PENDING.value)
        .values(
            state=DeliveryState.SENDING.value,
            attempts=deliveries.c.attempts + 1,
            updated_at=bindparam("now", type_=deliveries.c.updated_at.type),
        )
        .returning(deliveries.c.id)
    )


_MARK_SENDING = _mark_sending_statement(array=False)
_MARK_SENDING_ARRAY = _mark_sending_statement(array=True)
_SET_SENT = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(
        state=DeliveryState.SENT.value,
        provider=bindparam("b_provider"),
        provider_message_id=bindparam("b_message_id"),
        provider_error_code=None,
        sent_at=bindparam("b_sent_at"),
        updated_at=bindparam("b_sent_at"),
    )
)


async def due_heads(
    session: AsyncSession,
    now: datetime,
    limit: int,
    exclude: Sequence[str] = (),
    skip_channels: Sequence[str] = (),
) -> list[Row]:
    """Pending deliveries that are due and the oldest unfinished one of their recipient (see
    :func:`_due_heads_statement`), at most ``limit``, leaving out ``exclude`` (after the query: ids in
    flight are nearly always ``sending`` already) and the deliveries of ``skip_channels``."""
    values = {"now": now, "limit": limit, "skip_channels": list(skip_channels)}
    result = await session.execute(_DUE_HEADS, values)
    left_out = set(exclude)
    return [_row(r) for r in result.mappings().all() if r["id"] not in left_out]


async def mark_sending(session: AsyncSession, delivery_id: str, now: datetime) -> bool:
    result = await session.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.state == DeliveryState.PENDING.value)
        .values(state=DeliveryState.SENDING.value, attempts=deliveries.c.attempts + 1, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_sending_many(session: AsyncSession, delivery_ids: Sequence[str], now: datetime) -> set[str]:
    """Marks the still pending ones of these deliveries ``sending`` (attempts + 1); returns their ids."""
    if not delivery_ids:
        return set()
    statement = _MARK_SENDING_ARRAY if _postgres(session) else _MARK_SENDING
    result = await session.execute(statement, {"ids": list(delivery_ids), "now": now})
    return {str(found) for found in result.scalars().all()}


async def set_sent_many(session: AsyncSession, rows: Sequence[Row]) -> None:
    """Records several deliveries ``sent`` in one statement (executemany); each row holds ``id``,
    ``provider``, ``provider_message_id``, ``sent_at``."""
    if not rows:
        return
    await session.execute(
        _SET_SENT,
        [
            {
                "b_id": r["id"],
                "b_provider": r["provider"],
                "b_message_id": r["provider_message_id"],
                "b_sent_at": r["sent_at"],
            }
            for r in rows
        ],
    )


async def set_delivery(session: AsyncSession, delivery_id: str, **values: Any) -> None:
    await session.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))


async def stuck_sending(session: AsyncSession) -> list[Row]:
    query = select(deliveries).where(deliveries.c.state == DeliveryState.SENDING.value)
    return [_row(r) for r in (await session.execute(query)).mappings().all()]


async def for_trigger(session: AsyncSession, trigger_event_id: str) -> list[Row]:
    query = (
        select(deliveries)
        .where(deliveries.c.trigger_event_id == trigger_event_id)
        .order_by(deliveries.c.round, deliveries.c.created_at)
    )
    return [_row(r) for r in (await session.execute(query)).mappings().all()]


async def failures(session: AsyncSession, site: str | None, page: int, size: int) -> tuple[list[Row], int]:
    where = [deliveries.c.state == DeliveryState.FAILED.value]
    if site is not None:
        where.append(deliveries.c.site == site)
    total = int(
        (await session.execute(select(func.count()).select_from(deliveries).where(*where))).scalar_one()
    )
    query = (
        select(deliveries)
        .where(*where)
        .order_by(deliveries.c.updated_at.desc(), deliveries.c.id)
        .offset((page - 1) * size)
        .limit(size)
    )
    return [_row(r) for r in (await session.execute(query)).mappings().all()], total


async def by_provider_message(session: AsyncSession, provider: str, message_id: str) -> Row | None:
    query = select(deliveries).where(
        deliveries.c.provider == provider, deliveries.c.provider_message_id == message_id
    )
    row = (await session.execute(query)).mappings().first()
    return _row(row) if row is not None else None


async def last_round(session: AsyncSession, trigger_event_id: str, recipient_ref: str, kind: str) -> int:
    query = select(func.max(deliveries.c.round)).where(
        deliveries.c.trigger_event_id == trigger_event_id,
        deliveries.c.recipient_ref == recipient_ref,
        deliveries.c.message_kind == kind,
    )
    return int((await session.execute(query)).scalar_one() or 0)


# -- the queues' copy ("almost called") --------------------------------------------------------


async def queue_tickets_issued(session: AsyncSession, rows: Sequence[Row]) -> None:
    """Waiting tickets (one statement); a ticket already known is left as it is (a redelivery, or it
    was seen leaving first)."""
    if rows:
        insert = dialect_insert(session, queue_tickets).on_conflict_do_nothing(index_elements=["ticket_id"])
        await session.execute(insert, list(rows))


async def queue_ticket_left(session: AsyncSession, row: Row) -> None:
    """The ticket left its queue (called, cancelled, no-show, transferred). A ticket not seen yet is
    recorded as gone, so its issue consumed later (another partition) does not put it back."""
    insert = dialect_insert(session, queue_tickets).values(**row)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["ticket_id"],
            set_={
                "waiting": False,
                "left_at": func.coalesce(queue_tickets.c.left_at, insert.excluded.left_at),
                "updated_at": insert.excluded.updated_at,
            },
        )
    )


async def forget_queue_days(session: AsyncSession, before: date) -> int:
    """Drops the copy of queues older than ``before`` (a queue lasts one day)."""
    result = await session.execute(delete(queue_tickets).where(queue_tickets.c.day < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def queue_ticket(session: AsyncSession, ticket_id: str) -> Row | None:
    query = select(queue_tickets).where(queue_tickets.c.ticket_id == ticket_id)
    row = (await session.execute(query)).mappings().first()
    return _row(row) if row is not None else None


async def queue_head(session: AsyncSession, site: str, service_type: str, day: date, limit: int) -> list[Row]:
    """The first ``limit`` waiting tickets of a queue, in call order."""
    q = queue_tickets
    query = (
        select(q)
        .where(q.c.site == site, q.c.service_type == service_type, q.c.day == day, q.c.waiting.is_(True))
        .order_by(q.c.rank_ms, q.c.issued_at, q.c.ticket_id)
        .limit(limit)
    )
    return [_row(r) for r in (await session.execute(query)).mappings().all()]


async def mark_alerted(session: AsyncSession, ticket_ids: Sequence[str], now: datetime) -> None:
    if ticket_ids:
        await session.execute(
            update(queue_tickets)
            .where(queue_tickets.c.ticket_id.in_(list(ticket_ids)))
            .values(alerted=True, updated_at=now)
        )


async def links_for(session: AsyncSession, kind: str, keys: Sequence[str]) -> dict[str, str]:
    """Citizens linked to these keys (one query); keys without a link are left out."""
    if not keys:
        return {}
    query = select(recipient_links.c.key, recipient_links.c.citizen_ref).where(
        recipient_links.c.kind == kind, recipient_links.c.key.in_(list(keys))
    )
    return {str(k): str(c) for k, c in (await session.execute(query)).all()}
