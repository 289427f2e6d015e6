"""Document applications (KTP-el, KK, akta kelahiran) over HTTP on PostgreSQL: submitting with an
Idempotency-Key, workflow actions through to DocumentIssued with generated numbers, the outbox carrying
no personal data, refusals (409/403/404/422), public tracking, work-queue scoping, and concurrency."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from mpp.contracts.events.common import Sex
from mpp.contracts.nik import parse_kk
from mpp.identity.persistence.tables import document_applications, outbox
from mpp.kit.auth import Role
from mpp.kit.outbox import decode_headers
from tests.integration.identity.harness import (
    OTHER_SITE,
    TODAY,
    IdentityApi,
    bearer,
    citizen,
    officer,
    person,
    supervisor,
)

pytestmark = pytest.mark.integration

BASE = "/v1/document-applications"


async def _register(identity: IdentityApi, seed: int, **kwargs: Any) -> dict[str, Any]:
    body = person(seed, **kwargs)
    created = await identity.register(body)
    return body | {"citizen_ref": created["citizen_ref"]}


async def _submit(
    identity: IdentityApi, body: dict[str, Any], key: str, headers: dict[str, str] | None = None
) -> Any:
    return await identity.client.post(
        BASE, json=body, headers=(headers or officer()) | {"Idempotency-Key": key}
    )


async def _act(
    identity: IdentityApi, app_id: str, action: str, headers: dict[str, str] | None = None, **body: Any
) -> Any:
    return await identity.client.post(
        f"{BASE}/{app_id}/actions/{action}", json=body, headers=headers or officer()
    )


async def _events(identity: IdentityApi) -> list[tuple[str, dict[str, Any], bytes]]:
    async with identity.engine.connect() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.seq))).all()
    found = []
    for row in rows:
        headers = dict(decode_headers(row.headers))
        found.append((headers["ce_type"].decode(), orjson.loads(row.value), bytes(row.value)))
    return found


def _ktp(nik: str, service: str = "disdukcapil.ktp-el-cetak", **extra: Any) -> dict[str, Any]:
    return {"service_type": service, "ktp_el": {"nik": nik} | extra}


class TestKtpPrinting:
    async def test_goes_from_submitted_to_issued_with_the_nik_as_number(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 1)

        submitted = await _submit(
            identity,
            _ktp(adult["nik"])
            | {
                "documents": [
                    {
                        "requirement": "kk",
                        "file_name": "kk.pdf",
                        "content_type": "application/pdf",
                        "size_bytes": 1200,
                    }
                ]
            },
            "ktp-print-0001",
        )
        assert submitted.status_code == 201, submitted.text
        app = submitted.json()
        assert app["state"] == "submitted"
        assert app["applicant_ref"] == adult["citizen_ref"]
        assert app["sla_due_on"] == "2026-11-04"
        assert app["missing_requirements"] == ["sudah-rekam"]
        assert submitted.headers["Location"] == f"{BASE}/{app['id']}"

        assert (await _act(identity, app["id"], "verify")).status_code == 200
        printed = await _act(identity, app["id"], "print")

        assert printed.status_code == 200, printed.text
        done = printed.json()
        assert done["state"] == "issued"
        assert done["medium"] == "printed"
        assert done["within_sla"] is True
        assert done["working_days_elapsed"] == 0
        document = await identity.client.get(f"{BASE}/{app['id']}/document", headers=officer())
        assert document.status_code == 200
        assert document.json()["document_number"] == adult["nik"]
        assert document.json()["document_ref"] == done["document_ref"]

    async def test_publishes_submitted_and_issued_without_personal_data(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 2)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-print-0002")).json()
        await _act(identity, app["id"], "verify")
        await _act(identity, app["id"], "print")

        events = await _events(identity)

        types = [t for t, _, _ in events]
        assert types == ["DocumentApplicationSubmitted", "DocumentIssued"]
        submitted, issued = events[0][1], events[1][1]
        assert submitted["applicant_ref"] == adult["citizen_ref"]
        assert submitted["document_kind"] == "ktp_el"
        assert submitted["sla_due_on"] == "2026-11-04"
        assert issued["document_ref"].startswith("doc_")
        assert issued["within_sla"] is True
        assert issued["working_days_elapsed"] == 0
        for _, _, raw in events:
            assert adult["nik"].encode() not in raw
            assert adult["kk_number"].encode() not in raw
            assert b"Warga Uji" not in raw

    async def test_reading_the_number_goes_to_the_citizens_access_log(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 73)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-print-0073")).json()
        await _act(identity, app["id"], "verify")
        await _act(identity, app["id"], "print")

        await identity.client.get(f"{BASE}/{app['id']}/document", headers=officer("officer-9"))

        lines = [r for r in await identity.access_rows() if r["purpose"] == "issued_document_read"]
        assert [(r["citizen_ref"], r["case_id"], r["officer_ref"]) for r in lines] == [
            (adult["citizen_ref"], app["id"], "officer-9")
        ]

    async def test_stores_the_nik_only_encrypted(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 3)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-print-0003")).json()
        await _act(identity, app["id"], "verify")
        await _act(identity, app["id"], "print")

        async with identity.engine.connect() as conn:
            row = (await conn.execute(select(document_applications))).one()

        assert adult["nik"].encode() not in bytes(row.details_enc)
        assert adult["nik"].encode() not in bytes(row.document_number_enc)


class TestIdempotency:
    async def test_a_retry_answers_the_same_application_once(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 4)
        first = await _submit(identity, _ktp(adult["nik"]), "ktp-retry-0001")
        again = await _submit(identity, _ktp(adult["nik"]), "ktp-retry-0001")

        assert again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert [t for t, _, _ in await _events(identity)] == ["DocumentApplicationSubmitted"]

    async def test_the_same_key_with_another_body_is_422(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 5)
        await _submit(identity, _ktp(adult["nik"]), "ktp-retry-0002")

        other = await _submit(identity, _ktp(adult["nik"], reason="data_change"), "ktp-retry-0002")

        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_reused"

    async def test_concurrent_retries_create_one_application(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 6)

        answers = await asyncio.gather(
            *(_submit(identity, _ktp(adult["nik"]), "ktp-race-0001") for _ in range(4))
        )

        assert [a.status_code for a in answers] == [201] * 4
        assert len({a.json()["id"] for a in answers}) == 1

    async def test_a_submission_without_a_key_is_422(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 7)

        response = await identity.client.post(BASE, json=_ktp(adult["nik"]), headers=officer())

        assert response.status_code == 422


class TestFormRules:
    async def test_an_unregistered_nik_is_422_in_indonesian(self, identity: IdentityApi) -> None:
        stranger = person(8)

        response = await _submit(identity, _ktp(stranger["nik"]), "ktp-unknown-01")

        assert response.status_code == 422
        error = response.json()["error"]
        assert error["message"] == "NIK tidak terdaftar dalam database kependudukan"
        assert stranger["nik"] not in response.text

    async def test_recording_below_17_is_refused_unless_married(self, identity: IdentityApi) -> None:
        teen = await _register(identity, 9, born=TODAY.replace(year=TODAY.year - 16))

        refused = await _submit(identity, _ktp(teen["nik"], "disdukcapil.ktp-el-rekam"), "ktp-teen-00001")
        married = await _submit(
            identity, _ktp(teen["nik"], "disdukcapil.ktp-el-rekam", married=True), "ktp-teen-00002"
        )

        assert refused.status_code == 422
        assert refused.json()["error"]["details"]["problems"][0]["type"] == "too_young"
        assert married.status_code == 201

    async def test_the_wrong_form_for_the_service_is_422(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 10)
        body = {"service_type": "disdukcapil.kk", "ktp_el": {"nik": adult["nik"]}}

        response = await _submit(identity, body, "kk-wrongform-1")

        assert response.status_code == 422
        assert response.json()["error"]["message"] == "Layanan ini memerlukan isian 'kk_new' saja"

    async def test_a_birth_before_the_mother_is_422(self, identity: IdentityApi) -> None:
        mother = await _register(identity, 11)
        body = {
            "service_type": "disdukcapil.akta-kelahiran",
            "birth": {
                "mother_nik": mother["nik"],
                "child_name": "Bayi Uji",
                "child_sex": "male",
                "child_birth_date": "1980-01-01",
                "child_birth_place": "Kota Sukamaju",
            },
        }

        response = await _submit(identity, body, "akta-early-001")

        assert response.status_code == 422
        assert response.json()["error"]["details"]["problems"][0]["type"] == "before_parent"


class TestActions:
    async def test_an_action_not_allowed_now_is_409_naming_state_and_allowed(
        self, identity: IdentityApi
    ) -> None:
        adult = await _register(identity, 12)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-409-00001")).json()

        response = await _act(identity, app["id"], "print")

        assert response.status_code == 409
        details = response.json()["error"]["details"]
        assert details["current_state"] == "submitted"
        assert details["allowed_actions"] == ["verify", "return"]

    async def test_an_officer_may_not_reject_403(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 13)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-403-00001")).json()

        response = await _act(identity, app["id"], "reject", reason="Data tidak sesuai")

        assert response.status_code == 403
        assert response.json()["error"]["details"]["required_roles"] == ["supervisor"]

    async def test_a_return_needs_a_reason_422(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 14)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-422-00001")).json()

        response = await _act(identity, app["id"], "return")

        assert response.status_code == 422

    async def test_a_return_naming_an_unknown_requirement_is_422(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 70)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-422-00002")).json()

        response = await _act(identity, app["id"], "return", reason="Lengkapi", missing=["paspor"])

        assert response.status_code == 422
        assert (await identity.client.get(f"{BASE}/{app['id']}", headers=officer())).json()[
            "state"
        ] == "submitted"

    async def test_another_agency_may_not_submit_403(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 71)

        response = await _submit(identity, _ktp(adult["nik"]), "ktp-403-00002", officer(agency="dpmptsp"))

        assert response.status_code == 403

    async def test_no_document_before_issue_404(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 72)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-404-00002")).json()

        response = await identity.client.get(f"{BASE}/{app['id']}/document", headers=officer())

        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Dokumen untuk permohonan ini belum diterbitkan"

    async def test_another_sites_application_is_404(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 15)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-404-00001")).json()

        read = await identity.client.get(f"{BASE}/{app['id']}", headers=officer(site=OTHER_SITE))
        acted = await _act(identity, app["id"], "verify", officer(site=OTHER_SITE))

        assert read.status_code == 404
        assert acted.status_code == 404

    async def test_return_pauses_and_the_citizen_resubmits(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 16)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-return-001")).json()

        returned = await _act(identity, app["id"], "return", reason="Foto KK tidak terbaca", missing=["kk"])
        tracked = await identity.client.get(f"{BASE}/track/{app['tracking_code']}")
        identity.clock.at += timedelta(days=7)
        resubmitted = await _act(identity, app["id"], "resubmit", citizen(adult["citizen_ref"]))

        assert returned.json()["paused"] is True
        assert returned.json()["sla_due_on"] is None
        assert tracked.json()["missing"] == ["kk"]
        assert tracked.json()["expected_completion_date"] is None
        assert resubmitted.status_code == 200, resubmitted.text
        assert resubmitted.json()["state"] == "submitted"
        assert resubmitted.json()["sla_due_on"] == "2026-11-11"
        returned_event = [p for t, p, _ in await _events(identity) if t == "DocumentApplicationReturned"]
        assert returned_event[0]["missing"] == ["kk"]
        assert returned_event[0]["officer_ref"] == "officer-1"

    async def test_another_citizen_cannot_resubmit(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 17)
        other = await _register(identity, 18)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-other-0001")).json()
        await _act(identity, app["id"], "return", reason="Lengkapi KK")

        response = await _act(identity, app["id"], "resubmit", citizen(other["citizen_ref"]))

        assert response.status_code == 404

    async def test_two_officers_verifying_at_once_one_wins(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 19)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-race-0002")).json()

        answers = await asyncio.gather(
            *(_act(identity, app["id"], "verify", officer(f"officer-{n}")) for n in range(4))
        )

        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]


class TestKkAndAkta:
    async def test_a_new_kk_gets_a_number_of_the_sites_region_and_issue_day(
        self, identity: IdentityApi
    ) -> None:
        head = await _register(identity, 20, sex=Sex.MALE)
        member = await _register(identity, 21)
        body = {
            "service_type": "disdukcapil.kk",
            "kk_new": {"head_nik": head["nik"], "member_niks": [member["nik"]]},
        }
        app = (await _submit(identity, body, "kk-new-000001")).json()
        await _act(identity, app["id"], "verify")
        await _act(identity, app["id"], "issue")

        number = (await identity.client.get(f"{BASE}/{app['id']}/document", headers=officer())).json()

        assert number["medium"] == "electronic"
        kk = number["document_number"]
        assert kk[:4] == "3298"
        assert kk[6:12] == "031126"
        assert kk[12:] == "0001"
        assert parse_kk(kk, today=TODAY).issued_on == date(2026, 11, 3)

    async def test_a_kk_change_keeps_the_family_number(self, identity: IdentityApi) -> None:
        head = await _register(identity, 22, sex=Sex.MALE)
        child = await _register(identity, 23, born=date(2010, 4, 2))
        body = {
            "service_type": "disdukcapil.kk-perubahan",
            "kk_change": {
                "applicant_nik": head["nik"],
                "kk_number": head["kk_number"],
                "changes": [{"change": "add", "nik": child["nik"]}],
            },
        }
        app = (await _submit(identity, body, "kk-change-0001")).json()
        for action in ("verify", "update_members", "issue"):
            assert (await _act(identity, app["id"], action)).status_code == 200

        number = (await identity.client.get(f"{BASE}/{app['id']}/document", headers=officer())).json()

        assert number["document_number"] == head["kk_number"]

    async def test_a_birth_certificate_is_signed_by_a_supervisor_with_a_register_number(
        self, identity: IdentityApi
    ) -> None:
        mother = await _register(identity, 24)
        body = {
            "service_type": "disdukcapil.akta-kelahiran",
            "birth": {
                "mother_nik": mother["nik"],
                "child_name": "Bayi Uji Satu",
                "child_sex": "female",
                "child_birth_date": "2026-10-30",
                "child_birth_place": "Kota Sukamaju",
            },
        }
        app = (await _submit(identity, body, "akta-birth-001")).json()
        await _act(identity, app["id"], "verify")
        await _act(identity, app["id"], "register")
        by_officer = await _act(identity, app["id"], "sign")
        signed = await _act(identity, app["id"], "sign", supervisor())

        assert by_officer.status_code == 403
        assert signed.status_code == 200, signed.text
        number = (await identity.client.get(f"{BASE}/{app['id']}/document", headers=officer())).json()
        assert number["document_number"] == "3298-LT-03112026-0001"
        raw = b"".join(r for _, _, r in await _events(identity))
        assert b"Bayi Uji" not in raw
        assert b"2026-10-30" not in raw

    async def test_the_newborn_is_registered_with_a_new_nik_on_the_mothers_kk(
        self, identity: IdentityApi
    ) -> None:
        mother = await _register(identity, 25)
        body = {
            "service_type": "disdukcapil.akta-kelahiran",
            "birth": {
                "mother_nik": mother["nik"],
                "child_name": "Bayi Uji Dua",
                "child_sex": "female",
                "child_birth_date": "2026-10-30",
                "child_birth_place": "Kota Sukamaju",
            },
        }
        app = (await _submit(identity, body, "akta-birth-002")).json()
        for action, headers in (("verify", officer()), ("register", officer()), ("sign", supervisor())):
            assert (await _act(identity, app["id"], action, headers)).status_code == 200

        signed = (await identity.client.get(f"{BASE}/{app['id']}", headers=officer())).json()
        child = await identity.client.get(f"/v1/citizens/{signed['subject_ref']}", headers=officer())

        assert child.status_code == 200
        record = child.json()
        assert record["full_name"] == "Bayi Uji Dua"
        assert record["birth_date"] == "2026-10-30"
        assert record["sex"] == "female"
        assert record["kk_number"] == mother["kk_number"][:4] + "*" * 12
        rows = {r["citizen_ref"] for r in await identity.citizen_rows()}
        assert signed["subject_ref"] in rows
        assert signed["subject_ref"] not in b"".join(r for _, _, r in await _events(identity)).decode()

    async def test_without_registration_the_child_gets_no_record(self, identity: IdentityApi) -> None:
        mother = await _register(identity, 26)
        body = {
            "service_type": "disdukcapil.akta-kelahiran",
            "birth": {
                "mother_nik": mother["nik"],
                "child_name": "Bayi Uji Tiga",
                "child_sex": "male",
                "child_birth_date": "2026-10-30",
                "child_birth_place": "Kota Sukamaju",
                "register_child": False,
            },
        }
        app = (await _submit(identity, body, "akta-birth-003")).json()
        for action, headers in (("verify", officer()), ("register", officer()), ("sign", supervisor())):
            await _act(identity, app["id"], action, headers)

        signed = (await identity.client.get(f"{BASE}/{app['id']}", headers=officer())).json()

        assert signed["state"] == "issued"
        assert signed["subject_ref"] is None
        assert len(await identity.citizen_rows()) == 1

    async def test_concurrent_issues_get_unique_serials(self, identity: IdentityApi) -> None:
        ids = []
        for n in range(6):
            mother = await _register(identity, 30 + n)
            body = {
                "service_type": "disdukcapil.akta-kelahiran",
                "birth": {
                    "mother_nik": mother["nik"],
                    "child_name": f"Bayi Uji {n}",
                    "child_sex": "male",
                    "child_birth_date": "2026-10-20",
                    "child_birth_place": "Kota Sukamaju",
                },
            }
            app = (await _submit(identity, body, f"akta-race-{n:04d}")).json()
            await _act(identity, app["id"], "verify")
            await _act(identity, app["id"], "register")
            ids.append(app["id"])

        signed = await asyncio.gather(*(_act(identity, i, "sign", supervisor(f"sup-{i[:4]}")) for i in ids))
        numbers = [
            (await identity.client.get(f"{BASE}/{i}/document", headers=officer())).json()["document_number"]
            for i in ids
        ]

        assert [s.status_code for s in signed] == [200] * 6
        assert sorted(n[-4:] for n in numbers) == ["0001", "0002", "0003", "0004", "0005", "0006"]
        assert len(await identity.citizen_rows()) == 12  # six mothers and their six newborns


class TestTrackingAndQueue:
    async def test_tracking_shows_status_and_due_date_only(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 40)
        app = (await _submit(identity, _ktp(adult["nik"]), "ktp-track-0001")).json()

        tracked = await identity.client.get(f"{BASE}/track/{app['tracking_code'].lower()}")

        assert tracked.status_code == 200
        body = tracked.json()
        assert body["status_label"] == "Permohonan diterima"
        assert body["expected_completion_date"] == "2026-11-04"
        assert "applicant_ref" not in body and "officer" not in tracked.text
        assert adult["citizen_ref"] not in tracked.text
        assert (await identity.client.get(f"{BASE}/track/ZZZZZZZZZZ")).status_code == 404

    async def test_the_queue_is_paged_filtered_and_scoped(self, identity: IdentityApi) -> None:
        for n in range(3):
            adult = await _register(identity, 50 + n)
            await _submit(identity, _ktp(adult["nik"]), f"ktp-queue-{n:04d}")
        adult = await _register(identity, 60)
        await _submit(identity, _ktp(adult["nik"], "disdukcapil.ktp-el-rekam"), "ktp-queue-rekam")

        page = await identity.client.get(
            BASE, params={"service_type": "disdukcapil.ktp-el-cetak", "size": 2}, headers=officer()
        )
        other_site = await identity.client.get(BASE, headers=officer(site=OTHER_SITE))
        other_agency = await identity.client.get(BASE, headers=officer(agency="dpmptsp"))
        citizen_queue = await identity.client.get(
            BASE, headers=bearer(roles=[Role.CITIZEN], agency=None, site=None)
        )

        assert page.json()["total"] == 3
        assert len(page.json()["items"]) == 2
        assert other_site.json()["total"] == 0
        assert other_agency.status_code == 403
        assert citizen_queue.status_code == 403

    async def test_a_citizen_reads_their_own_application_only(self, identity: IdentityApi) -> None:
        adult = await _register(identity, 61)
        other = await _register(identity, 62)
        online = _ktp(adult["nik"]) | {"channel": "online"}
        mine = await _submit(identity, online, "ktp-online-001", citizen(adult["citizen_ref"]))
        for_other = await _submit(
            identity,
            _ktp(other["nik"]) | {"channel": "online"},
            "ktp-online-002",
            citizen(adult["citizen_ref"]),
        )

        own = await identity.client.get(f"{BASE}/{mine.json()['id']}", headers=citizen(adult["citizen_ref"]))
        theirs = await identity.client.get(
            f"{BASE}/{mine.json()['id']}", headers=citizen(other["citizen_ref"])
        )

        assert mine.status_code == 201, mine.text
        assert for_other.status_code == 403
        assert own.status_code == 200
        assert theirs.status_code == 404
        assert re.fullmatch(r"[A-Z2-9]{10}", own.json()["tracking_code"])
