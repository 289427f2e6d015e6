"""Transfers within a visit, the stored call-next decision and the ordering policy over HTTP."""

from __future__ import annotations

import pytest

from tests.integration.queue.harness import KK, KTP, NIB, QueueApi, officer, operator, supervisor

pytestmark = pytest.mark.integration


class TestTransfer:
    async def test_a_referral_continues_the_visit_in_the_other_agency_queue(self, queue: QueueApi) -> None:
        visit = await queue.start_visit(KTP, priority_group="ibu_hamil")
        ktp = visit["tickets"][0]
        await queue.open_counter("loket-01", officer())
        queue.clock.advance(minutes=8)
        await queue.call_next("loket-01", officer())
        await queue.act(ktp["id"], "start", officer())
        queue.clock.advance(minutes=2)

        response = await queue.act(ktp["id"], "transfer", officer(), to_service_type=NIB, reason="perlu NIB")

        assert response.status_code == 200, response.text
        old, new = response.json()["ticket"], response.json()["new_ticket"]
        assert old["state"] == "transferred"
        assert old["transferred_to"] == new["id"]
        assert (new["visit_id"], new["agency"], new["number"]) == (visit["visit_id"], "dpmptsp", "C-001")
        assert new["priority_group"] == "ibu_hamil"
        assert new["transferred_from"] == ktp["id"]
        events = await queue.events(visit["visit_id"])
        assert [e.event_type for e in events][-2:] == ["TicketTransferred", "TicketIssued"]
        moved = events[-2].payload
        assert (moved["from_agency"], moved["to_agency"], moved["to_ticket_number"]) == (
            "disdukcapil",
            "dpmptsp",
            "C-001",
        )
        assert events[-1].payload["transferred_from"] == ktp["id"]
        assert "VisitEnded" not in [e.event_type for e in events]

    async def test_the_transferred_ticket_joins_ahead_of_recent_arrivals_only(self, queue: QueueApi) -> None:
        early = await queue.ticket(NIB)  # waits 30 minutes in the target queue
        queue.clock.advance(minutes=10)
        ktp = await queue.ticket(KTP)
        queue.clock.advance(minutes=15)
        recent = await queue.ticket(NIB)  # arrives 5 minutes before the transfer
        await queue.open_counter("loket-01", officer())
        queue.clock.advance(minutes=5)
        await queue.call_next("loket-01", officer())  # the KTP ticket waited 20 minutes: credit capped at 15
        moved = (await queue.act(ktp["id"], "transfer", officer(), to_service_type=NIB)).json()["new_ticket"]

        waiting = await queue.client.get(
            "/v1/queues/waiting", params={"agency": "dpmptsp"}, headers=officer("dpmptsp")
        )

        assert [t["id"] for t in waiting.json()["items"]] == [early["id"], moved["id"], recent["id"]]

    async def test_a_finished_ticket_cannot_be_transferred(self, queue: QueueApi) -> None:
        ticket = await queue.ticket(KTP)
        await queue.client.post(f"/v1/public/tickets/{ticket['id']}/cancel")

        response = await queue.act(ticket["id"], "transfer", officer(), to_service_type=NIB)

        assert response.status_code == 409


class TestDecision:
    async def test_the_decision_says_why_the_ticket_was_chosen(self, queue: QueueApi) -> None:
        first = await queue.ticket(KTP)
        queue.clock.advance(minutes=5)
        lansia = await queue.ticket(KTP, priority_group="lansia")
        await queue.open_counter("loket-01", officer())
        queue.clock.advance(minutes=1)
        called = (await queue.call_next("loket-01", officer())).json()["ticket"]

        response = await queue.client.get(f"/v1/tickets/{called['id']}/decision", headers=officer())

        assert called["id"] == lansia["id"]
        decision = response.json()["decision"]
        assert decision["rule"] == "highest_score"
        assert decision["chosen"] == lansia["id"]
        assert decision["counter"] == "loket-01"
        assert decision["candidates"][0]["score"] == 31.0
        assert first["id"] != called["id"]

    async def test_another_agency_cannot_read_the_decision(self, queue: QueueApi) -> None:
        await queue.ticket(KTP)
        await queue.open_counter("loket-01", officer())
        called = (await queue.call_next("loket-01", officer())).json()["ticket"]

        response = await queue.client.get(f"/v1/tickets/{called['id']}/decision", headers=officer("dpmptsp"))

        assert response.status_code == 404


class TestPolicy:
    async def test_a_supervisor_sets_the_agency_policy_and_waiting_tickets_follow_it(
        self, queue: QueueApi
    ) -> None:
        regular = await queue.ticket(KK)
        queue.clock.advance(minutes=1)
        child = await queue.ticket(KK, priority_group="anak")
        put = await queue.client.put(
            "/v1/policies/agencies/disdukcapil",
            json={"weights": {"anak": 0}, "ageing_per_minute": 1},
            headers=supervisor(),
        )
        await queue.open_counter("loket-03", officer())
        called = (await queue.call_next("loket-03", officer())).json()["ticket"]

        assert put.status_code == 200, put.text
        assert put.json()["source"] == "own"
        assert called["id"] == regular["id"] != child["id"]

    async def test_the_every_nth_rule_sends_a_call_to_the_priority_lane(self, queue: QueueApi) -> None:
        await queue.client.put(
            "/v1/policies/agencies/disdukcapil",
            json={"weights": {}, "priority_every_nth": 2},
            headers=supervisor(),
        )
        regulars = [await queue.ticket(KK) for _ in range(3)]
        lansia = await queue.ticket(KK, priority_group="lansia")
        await queue.open_counter("loket-03", officer())
        order = []
        for _ in range(2):
            ticket = (await queue.call_next("loket-03", officer())).json()["ticket"]
            await queue.act(ticket["id"], "no-show", officer())
            order.append(ticket["id"])

        assert order == [regulars[0]["id"], lansia["id"]]
        decision = await queue.client.get(f"/v1/tickets/{lansia['id']}/decision", headers=officer())
        assert decision.json()["decision"]["rule"] == "priority_every_nth"

    async def test_an_agency_without_a_policy_inherits_the_site_default(self, queue: QueueApi) -> None:
        put = await queue.client.put("/v1/policies/site", json={"max_calls": 5}, headers=operator())
        got = await queue.client.get("/v1/policies/agencies/dpmptsp", headers=officer("dpmptsp"))

        assert put.status_code == 200
        assert got.json()["source"] == "inherited"
        assert got.json()["policy"]["max_calls"] == 5

    async def test_a_bad_policy_is_refused_with_every_problem(self, queue: QueueApi) -> None:
        response = await queue.client.put(
            "/v1/policies/agencies/disdukcapil", json={"weights": {"vip": 3}}, headers=supervisor()
        )

        assert response.status_code == 422
        problems = response.json()["error"]["details"]["problems"]
        assert "tidak dikenal: vip" in problems[0]["problem"]

    @pytest.mark.parametrize(
        ("headers", "status"),
        [(officer(), 403), (supervisor("dpmptsp"), 403)],
    )
    async def test_only_the_agency_supervisor_or_the_operator_may_set_it(
        self, queue: QueueApi, headers: dict[str, str], status: int
    ) -> None:
        response = await queue.client.put("/v1/policies/agencies/disdukcapil", json={}, headers=headers)

        assert response.status_code == status
