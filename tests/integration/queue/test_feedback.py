"""SKM surveys and complaints on PostgreSQL, through the HTTP API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from mpp.queue.persistence.tables import survey_responses
from tests.integration.queue.harness import (
    KK,
    KTP,
    NIB,
    OTHER_SITE,
    QueueApi,
    officer,
    operator,
    supervisor,
)

pytestmark = pytest.mark.integration

ANSWERS = {"scores": {f"U{i}": 1 + i % 4 for i in range(1, 10)}, "respondent": {"sex": "female"}}
FORBIDDEN_IN_EVENTS = ("ticket_id", "visit_id", "citizen_ref", "officer_ref", "nik", "name", "contact")


async def completed(api: QueueApi, service_type: str = KTP, counter: str = "loket-01") -> dict[str, Any]:
    """A ticket served to the end at ``counter``; the completion's answer (with its survey link)."""
    ticket = await api.ticket(service_type)
    await api.open_counter(counter, officer())
    called = await api.call_next(counter, officer())
    assert called.json()["ticket"]["id"] == ticket["id"], called.text
    api.clock.advance(seconds=30)
    assert (await api.act(ticket["id"], "start", officer())).status_code == 200
    api.clock.advance(minutes=4)
    done = await api.act(ticket["id"], "complete", officer())
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


async def test_a_completed_service_hands_out_a_survey_answered_once_and_anonymously(queue: QueueApi) -> None:
    done = await completed(queue)
    token = done["survey"]["token"]
    assert done["survey"]["state"] == "open"

    form = await queue.client.get(f"/v1/public/surveys/{token}")
    assert form.status_code == 200
    assert [e["name"] for e in form.json()["elements"]][:3] == [
        "Persyaratan",
        "Sistem, mekanisme, dan prosedur",
        "Waktu penyelesaian",
    ]
    first = await queue.client.post(f"/v1/public/surveys/{token}", json=ANSWERS)
    again = await queue.client.post(f"/v1/public/surveys/{token}", json=ANSWERS)
    by_ticket = await queue.client.post(f"/v1/public/surveys/{done['id']}", json=ANSWERS)

    assert first.status_code == 201, first.text
    assert again.status_code == 409 and again.json()["error"]["code"] == "survey_answered"
    assert by_ticket.status_code == 409
    surveys = [e for e in await queue.events() if e.event_type == "SurveySubmitted"]
    assert len(surveys) == 1
    payload = surveys[0].payload
    assert payload["service_type"] == KTP and payload["agency"] == "disdukcapil"
    assert payload["scores"]["u1"] == 2 and payload["respondent"]["sex"] == "female"
    assert not set(FORBIDDEN_IN_EVENTS) & set(payload)
    assert done["id"] not in surveys[0].key and done["visit_id"] not in str(payload)
    public = await queue.client.get(f"/v1/public/tickets/{done['id']}")
    assert public.json()["survey"]["state"] == "answered"


async def test_one_survey_per_service_under_concurrent_submits(queue: QueueApi) -> None:
    done = await completed(queue)
    keys = [done["survey"]["token"], done["id"]] * 6

    answers = await asyncio.gather(
        *(queue.client.post(f"/v1/public/surveys/{k}", json=ANSWERS) for k in keys)
    )

    assert sorted(r.status_code for r in answers) == [201] + [409] * 11
    assert [e.event_type for e in await queue.events()].count("SurveySubmitted") == 1
    async with queue.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(survey_responses))).scalar() == 1


