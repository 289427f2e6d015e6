"""Queries of appointments and of the seats they take."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.db import dialect_insert
from mpp.queue.domain.appointments import Appointment, AppointmentState
from mpp.queue.persistence.repository import _aware
from mpp.queue.persistence.tables import appointment_days, appointment_slots, appointments


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps the wall time without its offset: everything is stored in UTC.
    return None if value is None else value.astimezone(UTC)


def _at(value: datetime) -> datetime:
    return value.astimezone(UTC)


ACTIVE = (AppointmentState.BOOKED.value, AppointmentState.CHECKED_IN.value)


def _appointment(row: RowMapping) -> Appointment:
    slot_start, slot_end, booked_at = (_aware(row[k]) for k in ("slot_start", "slot_end", "booked_at"))
    assert slot_start is not None and slot_end is not None and booked_at is not None
    return Appointment(
        id=row["id"],
        booking_code=row["booking_code"],
        site=row["site"],
        service_type=row["service_type"],
        agency=row["agency"],
        day=row["day"],
        slot_start=slot_start,
        slot_end=slot_end,
        channel=row["channel"],
        citizen_ref=row["citizen_ref"],
        booker=row["booker"],
        booked_at=booked_at,
        state=AppointmentState(row["state"]),
        cancelled_at=_aware(row["cancelled_at"]),
        cancelled_by=row["cancelled_by"],
        checked_in_at=_aware(row["checked_in_at"]),
        missed_at=_aware(row["missed_at"]),
        visit_id=row["visit_id"],
        ticket_id=row["ticket_id"],
    )


def _mutable(a: Appointment) -> dict[str, Any]:
    return {
        "state": a.state.value,
        "cancelled_at": _utc(a.cancelled_at),
        "cancelled_by": a.cancelled_by,
        "checked_in_at": _utc(a.checked_in_at),
        "missed_at": _utc(a.missed_at),
        "visit_id": a.visit_id,
        "ticket_id": a.ticket_id,
    }


class AppointmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, a: Appointment) -> None:
        await self._s.execute(
            appointments.insert().values(
                id=a.id,
                booking_code=a.booking_code,
                site=a.site,
                service_type=a.service_type,
                agency=a.agency,
                day=a.day,
                slot_start=_at(a.slot_start),
                slot_end=_at(a.slot_end),
                channel=a.channel,
                citizen_ref=a.citizen_ref,
                booker=a.booker,
                booked_at=_at(a.booked_at),
                **_mutable(a),
            )
        )

    async def save(self, a: Appointment) -> None:
        await self._s.execute(update(appointments).where(appointments.c.id == a.id).values(**_mutable(a)))

    async def get(self, appointment_id: str, *, lock: bool = False) -> Appointment | None:
        query = select(appointments).where(appointments.c.id == appointment_id)
        if lock:
            query = query.with_for_update()
        row = (await self._s.execute(query)).mappings().first()
        return None if row is None else _appointment(row)

    async def by_code(self, code: str, *, lock: bool = False) -> Appointment | None:
        query = select(appointments).where(appointments.c.booking_code == code)
        if lock:
            query = query.with_for_update()
        row = (await self._s.execute(query)).mappings().first()
        return None if row is None else _appointment(row)

    async def code_taken(self, code: str) -> bool:
        query = select(func.count()).select_from(appointments).where(appointments.c.booking_code == code)
        return int((await self._s.execute(query)).scalar_one()) > 0

    async def active_for(self, citizen_ref: str, service_type: str, day: str) -> Appointment | None:
        query = select(appointments).where(
            appointments.c.citizen_ref == citizen_ref,
            appointments.c.service_type == service_type,
            appointments.c.day == day,
            appointments.c.state.in_(ACTIVE),
        )
        row = (await self._s.execute(query.limit(1))).mappings().first()
        return None if row is None else _appointment(row)

    async def of_day(
        self, *, site: str, day: str, agency: str | None, service_type: str | None, offset: int, limit: int
    ) -> tuple[list[Appointment], int]:
        conditions = [appointments.c.site == site, appointments.c.day == day]
        if agency is not None:
            conditions.append(appointments.c.agency == agency)
        if service_type is not None:
            conditions.append(appointments.c.service_type == service_type)
        total = int(
            (
                await self._s.execute(select(func.count()).select_from(appointments).where(*conditions))
            ).scalar_one()
        )
        query = (
            select(appointments)
            .where(*conditions)
            .order_by(appointments.c.slot_start, appointments.c.booked_at, appointments.c.id)
            .offset(offset)
            .limit(limit)
        )
        return [_appointment(r) for r in (await self._s.execute(query)).mappings().all()], total

    async def lock_overdue(self, before: datetime, *, site: str | None, limit: int) -> list[Appointment]:
        """Booked appointments whose slot started before ``before``, locked (others' rows skipped)."""
        query = (
            select(appointments)
            .where(
                appointments.c.state == AppointmentState.BOOKED.value,
                appointments.c.slot_start < _at(before),
                *([] if site is None else [appointments.c.site == site]),
            )
            .order_by(appointments.c.slot_start, appointments.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_appointment(r) for r in (await self._s.execute(query)).mappings().all()]

    # Seats. Every transaction takes the slot row before the day row, so two bookings never deadlock.

    async def take_seat(
        self,
        *,
        site: str,
        service_type: str,
        slot_start: datetime,
        day: str,
        per_slot: int,
        per_day: int | None,
    ) -> str | None:
        """Take one seat of the slot (and of the day); None when done, else which quota is used up.

        The increment is conditional on the count being below the quota: on PostgreSQL a concurrent
        booking waits for the row lock and re-checks the condition on the committed count, so the quota
        holds whatever the concurrency. SQLite serializes the service's writers.
        """
        slot_key = {"site": site, "service_type": service_type, "slot_start": _at(slot_start)}
        if not await self._increment(appointment_slots, slot_key, per_slot):
            return "slot"
        if per_day is not None:
            day_key = {"site": site, "service_type": service_type, "day": day}
            if not await self._increment(appointment_days, day_key, per_day):
                return "day"
        return None

    async def give_back_seat(self, *, site: str, service_type: str, slot_start: datetime, day: str) -> None:
        for table, key in (
            (appointment_slots, {"site": site, "service_type": service_type, "slot_start": _at(slot_start)}),
            (appointment_days, {"site": site, "service_type": service_type, "day": day}),
        ):
            await self._s.execute(
                update(table)
                .where(*(table.c[k] == v for k, v in key.items()), table.c.booked > 0)
                .values(booked=table.c.booked - 1)
            )

    async def seats_taken(
        self, *, site: str, service_type: str, slot_from: datetime, slot_to: datetime
    ) -> dict[datetime, int]:
        query = select(appointment_slots.c.slot_start, appointment_slots.c.booked).where(
            appointment_slots.c.site == site,
            appointment_slots.c.service_type == service_type,
            appointment_slots.c.slot_start >= _at(slot_from),
            appointment_slots.c.slot_start < _at(slot_to),
        )
        out: dict[datetime, int] = {}
        for start, booked in (await self._s.execute(query)).all():
            aware = _aware(start)
            assert aware is not None
            out[aware] = int(booked)
        return out

    async def days_taken(self, *, site: str, service_type: str, days: list[str]) -> dict[str, int]:
        query = select(appointment_days.c.day, appointment_days.c.booked).where(
            appointment_days.c.site == site,
            appointment_days.c.service_type == service_type,
            appointment_days.c.day.in_(days),
        )
        return {day: int(booked) for day, booked in (await self._s.execute(query)).all()}

    async def _increment(self, table: Any, key: dict[str, Any], quota: int) -> bool:
        insert = dialect_insert(self._s, table).values(**key, booked=0)
        await self._s.execute(insert.on_conflict_do_nothing(index_elements=[table.c[k] for k in key]))
        result = await self._s.execute(
            update(table)
            .where(*(table.c[k] == v for k, v in key.items()), table.c.booked < quota)
            .values(booked=table.c.booked + 1)
            .returning(table.c.booked)
        )
        return result.first() is not None
