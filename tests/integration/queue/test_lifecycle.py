"""A visit from the kiosk to the last completed ticket, over HTTP, with the events it leaves in the outbox."""

from __future__ import annotations

import pytest

from mpp.contracts.topics import QUEUE_COUNTERS, QUEUE_VISITS
from tests.integration.queue.harness import KK, KTP, NIB, SITE, QueueApi, kiosk, officer

pytestmark = pytest.mark.integration


class TestStartVisit:
    async def test_each_service_gets_a_numbered_ticket_and_the_events_are_in_the_outbox(
        self, queue: QueueApi
    ) -> None:
        visit = await queue.start_visit(KTP, KK, priority_group="lansia")

        assert [t["number"] for t in visit["tickets"]] == ["A-001", "B-001"]
        assert {t["priority_group"] for t in visit["tickets"]} == {"lansia"}
        events = await queue.events(visit["visit_id"])
        assert [e.event_type for e in events] == ["VisitStarted", "TicketIssued", "TicketIssued"]
        assert {e.topic for e in events} == {QUEUE_VISITS}
        assert events[1].payload["ticket_number"] == "A-001"
        assert events[1].payload["agency"] == "disdukcapil"

    async def test_numbers_follow_the_prefix_and_restart_the_next_local_day(self, queue: QueueApi) -> None:
        first = await queue.ticket(KTP)
        second = await queue.ticket("disdukcapil.ikd")  # same prefix A
        queue.clock.advance(hours=15)  # past midnight in Jakarta (UTC+7)
        next_day = await queue.ticket(KTP)

        assert (first["number"], second["number"], next_day["number"]) == ("A-001", "A-002", "A-001")

    async def test_a_repeated_idempotency_key_returns_the_same_visit(self, queue: QueueApi) -> None:
        headers = {**kiosk(), "Idempotency-Key": "kiosk-press-000001"}
        body = {"service_types": [NIB]}
        first = await queue.client.post("/v1/visits", json=body, headers=headers)
        again = await queue.client.post("/v1/visits", json=body, headers=headers)
        other = await queue.client.post("/v1/visits", json={"service_types": [KK]}, headers=headers)

        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_reused"

    async def test_an_unknown_service_type_is_refused_in_bahasa_indonesia(self, queue: QueueApi) -> None:
        response = await queue.client.post(
            "/v1/visits", json={"service_types": ["disdukcapil.tidak-ada"]}, headers=kiosk()
        )

        assert response.status_code == 422
        assert response.json()["error"]["message"] == "Jenis layanan tidak dikenal"

    async def test_personal_data_is_not_accepted(self, queue: QueueApi) -> None:
        response = await queue.client.post(
            "/v1/visits", json={"service_types": [KTP], "nik": "3298014501900001"}, headers=kiosk()
        )

        assert response.status_code == 422


