"""The queue API under schema-driven fuzzing: no request, valid or not, makes it answer 5xx."""

from __future__ import annotations

import pytest

from mpp.kit.auth import Role
from tests.integration.queue.harness import (
    KK,
    KTP,
    QueueApi,
    bearer,
    kiosk,
    officer,
    operator,
    supervisor,
)
from tests.support.fuzz import Budget, fuzz

pytestmark = pytest.mark.integration


async def test_no_generated_request_gets_a_server_error(queue: QueueApi) -> None:
    waiting = await queue.ticket(KTP)
    await queue.open_counter("loket-01", officer())
    called = (await queue.call_next("loket-01", officer())).json()["ticket"]
    other = await queue.ticket(KK)
    booked = await queue.client.post(
        "/v1/appointments",
        json={"service_type": KK, "slot_start": "2026-11-04T10:00:00+07:00"},
        headers=bearer(roles=[Role.CITIZEN], agency=None, site=None, subject="citizen-1"),
    )
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    served = await queue.ticket(KTP)
    await queue.open_counter("loket-02", officer())
    assert (await queue.call_next("loket-02", officer())).json()["ticket"]["id"] == served["id"]
    await queue.act(served["id"], "start", officer())
    survey = (await queue.act(served["id"], "complete", officer())).json()["survey"]
    complaint = (
        await queue.client.post(
            "/v1/complaints", json={"category": "queue", "description": "Lama"}, headers=officer()
        )
    ).json()
    # The kiosk, counter staff, the site's operator, the ministry and a citizen at home take turns on
    # the operations that let them through.
    callers = [
        kiosk(),
        officer(),
        supervisor(),
        operator(),
        bearer(roles=[Role.MINISTRY], agency=None, site=None, subject="ministry-1"),
        bearer(roles=[Role.CITIZEN], agency=None, site=None, subject="citizen-1"),
    ]
    known = {
        "ticket_id": [waiting["id"], called["id"], other["id"]],
        "visit_id": [waiting["visit_id"]],
        "code": ["loket-01", "loket-03"],
        "agency": ["disdukcapil"],
        "site": ["mpp-kota-sukamaju"],
        "number": [waiting["number"]],
        "appointment_id": [appointment["id"]],
        "booking_code": [appointment["booking_code"]],
        "key": [survey["token"], served["id"], waiting["id"]],
        "complaint_id": [complaint["id"]],
        "tracking_code": [complaint["tracking_code"]],
    }

    # A board's event stream stays open for as long as the screen watches: it would hold the fuzzer for
    # ever on the known site. Its answers are covered by the board's own tests.
    sent, failures = await fuzz(
        queue.client, callers, budget=Budget(), known=known, skip={"GET /board/{site}/events"}
    )

    assert not failures, "\n\n".join(failures)
    assert sent > 300


@pytest.mark.parametrize(
    "slot_start",
    ["9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+14:00"],
)
async def test_a_slot_at_the_ends_of_the_calendar_is_a_422(queue: QueueApi, slot_start: str) -> None:
    """Regression: these overflowed converting to the site's time zone (500)."""
    response = await queue.client.post(
        "/v1/appointments",
        json={"service_type": KK, "slot_start": slot_start},
        headers=bearer(roles=[Role.CITIZEN], agency=None, site=None, subject="citizen-1"),
    )

    assert response.status_code == 422


@pytest.mark.parametrize(
    "dates", [{"from": "9999-12-31"}, {"from": "0001-01-01"}, {"from": "9999-12-30", "to": "9999-12-31"}]
)
async def test_slot_listings_far_from_today_are_a_422(queue: QueueApi, dates: dict[str, str]) -> None:
    """Regression: dates at the ends of the calendar overflowed (500)."""
    response = await queue.client.get("/v1/public/appointments/slots", params={"service_type": KK, **dates})

    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "from"
