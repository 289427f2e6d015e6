"""Every queue route against every role, a foreign agency and a foreign site, and every bad credential.

A route missing from ``MATRIX`` fails the coverage test: new endpoints get a row here.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, timedelta

import pytest

from mpp.kit.auth import Role
from tests.integration.queue.harness import (
    KK,
    KTP,
    OTHER_SITE,
    SECRET,
    SITE,
    QueueApi,
    bearer,
    kiosk,
    officer,
    operator,
    running_queue,
)
from tests.support.authz import (
    FOREIGN,
    PROBES,
    Call,
    Caller,
    Route,
    Scope,
    mismatches,
    roles_without_a_caller,
    uncovered,
)

pytestmark = pytest.mark.integration

AGENCY = "disdukcapil"
SCOPE = Scope(secret=SECRET, agency=AGENCY, site=SITE, other_agency="dpmptsp", other_site=OTHER_SITE)
COUNTER = "loket-01"  # disdukcapil, calls KTP

# The booker of the appointments below: the CITIZEN column's subject.
BOOKER = bearer(roles=[Role.CITIZEN], agency=None, site=None, subject=SCOPE.claims(Caller.CITIZEN).subject)


@pytest.fixture
async def queue(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[QueueApi]:
    """Room for every caller's booking: large slot quotas and a long booking horizon."""
    async with running_queue(
        await fresh_database(), appointment_quota_per_slot=100, appointment_book_ahead_days=120
    ) as api:
        yield api


# --- preparing requests -------------------------------------------------------------------------


def _open_days() -> list[date]:
    """The rest of 2026 after the harness's today (the calendar's last year), Sundays and the Christmas
    holidays left out: the site opens Monday to Saturday."""
    days, d = [], date(2026, 11, 4)
    while d.year == 2026:
        if d.isoweekday() != 7 and d not in (date(2026, 12, 24), date(2026, 12, 25)):
            days.append(d)
        d += timedelta(days=1)
    return days


_days = itertools.cycle(_open_days())
_refs = itertools.count(1)


def _ten_o_clock() -> str:
    return datetime.fromisoformat(f"{next(_days).isoformat()}T10:00:00+07:00").isoformat()


async def new_visit(api: QueueApi) -> Call:
    return Call(body={"service_types": [KTP]})


async def online_visit(api: QueueApi) -> Call:
    return Call(body={"service_types": [KTP], "channel": "online"})


async def walk_in_visit(api: QueueApi) -> Call:
    visit = await api.start_visit(KTP)
    return Call(path={"visit_id": visit["visit_id"]}, body={"service_type": KK})


async def booked_online_visit(api: QueueApi) -> Call:
    response = await api.client.post(
        "/v1/visits", json={"service_types": [KTP], "channel": "online"}, headers=BOOKER
    )
    assert response.status_code == 201, response.text
    return Call(path={"visit_id": response.json()["visit_id"]}, body={"service_type": KK})


async def waiting_ticket(api: QueueApi) -> Call:
    return Call(path={"ticket_id": (await api.ticket(KTP))["id"]})


async def transfer(api: QueueApi) -> Call:
    return Call(path={"ticket_id": (await api.ticket(KTP))["id"]}, body={"to_service_type": KK})


async def _called(api: QueueApi) -> str:
    """A new ticket called to the home counter (whatever the counter held before is finished first)."""
    await api.ticket(KTP)
    await api.client.post(f"/v1/counters/{COUNTER}/open", headers=officer())
    while True:
        response = await api.call_next(COUNTER, officer())
        if response.status_code == 200:
            ticket_id: str = response.json()["ticket"]["id"]
            return ticket_id
        busy = response.json()["error"]["details"]
        action = "no-show" if busy["state"] == "called" else "complete"
        await api.act(busy["ticket_id"], action, officer())


async def called_ticket(api: QueueApi) -> Call:
    return Call(path={"ticket_id": await _called(api)})


async def serving_ticket(api: QueueApi) -> Call:
    ticket_id = await _called(api)
    assert (await api.act(ticket_id, "start", officer())).status_code == 200
    return Call(path={"ticket_id": ticket_id})


async def public_number(api: QueueApi) -> Call:
    ticket = await api.ticket(KTP)
    return Call(path={"site": SITE, "number": ticket["number"]})


