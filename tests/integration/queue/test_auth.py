"""Who may call which queue endpoint: 401 without valid credentials, 403 out of scope, 404 for another
agency's ticket exactly as for a missing one; kiosk and public endpoints need no personal data."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mpp.kit.auth import Role
from mpp.queue.persistence.tables import tickets
from tests.integration.queue.harness import (
    KK,
    KTP,
    OTHER_SITE,
    SITE,
    QueueApi,
    bearer,
    kiosk,
    officer,
    operator,
)

pytestmark = pytest.mark.integration

MISSING_ID = "00000000-0000-4000-8000-000000000000"


class TestAuthentication:
    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic b2ZmaWNlcjpwdw=="}],
        ids=["none", "garbage", "basic"],
    )
    async def test_protected_endpoints_answer_401(self, queue: QueueApi, headers: dict[str, str]) -> None:
        responses = [
            await queue.client.post("/v1/visits", json={"service_types": [KTP]}, headers=headers),
            await queue.client.post("/v1/counters/loket-01/call-next", headers=headers),
            await queue.client.get("/v1/queues/waiting", headers=headers),
        ]

        assert [r.status_code for r in responses] == [401, 401, 401]
        assert responses[0].json()["error"]["code"] == "unauthenticated"


class TestScope:
    async def test_an_officer_calls_only_at_counters_of_their_agency(self, queue: QueueApi) -> None:
        await queue.open_counter("loket-01", officer())

        other_agency = await queue.call_next("loket-01", officer("dpmptsp"))
        other_site = await queue.call_next("loket-01", officer(site=OTHER_SITE))
        citizen = await queue.call_next("loket-01", kiosk())
        operator_call = await queue.call_next("loket-01", operator())

        assert [r.status_code for r in (other_agency, other_site, citizen, operator_call)] == [
            403,
            404,
            403,
            403,
        ]

    async def test_another_agency_ticket_answers_like_a_missing_one(self, queue: QueueApi) -> None:
        ticket = await queue.ticket(KTP)

        foreign = await queue.client.get(f"/v1/tickets/{ticket['id']}", headers=officer("dpmptsp"))
        missing = await queue.client.get(f"/v1/tickets/{MISSING_ID}", headers=officer("dpmptsp"))
        act = await queue.act(ticket["id"], "cancel", officer("dpmptsp"))

        assert foreign.status_code == missing.status_code == act.status_code == 404
        assert foreign.json() == missing.json()

    async def test_a_refused_start_leaves_the_ticket_as_it_was(self, queue: QueueApi) -> None:
        # A start is written in the statement that locks the ticket, then checked: a refusal must roll
        # that write back, whether the ticket belongs to another agency or was never called.
        ticket = await queue.ticket(KTP)
        await queue.open_counter("loket-01", officer())
        called = (await queue.call_next("loket-01", officer())).json()["ticket"]
        assert called["id"] == ticket["id"]
        waiting = await queue.ticket(KTP)

        foreign = await queue.act(called["id"], "start", officer("dpmptsp"))
        too_early = await queue.act(waiting["id"], "start", officer())

        assert (foreign.status_code, too_early.status_code) == (404, 409)
        async with queue.engine.connect() as conn:
            rows = (await conn.execute(select(tickets.c.id, tickets.c.state, tickets.c.started_at))).all()
        assert {(i, state, started) for i, state, started in rows} == {
            (ticket["id"], "called", None),
            (waiting["id"], "waiting", None),
        }
        assert "ServiceStarted" not in await queue.event_types(ticket["visit_id"])
        assert (await queue.act(called["id"], "start", officer())).json()["state"] == "serving"

    async def test_an_officer_lists_only_their_agency_queue(self, queue: QueueApi) -> None:
        await queue.ticket(KTP)

        own = await queue.client.get("/v1/queues/waiting", headers=officer())
        other = await queue.client.get(
            "/v1/queues/waiting", params={"agency": "disdukcapil"}, headers=officer("dpmptsp")
        )
        site_wide = await queue.client.get("/v1/queues/waiting", headers=operator())

        assert own.json()["total"] == 1
        assert other.status_code == 403
        assert site_wide.json()["total"] == 1

    async def test_a_kiosk_issues_only_at_its_own_site(self, queue: QueueApi) -> None:
        response = await queue.client.post(
            "/v1/visits", json={"service_types": [KTP], "site": OTHER_SITE}, headers=kiosk()
        )

        assert response.status_code == 403

    async def test_a_kiosk_works_only_at_its_own_site(self, queue: QueueApi) -> None:
        visit = await queue.client.post("/v1/visits", json={"service_types": [KTP]}, headers=kiosk())
        visit_id = visit.json()["visit_id"]

        another_ticket = await queue.client.post(
            f"/v1/visits/{visit_id}/tickets", json={"service_type": KK}, headers=kiosk()
        )
        from_another_site = await queue.client.post(
            f"/v1/visits/{visit_id}/tickets",
            json={"service_type": KK},
            headers=kiosk(OTHER_SITE),
        )
        without_a_site = await queue.client.post(
            "/v1/visits",
            json={"service_types": [KTP]},
            headers=bearer(roles=[Role.KIOSK], agency=None, site=None, subject="kiosk-lost"),
        )

        assert visit.status_code == 201
        assert visit.json()["site"] == SITE
        assert another_ticket.status_code == 201
        assert from_another_site.status_code == 404
        assert without_a_site.status_code == 403

    async def test_a_kiosk_does_no_staff_work(self, queue: QueueApi) -> None:
        ticket = await queue.ticket(KTP)

        answers = [
            await queue.client.get(f"/v1/tickets/{ticket['id']}", headers=kiosk()),
            await queue.client.post(f"/v1/tickets/{ticket['id']}/cancel", headers=kiosk()),
            await queue.client.get("/v1/queues/waiting", headers=kiosk()),
            await queue.client.post("/v1/counters/loket-01/open", headers=kiosk()),
        ]

        assert [r.status_code for r in answers] == [403, 403, 403, 403]

    async def test_a_citizen_token_bound_to_a_site_is_no_kiosk(self, queue: QueueApi) -> None:
        """Kiosks hold kiosk tokens: a citizen's token with a site claim still only books online."""
        citizen = bearer(roles=[Role.CITIZEN], agency=None, site=SITE, subject="c_1a2b3c4d5e6f")

        walk_in = await queue.client.post("/v1/visits", json={"service_types": [KTP]}, headers=citizen)

        assert walk_in.status_code == 403

    async def test_a_citizen_without_a_site_may_only_book_online(self, queue: QueueApi) -> None:
        citizen = bearer(roles=[Role.CITIZEN], agency=None, site=None, subject="c_9f8e7d6c5b4a")

        walk_in = await queue.client.post("/v1/visits", json={"service_types": [KTP]}, headers=citizen)
        online = await queue.client.post(
            "/v1/visits", json={"service_types": [KTP], "channel": "online", "site": SITE}, headers=citizen
        )

        assert walk_in.status_code == 403
        assert online.status_code == 201
        assert online.json()["tickets"][0]["channel"] == "online"


class TestPublicTicket:
    async def test_the_citizen_follows_the_ticket_without_logging_in(self, queue: QueueApi) -> None:
        first = await queue.ticket(KTP)
        second = await queue.ticket(KTP)

        by_id = await queue.client.get(f"/v1/public/tickets/{second['id']}")
        by_number = await queue.client.get(f"/v1/public/sites/{SITE}/tickets/a-002")
        await queue.open_counter("loket-01", officer())
        await queue.call_next("loket-01", officer())
        called = await queue.client.get(f"/v1/public/tickets/{first['id']}")

        assert by_id.json()["waiting_ahead"] == 1
        assert by_number.json()["ticket_id"] == second["id"]
        assert "officer" not in by_id.json()
        assert called.json()["state"] == "called"
        assert called.json()["counter"] == "loket-01"

    async def test_an_unknown_ticket_is_404_in_bahasa_indonesia(self, queue: QueueApi) -> None:
        response = await queue.client.get(f"/v1/public/tickets/{MISSING_ID}")

        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Tiket tidak ditemukan"