async def test_a_survey_is_refused_before_completion_and_after_the_window(queue: QueueApi) -> None:
    waiting = await queue.ticket(KK)
    early = await queue.client.post(f"/v1/public/surveys/{waiting['id']}", json=ANSWERS)
    unknown = await queue.client.post("/v1/public/surveys/no-such-token", json=ANSWERS)
    done = await completed(queue)
    queue.clock.advance(days=7, seconds=1)
    late = await queue.client.post(f"/v1/public/surveys/{done['survey']['token']}", json=ANSWERS)

    assert early.status_code == 409 and early.json()["error"]["code"] == "service_not_completed"
    assert unknown.status_code == 404
    assert late.status_code == 410
    assert "SurveySubmitted" not in [e.event_type for e in await queue.events()]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scores": {"U1": 5}}, "scores.U1"),
        ({"scores": {"U1": True}}, "scores.U1"),
        ({"scores": {"U10": 3}}, "scores.U10"),
        ({"scores": {}}, "scores"),
        ({"scores": {"U1": 3}, "respondent": {"age_band": "99"}}, "respondent.age_band"),
        ({"scores": {"U1": 3}, "respondent": {"nik": "3201"}}, "respondent.nik"),
    ],
)
async def test_invalid_answers_are_422_and_leave_the_survey_open(
    queue: QueueApi, body: dict[str, Any], field: str
) -> None:
    done = await completed(queue)
    token = done["survey"]["token"]

    response = await queue.client.post(f"/v1/public/surveys/{token}", json=body)

    assert response.status_code == 422, response.text
    assert field in [p["field"] for p in response.json()["error"]["details"]["problems"]]
    assert (await queue.client.post(f"/v1/public/surveys/{token}", json=ANSWERS)).status_code == 201


async def test_the_survey_page_is_self_contained(queue: QueueApi) -> None:
    done = await completed(queue)

    page = await queue.client.get(f"/survei/{done['survey']['token']}")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Survei Kepuasan Masyarakat" in page.text
    assert "http://" not in page.text and "https://" not in page.text


# --- complaints ---------------------------------------------------------------------------------


async def test_a_complaint_at_the_counter_is_responded_and_resolved_within_the_limits(
    queue: QueueApi,
) -> None:
    received = await queue.client.post(
        "/v1/complaints",
        json={
            "category": "service_time",
            "description": "Antrean KTP terlalu lama",
            "contact": "0812-0000-1111",
            "citizen_ref": "ref-0001",
        },
        headers=officer(),
    )
    assert received.status_code == 201, received.text
    c = received.json()
    # Tuesday 3 November 2026, 09:15 WIB: 3 working days -> Friday 6th; 5 -> Tuesday 10th.
    assert c["agency"] == "disdukcapil" and c["state"] == "received"
    assert datetime.fromisoformat(c["first_response_due"]).astimezone(UTC).day == 6
    assert datetime.fromisoformat(c["resolution_due"]).astimezone(UTC).day == 10
    queue.clock.advance(days=1)
    responded = await queue.client.post(
        f"/v1/complaints/{c['id']}/respond", json={"response": "Kami tambah loket"}, headers=officer()
    )
    not_by_officer = await queue.client.post(
        f"/v1/complaints/{c['id']}/resolve",
        json={"outcome": "upheld", "resolution": "Loket 2 dibuka"},
        headers=officer(),
    )
    queue.clock.advance(days=1)
    resolved = await queue.client.post(
        f"/v1/complaints/{c['id']}/resolve",
        json={"outcome": "upheld", "resolution": "Loket 2 dibuka"},
        headers=supervisor(),
    )
    twice = await queue.client.post(
        f"/v1/complaints/{c['id']}/respond", json={"response": "lagi"}, headers=officer()
    )
    tracked = await queue.client.get(f"/v1/public/complaints/{c['tracking_code'].lower()}")

    assert responded.status_code == 200 and not_by_officer.status_code == 403
    assert resolved.status_code == 200 and resolved.json()["resolution_within_limit"] is True
    assert twice.status_code == 409
    assert tracked.status_code == 200 and tracked.json()["state"] == "resolved"
    assert "description" not in tracked.json() and "contact" not in tracked.json()
    events = await queue.events(c["id"])
    assert [e.event_type for e in events] == ["ComplaintReceived", "ComplaintResponded", "ComplaintResolved"]
    assert events[0].payload["complainant_ref"] == "ref-0001"
    assert events[1].payload["working_days_elapsed"] == 1 and events[1].payload["within_limit"] is True
    assert events[2].payload["working_days_elapsed"] == 2 and events[2].payload["within_limit"] is True
    assert all("0812" not in str(e.payload) and "Antrean KTP" not in str(e.payload) for e in events)