async def counter_closed(api: QueueApi) -> Call:
    await api.client.post(f"/v1/counters/{COUNTER}/close", headers=officer())
    return Call(path={"code": COUNTER})


async def counter_open(api: QueueApi) -> Call:
    await api.client.post(f"/v1/counters/{COUNTER}/open", headers=officer())
    return Call(path={"code": COUNTER})


async def home_agency(api: QueueApi) -> Call:
    """The home agency's list: staff of another agency ask for what is not theirs."""
    return Call(query={"agency": AGENCY})


async def agency_policy(api: QueueApi) -> Call:
    return Call(path={"agency": AGENCY}, body={"ageing_per_minute": 1.5})


async def site_policy(api: QueueApi) -> Call:
    return Call(body={"ageing_per_minute": 1.5})


async def booking(api: QueueApi) -> Call:
    return Call(body={"service_type": KK, "slot_start": _ten_o_clock()})


async def _booked_by_the_citizen(api: QueueApi) -> dict[str, str]:
    response = await api.client.post(
        "/v1/appointments", json={"service_type": KK, "slot_start": _ten_o_clock()}, headers=BOOKER
    )
    assert response.status_code == 201, response.text
    booked: dict[str, str] = response.json()
    return booked


async def appointment(api: QueueApi) -> Call:
    return Call(path={"appointment_id": (await _booked_by_the_citizen(api))["id"]})


async def booking_code(api: QueueApi) -> Call:
    return Call(path={"booking_code": (await _booked_by_the_citizen(api))["booking_code"]})


async def due_for_check_in(api: QueueApi) -> Call:
    """An appointment at the home site whose check-in window is open now (09:15; the slot at 09:30)."""
    response = await api.client.post(
        "/v1/appointments",
        json={
            "service_type": KK,
            "slot_start": "2026-11-03T09:30:00+07:00",
            "citizen_ref": f"ref-for-authz-{next(_refs):04d}",
        },
        headers=operator(),
    )
    assert response.status_code == 201, response.text
    return Call(body={"booking_code": response.json()["booking_code"]})


async def slots_query(api: QueueApi) -> Call:
    return Call(query={"service_type": KK, "from": "2026-11-04", "to": "2026-11-06"})


async def appointments_of_the_day(api: QueueApi) -> Call:
    await _booked_by_the_citizen(api)
    return Call(query={"day": "2026-11-04", "agency": AGENCY})


async def survey_of_a_completed_service(api: QueueApi) -> Call:
    ticket_id = await _called(api)
    assert (await api.act(ticket_id, "start", officer())).status_code == 200
    done = await api.act(ticket_id, "complete", officer())
    assert done.status_code == 200, done.text
    return Call(
        path={"key": done.json()["survey"]["token"]},
        body={"scores": {"U1": 4, "U7": 3}, "respondent": {"age_band": "26_35"}},
    )


async def online_complaint(api: QueueApi) -> Call:
    return Call(body={"category": "queue", "description": "Antrean terlalu lama"})


async def counter_complaint(api: QueueApi) -> Call:
    return Call(body={"category": "procedure", "description": "Prosedur membingungkan"})


async def _complaint_of_the_agency(api: QueueApi) -> dict[str, str]:
    response = await api.client.post(
        "/v1/complaints", json={"category": "fees", "description": "Biaya tidak jelas"}, headers=officer()
    )
    assert response.status_code == 201, response.text
    complaint: dict[str, str] = response.json()
    return complaint


async def complaint(api: QueueApi) -> Call:
    return Call(path={"complaint_id": (await _complaint_of_the_agency(api))["id"]})


async def complaint_to_respond(api: QueueApi) -> Call:
    found = await complaint(api)
    return Call(path=found.path, body={"response": "Sedang kami periksa"})


async def complaint_to_resolve(api: QueueApi) -> Call:
    found = await complaint(api)
    return Call(path=found.path, body={"outcome": "information_given", "resolution": "Sudah dijelaskan"})


async def tracking_code(api: QueueApi) -> Call:
    return Call(path={"tracking_code": (await _complaint_of_the_agency(api))["tracking_code"]})


# --- the matrix ---------------------------------------------------------------------------------

