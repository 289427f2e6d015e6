"""Appointments on PostgreSQL over HTTP: slots, booking under concurrency, cancel, check-in into the queue
and the missed sweep, with the events they leave in the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from mpp.contracts.topics import QUEUE_APPOINTMENTS
from mpp.kit.auth import Role
from mpp.queue.persistence.tables import appointment_days, appointment_slots, appointments
from mpp.queue.sweeper import sweep_once
from tests.integration.queue.harness import (
    KK,
    SITE,
    QueueApi,
    bearer,
    kiosk,
    officer,
    operator,
    running_queue,
)

pytestmark = pytest.mark.integration

WIB = ZoneInfo("Asia/Jakarta")
# The harness clock starts on Tuesday 3 November 2026, 09:15 in Jakarta.
TODAY = "2026-11-03"


def at(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00+07:00")


def citizen(subject: str = "citizen-1") -> dict[str, str]:
    return bearer(roles=[Role.CITIZEN], agency=None, site=None, subject=subject)


async def book(
    api: QueueApi, slot: datetime, headers: dict[str, str] | None = None, service_type: str = KK, **extra: Any
) -> httpx.Response:
    body = {"service_type": service_type, "slot_start": slot.isoformat(), **extra}
    return await api.client.post(
        "/v1/appointments", json=body, headers=citizen() if headers is None else headers
    )


async def booked(api: QueueApi, slot: datetime, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await book(api, slot, headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def slots(api: QueueApi, day_from: str, day_to: str, service_type: str = KK) -> dict[str, Any]:
    response = await api.client.get(
        "/v1/public/appointments/slots", params={"service_type": service_type, "from": day_from, "to": day_to}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def seats(listing: dict[str, Any], day: str, hhmm: str) -> dict[str, Any]:
    found = next(d for d in listing["days"] if d["date"] == day)
    slot: dict[str, Any] = next(s for s in found["slots"] if s["start"] == at(day, hhmm).isoformat())
    return slot


async def check_in(api: QueueApi, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.client.post(
        "/v1/appointments/check-in", json={"booking_code": code}, headers=headers or kiosk()
    )


class TestSlots:
    async def test_the_week_follows_the_calendar_and_hides_slots_that_started(self, queue: QueueApi) -> None:
        listing = await slots(queue, TODAY, "2026-11-08")

        by_day = {d["date"]: d for d in listing["days"]}
        today = [s["start"][11:16] for s in by_day[TODAY]["slots"]]
        assert today[0] == "09:30" and "09:00" not in today and "12:00" not in today
        assert len(by_day["2026-11-04"]["slots"]) == 14
        assert len(by_day["2026-11-07"]["slots"]) == 8  # the Saturday morning opening
        assert by_day["2026-11-08"] == {"date": "2026-11-08", "open": False, "slots": []}
        assert listing["quota_per_slot"] == 4
        assert {s["available"] for d in listing["days"] for s in d["slots"]} == {4}

    async def test_holidays_and_cuti_bersama_have_none(self, queue: QueueApi) -> None:
        queue.clock.advance(days=40)  # 13 December: the Christmas week is within the horizon

        listing = await slots(queue, "2026-12-23", "2026-12-26")

        opened = {d["date"]: d["open"] for d in listing["days"]}
        assert opened == {"2026-12-23": True, "2026-12-24": False, "2026-12-25": False, "2026-12-26": True}

    async def test_bad_ranges_and_services_get_a_clear_422(self, queue: QueueApi) -> None:
        path = "/v1/public/appointments/slots"
        backwards = await queue.client.get(
            path, params={"service_type": KK, "from": TODAY, "to": "2026-11-01"}
        )
        too_long = await queue.client.get(
            path, params={"service_type": KK, "from": TODAY, "to": "2026-12-31"}
        )
        unknown = await queue.client.get(path, params={"service_type": "x.y", "from": TODAY})
        not_online = await queue.client.get(path, params={"service_type": "disdukcapil.ikd", "from": TODAY})

        assert [r.status_code for r in (backwards, too_long, unknown, not_online)] == [422] * 4
        assert not_online.json()["error"]["message"] == "Layanan ini tidak dapat dipesan secara daring"


class TestBooking:
    async def test_a_citizen_books_and_the_event_carries_no_personal_data(self, queue: QueueApi) -> None:
        slot = at("2026-11-04", "10:00")

        appointment = await booked(queue, slot, citizen("citizen-77"))

        assert appointment["state"] == "booked"
        assert len(appointment["booking_code"]) == 8
        assert appointment["checkin_opens"] == at("2026-11-04", "09:30").isoformat()
        events = await queue.events(appointment["id"])
        assert [(e.topic, e.event_type) for e in events] == [(QUEUE_APPOINTMENTS, "AppointmentBooked")]
        payload = events[0].payload
        assert payload["booking_code"] == appointment["booking_code"]
        assert payload["channel"] == "online"
        assert "citizen-77" not in str(payload) and payload["citizen_ref"].startswith("c")
        assert seats(await slots(queue, "2026-11-04", "2026-11-04"), "2026-11-04", "10:00")["available"] == 3
        public = await queue.client.get(f"/v1/public/appointments/{appointment['booking_code'].lower()}")
        assert public.json()["id"] == appointment["id"]

    async def test_an_idempotency_key_replays_the_booking(self, queue: QueueApi) -> None:
        headers = {**citizen(), "Idempotency-Key": "booking-press-0001"}
        slot = at("2026-11-04", "10:00")

        first = await book(queue, slot, headers)
        again = await book(queue, slot, headers)
        other = await book(queue, at("2026-11-04", "10:30"), headers)

        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        assert other.status_code == 422
        assert seats(await slots(queue, "2026-11-04", "2026-11-04"), "2026-11-04", "10:00")["booked"] == 1

    async def test_slots_that_are_not_bookable_are_refused(self, queue: QueueApi) -> None:
        refused = {
            "break": await book(queue, at("2026-11-04", "12:00")),
            "off boundary": await book(queue, at("2026-11-04", "10:10")),
            "holiday": await book(queue, at("2026-12-25", "10:00")),
            "started": await book(queue, at(TODAY, "09:00")),
            "too far": await book(queue, at("2026-12-30", "10:00")),
            "walk-in channel": await book(queue, at("2026-11-04", "10:00"), channel="walk_in"),
        }

        assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 422)
        assert refused["too far"].json()["error"]["message"].startswith("Slot hanya dapat dipesan")

    async def test_one_active_appointment_per_citizen_service_and_day(self, queue: QueueApi) -> None:
        await booked(queue, at("2026-11-04", "10:00"))

        second = await book(queue, at("2026-11-04", "13:00"))
        other_day = await book(queue, at("2026-11-05", "13:00"))

        assert second.status_code == 409 and second.json()["error"]["code"] == "already_booked"
        assert other_day.status_code == 201

    async def test_staff_book_for_someone_at_their_site_only(self, queue: QueueApi) -> None:
        reception = await book(
            queue, at("2026-11-04", "10:00"), operator(), citizen_ref="ref-of-a-citizen-01"
        )
        elsewhere = await book(queue, at("2026-11-04", "10:00"), officer(), site="mpp-kota-lain")
        own_ref = await book(queue, at("2026-11-04", "10:00"), citizen(), citizen_ref="ref-of-a-citizen-01")
        ministry = await book(
            queue,
            at("2026-11-04", "10:00"),
            bearer(roles=[Role.MINISTRY], agency=None, site=None, subject="m"),
        )

        assert reception.status_code == 201
        assert (await queue.events(reception.json()["id"]))[0].payload["citizen_ref"] == "ref-of-a-citizen-01"
        assert (elsewhere.status_code, own_ref.status_code, ministry.status_code) == (403, 422, 403)
        assert (await book(queue, at("2026-11-04", "10:00"), {})).status_code == 401


@pytest.fixture
async def tight_quota(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[QueueApi]:
    """Five seats a slot and six a day."""
    async with running_queue(
        await fresh_database(), pool_size=25, appointment_quota_per_slot=5, appointment_quota_per_day=6
    ) as api:
        yield api


async def _count(api: QueueApi, table: Any, column: Any, **where: Any) -> int:
    query = select(column).select_from(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    async with api.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


class TestQuotaUnderConcurrency:
    async def test_twenty_concurrent_bookings_for_the_last_two_seats_of_a_slot(
        self, tight_quota: QueueApi
    ) -> None:
        slot = at("2026-11-04", "10:00")
        for n in range(3):
            await booked(tight_quota, slot, citizen(f"early-{n}"))

        responses = await asyncio.gather(
            *(book(tight_quota, slot, citizen(f"rush-{n:02d}")) for n in range(20))
        )

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * 2 + [409] * 18
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"quota_full"}
        assert await _count(tight_quota, appointments, func.count(), state="booked") == 5
        taken = await _count(tight_quota, appointment_slots, appointment_slots.c.booked, slot_start=slot)
        assert taken == 5
        assert (
            seats(await slots(tight_quota, "2026-11-04", "2026-11-04"), "2026-11-04", "10:00")["available"]
            == 0
        )

    async def test_twenty_concurrent_bookings_across_slots_respect_the_day_quota(
        self, tight_quota: QueueApi
    ) -> None:
        starts = ["08:00", "08:30", "09:00", "09:30", "10:00", "13:00", "13:30", "14:00", "14:30", "15:00"]
        await booked(tight_quota, at("2026-11-05", "15:30"), citizen("early-0"))

        responses = await asyncio.gather(
            *(
                book(tight_quota, at("2026-11-05", starts[n % 10]), citizen(f"rush-{n:02d}"))
                for n in range(20)
            )
        )

        assert sorted(r.status_code for r in responses) == [201] * 5 + [409] * 15
        day_count = await _count(tight_quota, appointment_days, appointment_days.c.booked, day="2026-11-05")
        assert day_count == 6
        assert await _count(tight_quota, appointments, func.count(), day="2026-11-05") == 6

    async def test_a_cancelled_seat_can_be_booked_again(self, tight_quota: QueueApi) -> None:
        slot = at("2026-11-04", "10:00")
        first = [await booked(tight_quota, slot, citizen(f"c-{n}")) for n in range(5)]
        full = await book(tight_quota, slot, citizen("late-comer"))

        cancelled = await tight_quota.client.post(
            f"/v1/appointments/{first[0]['id']}/cancel", headers=citizen("c-0")
        )
        retry = await book(tight_quota, slot, citizen("late-comer"))

        assert (full.status_code, cancelled.status_code, retry.status_code) == (409, 200, 201)


class TestCancel:
    async def test_the_booker_cancels_and_the_seat_comes_back(self, queue: QueueApi) -> None:
        appointment = await booked(queue, at("2026-11-04", "10:00"))

        response = await queue.client.post(f"/v1/appointments/{appointment['id']}/cancel", headers=citizen())

        assert response.status_code == 200 and response.json()["state"] == "cancelled"
        events = await queue.events(appointment["id"])
        assert [e.event_type for e in events] == ["AppointmentBooked", "AppointmentCancelled"]
        assert events[1].payload["cancelled_by"] == "citizen"
        assert seats(await slots(queue, "2026-11-04", "2026-11-04"), "2026-11-04", "10:00")["booked"] == 0

    async def test_staff_of_the_agency_cancel_others_do_not_see_it(self, queue: QueueApi) -> None:
        appointment = await booked(queue, at("2026-11-04", "10:00"))
        path = f"/v1/appointments/{appointment['id']}/cancel"

        stranger = await queue.client.post(path, headers=citizen("someone-else"))
        other_agency = await queue.client.post(path, headers=officer(agency="dpmptsp"))
        own_agency = await queue.client.post(path, json={"reason_code": "counter_closed"}, headers=officer())
        again = await queue.client.post(path, headers=officer())

        assert (stranger.status_code, other_agency.status_code) == (404, 404)
        assert own_agency.status_code == 200
        last = (await queue.events(appointment["id"]))[-1]
        assert (last.payload["cancelled_by"], last.payload["reason_code"]) == ("officer", "counter_closed")
        assert again.status_code == 409

    async def test_no_cancelling_once_the_slot_started(self, queue: QueueApi) -> None:
        appointment = await booked(queue, at(TODAY, "10:00"))
        queue.clock.advance(minutes=45)  # 10:00

        response = await queue.client.post(f"/v1/appointments/{appointment['id']}/cancel", headers=citizen())

        assert response.status_code == 409


class TestCheckIn:
    async def test_the_appointment_joins_the_queue_at_its_slot_start(self, queue: QueueApi) -> None:
        appointment = await booked(queue, at(TODAY, "10:00"))
        await queue.open_counter("loket-03", officer(subject="o3"))
        queue.clock.advance(minutes=25)  # 09:40: early, within the window

        checked = await check_in(queue, appointment["booking_code"])
        queue.clock.advance(minutes=10)  # 09:50
        before_slot = await queue.ticket(KK)
        queue.clock.advance(minutes=5)  # 09:55: the appointment is not callable yet
        first_call = await queue.call_next("loket-03", officer(subject="o3"))
        await queue.act(first_call.json()["ticket"]["id"], "start", officer(subject="o3"))
        await queue.act(first_call.json()["ticket"]["id"], "complete", officer(subject="o3"))
        queue.clock.advance(minutes=3)  # 09:58
        walk_in_before = await queue.ticket(KK)
        queue.clock.advance(minutes=2, seconds=30)  # 10:00:30
        walk_in_after = await queue.ticket(KK)
        queue.clock.advance(seconds=30)
        order = []
        for _ in range(3):
            called = (await queue.call_next("loket-03", officer(subject="o3"))).json()["ticket"]
            order.append(called["id"])
            await queue.act(called["id"], "start", officer(subject="o3"))
            await queue.act(called["id"], "complete", officer(subject="o3"))

        assert checked.status_code == 201, checked.text
        body = checked.json()
        ticket = body["ticket"]
        assert body["appointment"]["state"] == "checked_in"
        assert datetime.fromisoformat(ticket["queued_at"]) == at(TODAY, "10:00")
        assert first_call.json()["ticket"]["id"] == before_slot["id"]
        assert order == [walk_in_before["id"], ticket["id"], walk_in_after["id"]]
        events = await queue.events(appointment["id"])
        assert [e.event_type for e in events] == ["AppointmentBooked", "AppointmentCheckedIn"]
        assert events[1].payload["offset_seconds"] == -20 * 60
        assert events[1].payload["ticket_id"] == ticket["id"]
        visit_events = await queue.events(body["visit_id"])
        assert visit_events[0].event_type == "VisitStarted"
        assert visit_events[0].payload["appointment_id"] == appointment["id"]
        assert visit_events[1].payload["appointment_id"] == appointment["id"]
        assert visit_events[-1].event_type == "VisitEnded"

    async def test_outside_the_window_and_twice_are_refused(self, queue: QueueApi) -> None:
        appointment = await booked(queue, at(TODAY, "10:00"))
        code = appointment["booking_code"]

        queue.clock.advance(minutes=14)  # 09:29, 31 minutes early
        early = await check_in(queue, code)
        queue.clock.advance(minutes=1)  # 09:30
        on_time = await check_in(queue, code)
        twice = await check_in(queue, code)
        late_one = await booked(queue, at(TODAY, "10:30"), citizen("late-citizen"))
        queue.clock.advance(minutes=76)  # 10:46
        late = await check_in(queue, late_one["booking_code"])

        assert early.status_code == 409 and early.json()["error"]["code"] == "outside_checkin_window"
        assert early.json()["error"]["message"] == "Check-in belum dibuka untuk janji temu ini"
        assert on_time.status_code == 201
        assert twice.status_code == 409
        assert late.status_code == 409
        assert late.json()["error"]["message"] == "Waktu check-in janji temu ini sudah lewat"

    async def test_only_devices_and_staff_of_the_site_check_in(self, queue: QueueApi) -> None:
        appointment = await booked(queue, at(TODAY, "09:30"))
        code = appointment["booking_code"]

        from_home = await check_in(queue, code, citizen())
        other_site = await check_in(queue, code, kiosk("mpp-kota-lain"))
        unknown = await check_in(queue, "ZZZZZZZZ")
        reception = await check_in(queue, code.lower(), operator())

        assert (from_home.status_code, other_site.status_code, unknown.status_code) == (403, 404, 404)
        assert reception.status_code == 201


class TestMissedSweep:
    async def test_the_sweep_marks_appointments_whose_window_passed_once(self, queue: QueueApi) -> None:
        due = await booked(queue, at(TODAY, "10:00"))
        later = await booked(queue, at(TODAY, "10:30"), citizen("citizen-2"))
        queue.clock.advance(minutes=60)  # 10:15: the 10:00 window closes at 10:15, still open
        none_yet = await queue.client.post("/v1/appointments/missed-sweep", headers=operator())
        queue.clock.advance(seconds=1)

        swept = await queue.client.post("/v1/appointments/missed-sweep", headers=operator())
        again = await sweep_once(queue.app.state.queue)

        assert none_yet.json()["count"] == 0
        assert swept.json() == {"missed": [due["id"]], "count": 1}
        assert again == 0
        events = await queue.events(due["id"])
        assert [e.event_type for e in events] == ["AppointmentBooked", "AppointmentMissed"]
        assert events[1].payload["window_closed_at"].startswith("2026-11-03T03:15:00")
        status = await queue.client.get(f"/v1/public/appointments/{due['booking_code']}")
        assert status.json()["state"] == "missed"
        assert (await check_in(queue, due["booking_code"])).status_code == 409
        assert (await queue.events(later["id"]))[-1].event_type == "AppointmentBooked"

    async def test_the_background_sweeper_marks_them_by_itself(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        async with running_queue(await fresh_database(), appointment_sweep_seconds=0.05) as api:
            appointment = await booked(api, at(TODAY, "10:00"))
            api.clock.advance(hours=2)
            for _ in range(100):
                status = await api.client.get(f"/v1/public/appointments/{appointment['booking_code']}")
                if status.json()["state"] == "missed":
                    break
                await asyncio.sleep(0.05)

            assert status.json()["state"] == "missed"


async def test_staff_list_the_day_of_their_agency(queue: QueueApi) -> None:
    await booked(queue, at("2026-11-04", "10:00"))
    await booked(queue, at("2026-11-04", "10:00"), citizen("c-2"))
    nib = await book(queue, at("2026-11-04", "09:00"), citizen("c-3"), service_type="dpmptsp.nib")
    assert nib.status_code == 201

    mine = await queue.client.get("/v1/appointments", params={"day": "2026-11-04"}, headers=officer())
    site = await queue.client.get("/v1/appointments", params={"day": "2026-11-04"}, headers=operator())
    foreign = await queue.client.get(
        "/v1/appointments", params={"day": "2026-11-04", "agency": "dpmptsp"}, headers=officer()
    )

    assert mine.json()["total"] == 2 and {a["agency"] for a in mine.json()["items"]} == {"disdukcapil"}
    assert site.json()["total"] == 3
    assert [a["slot_start"][11:16] for a in site.json()["items"]] == ["09:00", "10:00", "10:00"]
    assert foreign.status_code == 403
    assert "citizen_ref" not in mine.json()["items"][0] and mine.json()["items"][0]["site"] == SITE