async def test_an_anonymous_online_complaint_and_the_overdue_list(queue: QueueApi) -> None:
    online = await queue.client.post(
        "/v1/public/complaints",
        json={"category": "staff_conduct", "description": "Petugas tidak ramah", "agency": "dpmptsp"},
    )
    with_contact = await queue.client.post(
        "/v1/public/complaints",
        json={"category": "fees", "description": "Ada pungutan", "contact": "a@b.id", "anonymous": True},
    )
    info = await queue.client.post(
        "/v1/complaints",
        json={
            "category": "information",
            "complaint_class": "dispute",
            "description": "Sengketa",
            "service_type": NIB,
        },
        headers=officer("dpmptsp", "officer-9"),
    )
    assert online.status_code == 201, online.text
    assert with_contact.status_code == 422
    assert info.status_code == 201 and info.json()["resolution_limit_days"] == 14
    code = online.json()["tracking_code"]
    received = await queue.events()
    anonymous = [e for e in received if e.event_type == "ComplaintReceived" and e.payload["anonymous"]]
    assert len(anonymous) == 1 and anonymous[0].payload["complainant_ref"] is None

    # Friday 6 November 16:00 passes: the first response of both is late; the 14-day dispute is not.
    queue.clock.at = datetime(2026, 11, 9, 2, 0, tzinfo=UTC)
    overdue = await queue.client.get("/v1/complaints/overdue", headers=supervisor("dpmptsp"))
    other_agency = await queue.client.get("/v1/complaints/overdue", headers=supervisor("disdukcapil"))
    site_wide = await queue.client.get("/v1/complaints/overdue", headers=operator())
    other_site = await queue.client.get("/v1/complaints/overdue", headers=operator(OTHER_SITE))
    by_officer = await queue.client.get("/v1/complaints/overdue", headers=officer("dpmptsp"))

    assert overdue.json()["items"][0]["tracking_code"] == code
    assert {tuple(c["overdue"]) for c in overdue.json()["items"]} == {("first_response",)}
    assert len(overdue.json()["items"]) == 2
    assert other_agency.json()["items"] == [] and other_site.json()["items"] == []
    assert len(site_wide.json()["items"]) == 2
    assert by_officer.status_code == 403
    # Answered late: the event says so.
    complaint_id = overdue.json()["items"][0]["id"]
    late = await queue.client.post(
        f"/v1/complaints/{complaint_id}/resolve",
        json={"outcome": "information_given", "resolution": "Sudah ditegur"},
        headers=supervisor("dpmptsp"),
    )
    assert late.status_code == 200
    events = await queue.events(complaint_id)
    assert [e.event_type for e in events] == ["ComplaintReceived", "ComplaintResponded", "ComplaintResolved"]
    assert events[1].payload["within_limit"] is False and events[1].payload["working_days_elapsed"] == 4
    assert events[2].payload["within_limit"] is True


async def test_complaints_of_another_agency_or_site_look_missing(queue: QueueApi) -> None:
    c = (
        await queue.client.post(
            "/v1/complaints", json={"category": "queue", "description": "Lama"}, headers=officer()
        )
    ).json()

    foreign = [
        await queue.client.get(f"/v1/complaints/{c['id']}", headers=h)
        for h in (officer("dpmptsp"), officer(site=OTHER_SITE), operator(OTHER_SITE))
    ]
    own = await queue.client.get(f"/v1/complaints/{c['id']}", headers=operator())

    assert [r.status_code for r in foreign] == [404, 404, 404]
    assert own.status_code == 200 and own.json()["description"] == "Lama"