STAFF_OF_THE_SITE = {
    Caller.OFFICER: 201,
    Caller.SUPERVISOR: 201,
    Caller.OPERATOR: 201,
    Caller.OFFICER_OTHER_AGENCY: 201,
    Caller.SUPERVISOR_OTHER_AGENCY: 201,
}
# Staff of another site act at their own site, where the same request is just as valid.
STAFF_EVERYWHERE = STAFF_OF_THE_SITE | {
    Caller.OFFICER_OTHER_SITE: 201,
    Caller.SUPERVISOR_OTHER_SITE: 201,
    Caller.OPERATOR_OTHER_SITE: 201,
}
READERS_EVERYWHERE = dict.fromkeys(STAFF_EVERYWHERE, 200)
# The site's kiosk issues visits and tickets and checks in appointments there, and does nothing else.
KIOSK_DESK = {Caller.KIOSK: 201}
# Counter work: officers and supervisors of the ticket's agency; another agency's or site's ticket
# answers like a missing one; the operator does not call tickets.
COUNTER_WORK = {Caller.OFFICER: 200, Caller.SUPERVISOR: 200} | dict.fromkeys(
    FOREIGN - {Caller.OPERATOR_OTHER_SITE}, 404
)
TICKET_READERS = {Caller.OFFICER: 200, Caller.SUPERVISOR: 200, Caller.OPERATOR: 200} | dict.fromkeys(
    FOREIGN, 404
)
COUNTER_CONTROL = {
    Caller.OFFICER: 200,
    Caller.SUPERVISOR: 200,
    Caller.OFFICER_OTHER_SITE: 404,  # the other site has no such counter
    Caller.SUPERVISOR_OTHER_SITE: 404,
}
BOOKER_OR_STAFF = {
    Caller.CITIZEN: 200,
    Caller.OFFICER: 200,
    Caller.SUPERVISOR: 200,
    Caller.OPERATOR: 200,
} | dict.fromkeys(FOREIGN, 404)


async def board_of_the_site(api: QueueApi) -> Call:
    return Call(path={"site": SITE})


async def board_of_the_agency(api: QueueApi) -> Call:
    return Call(path={"site": SITE, "agency": AGENCY})


async def board_of_no_site(api: QueueApi) -> Call:
    return Call(path={"site": "mpp-tidak-ada"})