class TestServeTicket:
    async def test_call_start_complete_carries_the_durations_and_ends_the_visit(
        self, queue: QueueApi
    ) -> None:
        visit = await queue.start_visit(KTP)
        ticket_id = visit["tickets"][0]["id"]
        await queue.open_counter("loket-01", officer())
        queue.clock.advance(minutes=12)
        called = await queue.call_next("loket-01", officer())
        queue.clock.advance(seconds=90)
        started = await queue.act(ticket_id, "start", officer())
        queue.clock.advance(minutes=7)
        completed = await queue.act(ticket_id, "complete", officer())

        assert called.json()["ticket"]["id"] == ticket_id
        assert started.json()["state"] == "serving"
        assert completed.json()["state"] == "completed"
        events = await queue.events(visit["visit_id"])
        assert [e.event_type for e in events] == [
            "VisitStarted",
            "TicketIssued",
            "TicketCalled",
            "ServiceStarted",
            "ServiceCompleted",
            "VisitEnded",
        ]
        done = events[4].payload
        assert (done["waiting_seconds"], done["walking_seconds"], done["service_seconds"]) == (720, 90, 420)
        assert done["total_seconds"] == 720 + 90 + 420
        assert done["counter"] == "loket-01"
        assert events[5].payload["duration_seconds"] == 720 + 90 + 420
        assert (events[5].payload["tickets"], events[5].payload["tickets_served"]) == (1, 1)

    async def test_the_visit_ends_only_after_its_last_ticket(self, queue: QueueApi) -> None:
        visit = await queue.start_visit(KTP, NIB)
        ktp, nib = (t["id"] for t in visit["tickets"])
        await queue.open_counter("loket-01", officer())
        await queue.call_next("loket-01", officer())
        await queue.act(ktp, "start", officer())
        await queue.act(ktp, "complete", officer())
        before = await queue.event_types(visit["visit_id"])
        cancelled = await queue.client.post(f"/v1/public/tickets/{nib}/cancel")

        assert "VisitEnded" not in before
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        events = await queue.events(visit["visit_id"])
        assert events[-2].event_type == "TicketCancelled"
        assert events[-2].payload["cancelled_by"] == "citizen"
        assert events[-1].event_type == "VisitEnded"
        assert (events[-1].payload["tickets"], events[-1].payload["tickets_served"]) == (2, 1)

    async def test_recall_up_to_the_limit_then_no_show(self, queue: QueueApi) -> None:
        ticket = await queue.ticket(KTP)
        await queue.open_counter("loket-01", officer())
        await queue.call_next("loket-01", officer())
        recalls = [await queue.act(ticket["id"], "recall", officer()) for _ in range(3)]
        no_show = await queue.act(ticket["id"], "no-show", officer())

        assert [r.status_code for r in recalls] == [200, 200, 409]
        assert recalls[1].json()["call_count"] == 3
        assert "tidak hadir" in recalls[2].json()["error"]["message"]
        assert no_show.json()["state"] == "no_show"
        types = await queue.event_types(ticket["visit_id"])
        assert types.count("TicketCalled") == 3
        assert types[-2:] == ["TicketNoShow", "VisitEnded"]

    async def test_a_wrong_state_is_a_409_conflict(self, queue: QueueApi) -> None:
        ticket = await queue.ticket(KTP)

        response = await queue.act(ticket["id"], "complete", officer())

        assert response.status_code == 409
        assert response.json()["error"]["details"]["current_state"] == "waiting"

    async def test_a_counter_calls_again_only_after_its_ticket_is_done(self, queue: QueueApi) -> None:
        await queue.ticket(KTP)
        await queue.ticket(KTP)
        await queue.open_counter("loket-01", officer())
        await queue.call_next("loket-01", officer())

        again = await queue.call_next("loket-01", officer())

        assert again.status_code == 409
        assert "A-001" in again.json()["error"]["message"]

    async def test_call_next_on_an_empty_queue_says_so(self, queue: QueueApi) -> None:
        await queue.open_counter("loket-01", officer())

        response = await queue.call_next("loket-01", officer())

        assert response.status_code == 200
        assert response.json()["ticket"] is None


class TestCounters:
    async def test_open_and_close_publish_counter_events(self, queue: QueueApi) -> None:
        await queue.open_counter("loket-03", officer(), service_types=[KK])
        await queue.ticket(KK)
        ticket = (await queue.call_next("loket-03", officer())).json()["ticket"]
        await queue.act(ticket["id"], "start", officer())
        await queue.act(ticket["id"], "complete", officer())
        closed = await queue.client.post(
            "/v1/counters/loket-03/close", json={"reason": "break"}, headers=officer()
        )

        assert closed.status_code == 200
        assert closed.json()["open"] is False
        events = await queue.events(f"{SITE}.loket-03")
        assert [e.event_type for e in events] == ["CounterOpened", "CounterClosed"]
        assert {e.topic for e in events} == {QUEUE_COUNTERS}
        assert events[0].payload["service_types"] == [KK]
        assert events[1].payload["tickets_served"] == 1
        assert events[1].payload["reason"] == "break"

    async def test_a_closed_counter_does_not_call(self, queue: QueueApi) -> None:
        await queue.ticket(KTP)

        response = await queue.call_next("loket-01", officer())

        assert response.status_code == 409

    async def test_a_counter_calls_only_the_services_it_opened_for(self, queue: QueueApi) -> None:
        await queue.ticket(KK)
        await queue.open_counter("loket-03", officer(), service_types=["disdukcapil.ktp-el-cetak"])

        response = await queue.call_next("loket-03", officer())

        assert response.json()["ticket"] is None

    async def test_a_service_the_counter_does_not_serve_is_refused(self, queue: QueueApi) -> None:
        response = await queue.client.post(
            "/v1/counters/loket-01/open", json={"service_types": [KK]}, headers=officer()
        )

        assert response.status_code == 422