# Callers not named in `allow` get 403.
MATRIX: list[Route[QueueApi]] = [
    # Without a relay or consumers the harness's service is ready as soon as its database is.
    *(row for row in PROBES if row.path != "/readyz"),
    Route("GET", "/readyz", public=200),
    # kiosk and visits
    Route("POST", "/v1/visits", allow=STAFF_EVERYWHERE | KIOSK_DESK, prepare=new_visit),
    Route(
        "POST",
        "/v1/visits",
        allow=STAFF_EVERYWHERE | KIOSK_DESK | {Caller.CITIZEN: 201},
        prepare=online_visit,
        variant="online",
    ),
    Route(
        "POST",
        "/v1/visits/{visit_id}/tickets",
        allow=STAFF_OF_THE_SITE | KIOSK_DESK | dict.fromkeys(FOREIGN - STAFF_OF_THE_SITE.keys(), 404),
        prepare=walk_in_visit,
    ),
    Route(
        "POST",
        "/v1/visits/{visit_id}/tickets",
        allow=STAFF_OF_THE_SITE
        | KIOSK_DESK
        | dict.fromkeys(FOREIGN - STAFF_OF_THE_SITE.keys(), 404)
        | {Caller.CITIZEN: 201},
        prepare=booked_online_visit,
        variant="online visit",
    ),
    # public ticket pages
    Route("GET", "/v1/public/tickets/{ticket_id}", public=200, prepare=waiting_ticket),
    Route("GET", "/v1/public/sites/{site}/tickets/{number}", public=200, prepare=public_number),
    Route("POST", "/v1/public/tickets/{ticket_id}/cancel", public=200, prepare=waiting_ticket),
    # counters
    Route("GET", "/v1/counters", allow=READERS_EVERYWHERE),
    Route("POST", "/v1/counters/{code}/open", allow=COUNTER_CONTROL, prepare=counter_closed),
    Route("POST", "/v1/counters/{code}/close", allow=COUNTER_CONTROL, prepare=counter_open),
    Route("POST", "/v1/counters/{code}/call-next", allow=COUNTER_CONTROL, prepare=counter_open),
    # tickets
    Route("GET", "/v1/tickets/{ticket_id}", allow=TICKET_READERS, prepare=waiting_ticket),
    Route("GET", "/v1/tickets/{ticket_id}/decision", allow=TICKET_READERS, prepare=called_ticket),
    Route("POST", "/v1/tickets/{ticket_id}/recall", allow=COUNTER_WORK, prepare=called_ticket),
    Route("POST", "/v1/tickets/{ticket_id}/start", allow=COUNTER_WORK, prepare=called_ticket),
    Route("POST", "/v1/tickets/{ticket_id}/complete", allow=COUNTER_WORK, prepare=serving_ticket),
    Route("POST", "/v1/tickets/{ticket_id}/no-show", allow=COUNTER_WORK, prepare=called_ticket),
    Route("POST", "/v1/tickets/{ticket_id}/cancel", allow=COUNTER_WORK, prepare=waiting_ticket),
    Route("POST", "/v1/tickets/{ticket_id}/transfer", allow=COUNTER_WORK, prepare=transfer),
    Route(
        "GET",
        "/v1/queues/waiting",
        allow=READERS_EVERYWHERE | {Caller.OFFICER_OTHER_AGENCY: 403, Caller.SUPERVISOR_OTHER_AGENCY: 403},
        prepare=home_agency,
    ),
    # ordering policies
    Route("GET", "/v1/policies/site", allow=READERS_EVERYWHERE),
    Route(
        "PUT",
        "/v1/policies/site",
        allow={Caller.OPERATOR: 200, Caller.OPERATOR_OTHER_SITE: 200},
        prepare=site_policy,
    ),
    Route(
        "GET",
        "/v1/policies/agencies/{agency}",
        allow={
            Caller.OFFICER: 200,
            Caller.SUPERVISOR: 200,
            Caller.OPERATOR: 200,
            Caller.OFFICER_OTHER_SITE: 200,
            Caller.SUPERVISOR_OTHER_SITE: 200,
            Caller.OPERATOR_OTHER_SITE: 200,
        },
        prepare=agency_policy,
    ),
    Route(
        "PUT",
        "/v1/policies/agencies/{agency}",
        allow={
            Caller.SUPERVISOR: 200,
            Caller.OPERATOR: 200,
            Caller.SUPERVISOR_OTHER_SITE: 200,
            Caller.OPERATOR_OTHER_SITE: 200,
        },
        prepare=agency_policy,
    ),
    # display boards: public, with no personal data. The live stream never ends, so its row asks for an
    # unknown site (404 to anyone); the stream itself is covered by the board's integration and browser tests.
    Route("GET", "/board/{site}", public=200, prepare=board_of_the_site),
    Route("GET", "/board/{site}/{agency}", public=200, prepare=board_of_the_agency),
    Route("GET", "/board/{site}/state", public=200, prepare=board_of_the_site),
    Route("GET", "/board/{site}/events", public=404, prepare=board_of_no_site),
    # appointments
    Route("GET", "/v1/public/appointments/slots", public=200, prepare=slots_query),
    Route("GET", "/v1/public/appointments/{booking_code}", public=200, prepare=booking_code),
    Route("POST", "/v1/appointments", allow=STAFF_EVERYWHERE | {Caller.CITIZEN: 201}, prepare=booking),
    Route(
        "GET",
        "/v1/appointments",
        allow=READERS_EVERYWHERE | {Caller.OFFICER_OTHER_AGENCY: 403, Caller.SUPERVISOR_OTHER_AGENCY: 403},
        prepare=appointments_of_the_day,
    ),
    Route("GET", "/v1/appointments/{appointment_id}", allow=BOOKER_OR_STAFF, prepare=appointment),
    Route("POST", "/v1/appointments/{appointment_id}/cancel", allow=BOOKER_OR_STAFF, prepare=appointment),
    # Any desk of the site checks in (reception serves every agency); another site has no such booking.
    Route(
        "POST",
        "/v1/appointments/check-in",
        allow=STAFF_OF_THE_SITE
        | KIOSK_DESK
        | {
            Caller.OFFICER_OTHER_SITE: 404,
            Caller.SUPERVISOR_OTHER_SITE: 404,
            Caller.OPERATOR_OTHER_SITE: 404,
        },
        prepare=due_for_check_in,
    ),
    # The operator of a site runs its day close at once (it also runs by itself after closing time).
    Route("POST", "/v1/day-close", allow={Caller.OPERATOR: 200, Caller.OPERATOR_OTHER_SITE: 200}),
    Route(
        "POST",
        "/v1/appointments/missed-sweep",
        allow={Caller.OPERATOR: 200, Caller.OPERATOR_OTHER_SITE: 200},
    ),
    # SKM survey: anyone holding the link of a completed service, no login (and no personal data).
    Route("GET", "/v1/public/surveys/{key}", public=200, prepare=survey_of_a_completed_service),
    Route("POST", "/v1/public/surveys/{key}", public=201, prepare=survey_of_a_completed_service),
    Route("GET", "/survei/{key}", public=200, prepare=survey_of_a_completed_service),
    # complaints: online without login; staff record them at their own site; the agency's officers
    # respond, its supervisors resolve; the site's operator handles every complaint of the site.
    Route("POST", "/v1/public/complaints", public=201, prepare=online_complaint),
    Route("GET", "/v1/public/complaints/{tracking_code}", public=200, prepare=tracking_code),
    Route("POST", "/v1/complaints", allow=STAFF_EVERYWHERE, prepare=counter_complaint),
    Route(
        "GET",
        "/v1/complaints",
        allow=READERS_EVERYWHERE | {Caller.OFFICER_OTHER_AGENCY: 403, Caller.SUPERVISOR_OTHER_AGENCY: 403},
        prepare=home_agency,
    ),
    Route(
        "GET",
        "/v1/complaints/overdue",
        allow=dict.fromkeys(
            (
                Caller.SUPERVISOR,
                Caller.OPERATOR,
                Caller.SUPERVISOR_OTHER_AGENCY,
                Caller.SUPERVISOR_OTHER_SITE,
                Caller.OPERATOR_OTHER_SITE,
            ),
            200,
        ),
    ),
    Route("GET", "/v1/complaints/{complaint_id}", allow=TICKET_READERS, prepare=complaint),
    Route(
        "POST", "/v1/complaints/{complaint_id}/respond", allow=TICKET_READERS, prepare=complaint_to_respond
    ),
    Route(
        "POST",
        "/v1/complaints/{complaint_id}/resolve",
        allow={
            Caller.SUPERVISOR: 200,
            Caller.OPERATOR: 200,
            Caller.SUPERVISOR_OTHER_AGENCY: 404,
            Caller.SUPERVISOR_OTHER_SITE: 404,
            Caller.OPERATOR_OTHER_SITE: 404,
        },
        prepare=complaint_to_resolve,
    ),
]


@pytest.mark.parametrize("route", MATRIX, ids=str)
async def test_each_caller_gets_the_answer_of_the_matrix(queue: QueueApi, route: Route[QueueApi]) -> None:
    found = await mismatches(queue, route, SCOPE)

    assert not found, "\n".join(found)


async def test_the_matrix_covers_every_route(queue: QueueApi) -> None:
    missing, stale = uncovered(queue.app, MATRIX)

    assert not missing, "Routes without a row in the queue authorization matrix:\n" + "\n".join(missing)
    assert not stale, "Rows of the queue authorization matrix for no route:\n" + "\n".join(stale)
    assert not roles_without_a_caller(SCOPE), "Roles without a column in the authorization matrix"


async def test_a_citizen_off_site_cannot_add_tickets_to_a_walk_in_visit(queue: QueueApi) -> None:
    """Regression: a citizen's own token (no site) added tickets to kiosk walk-in visits."""
    visit = await queue.start_visit(KTP, headers=kiosk())

    response = await queue.client.post(
        f"/v1/visits/{visit['visit_id']}/tickets", json={"service_type": KK}, headers=BOOKER
    )

    assert response.status_code == 403
    assert [t["service_type"] for t in visit["tickets"]] == [KTP]
    assert len(await queue.event_types(visit["visit_id"])) == 2  # VisitStarted, one TicketIssued
