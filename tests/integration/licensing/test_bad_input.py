"""Bad input to ``POST /v1/applications`` is refused with a 4xx naming the field, never a 500, and stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mpp.kit.auth import Role
from tests.integration.licensing.harness import LicensingApi, bearer, officer, submission, synthetic_nik

pytestmark = pytest.mark.integration

NIK = synthetic_nik(seed=1)
TEN_MIB = 10 * 1024 * 1024


def _body(**top: Any) -> dict[str, Any]:
    return submission(seed=1) | top


def _without(field: str) -> dict[str, Any]:
    body = submission(seed=1)
    del body[field]
    return body


def _applicant(**fields: Any) -> dict[str, Any]:
    body = submission(seed=1)
    body["applicant"] = body["applicant"] | fields
    return body


def _applicant_without(field: str) -> dict[str, Any]:
    body = submission(seed=1)
    del body["applicant"][field]
    return body


def _document(**fields: Any) -> dict[str, Any]:
    body = submission(seed=1)
    body["documents"] = [body["documents"][0] | fields]
    return body


def _document_without(field: str) -> dict[str, Any]:
    body = submission(seed=1)
    del body["documents"][0][field]
    return body


def _nik(nik: str) -> dict[str, Any]:
    return _applicant(nik=nik)


INVALID_FIELDS: dict[str, tuple[Callable[[], Any], str]] = {
    # wrong types
    "service type is a number": (lambda: _body(service_type=123), "service_type"),
    "site is a list": (lambda: _body(site=["mpp-kota-sukamaju"]), "site"),
    "channel is unknown": (lambda: _body(channel="fax"), "channel"),
    "applicant is a string": (lambda: _body(applicant="Siti Rahmawati"), "applicant"),
    "applicant name is a number": (lambda: _applicant(name=42), "applicant.name"),
    "nik is a number": (lambda: _applicant(nik=3201011501900001), "applicant.nik"),
    "documents is a string": (lambda: _body(documents="gambar.pdf"), "documents"),
    "document size is text": (lambda: _document(size_bytes="besar"), "documents[0].size_bytes"),
    "document size is fractional": (lambda: _document(size_bytes=1.5), "documents[0].size_bytes"),
    "body is a list": (lambda: [submission(seed=1)], "body"),
    # missing fields
    "no service type": (lambda: _without("service_type"), "service_type"),
    "no applicant": (lambda: _without("applicant"), "applicant"),
    "no nik": (lambda: _applicant_without("nik"), "applicant.nik"),
    "no applicant name": (lambda: _applicant_without("name"), "applicant.name"),
    "no document content type": (lambda: _document_without("content_type"), "documents[0].content_type"),
    "empty object": (dict, "service_type"),
    "empty site": (lambda: _body(site=""), "site"),
    "one-letter name": (lambda: _applicant(name="S"), "applicant.name"),
    # extra fields
    "extra top-level field": (lambda: _body(fee=0), "fee"),
    "extra applicant field": (lambda: _applicant(email="siti@example.id"), "applicant.email"),
    "extra document field": (lambda: _document(url="https://example.id/a.pdf"), "documents[0].url"),
    # NIK structure
    "nik with an unknown province": (lambda: _nik("9901011501900001"), "applicant.nik"),
    "nik with kabupaten 00": (lambda: _nik("3200011501900001"), "applicant.nik"),
    "nik with day 32": (lambda: _nik("3201013201900001"), "applicant.nik"),
    "nik with month 13": (lambda: _nik("3201011513900001"), "applicant.nik"),
    "nik with 31 February": (lambda: _nik("3201013102900001"), "applicant.nik"),
    "nik of a woman born on day 32": (lambda: _nik("3201017201900001"), "applicant.nik"),
    "nik with serial 0000": (lambda: _nik("3201011501900000"), "applicant.nik"),
    "nik with 15 digits": (lambda: _nik("320101150190001"), "applicant.nik"),
    "nik with 17 digits": (lambda: _nik("32010115019000011"), "applicant.nik"),
    "nik with letters": (lambda: _nik("32010115019000AB"), "applicant.nik"),
    "nik with spaces inside": (lambda: _nik("3201 0115 0190 0001"), "applicant.nik"),
    "empty nik": (lambda: _nik(""), "applicant.nik"),
    # documents
    "document one byte over 10 MiB": (lambda: _document(size_bytes=TEN_MIB + 1), "documents[0].size_bytes"),
    "empty document": (lambda: _document(size_bytes=0), "documents[0].size_bytes"),
    "executable document": (
        lambda: _document(content_type="application/x-msdownload"),
        "documents[0].content_type",
    ),
    "html document": (lambda: _document(content_type="text/html"), "documents[0].content_type"),
    "pdf type with parameters": (
        lambda: _document(content_type="application/pdf; charset=utf-8"),
        "documents[0].content_type",
    ),
    "document without a file name": (lambda: _document(file_name=""), "documents[0].file_name"),
    "31 documents": (lambda: _body(documents=submission(seed=1)["documents"] * 31), "documents"),
}


class TestSubmitWithInvalidFields:
    @pytest.mark.parametrize(("body", "field"), INVALID_FIELDS.values(), ids=INVALID_FIELDS.keys())
    async def test_is_422_naming_the_field(
        self, licensing: LicensingApi, body: Callable[[], Any], field: str
    ) -> None:
        response = await licensing.client.post("/v1/applications", json=body(), headers=officer())

        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert field in [p["field"] for p in error["details"]["problems"]]
        assert all(p["problem"] for p in error["details"]["problems"])
        assert await licensing.stored() == (0, 0)

    @pytest.mark.parametrize(
        "nik", ["9901011501900001", "3201013201900001", "3201011501900000", "32010115019000011"]
    )
    async def test_a_refused_nik_is_not_echoed(self, licensing: LicensingApi, nik: str) -> None:
        response = await licensing.client.post("/v1/applications", json=_nik(nik), headers=officer())

        assert response.status_code == 422
        assert nik not in response.text
        assert await licensing.stored() == (0, 0)

    async def test_a_short_idempotency_key_is_422_naming_the_header(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post(
            "/v1/applications", json=submission(), headers={**officer(), "Idempotency-Key": "short"}
        )

        assert response.status_code == 422
        fields = [p["field"] for p in response.json()["error"]["details"]["problems"]]
        assert any("Idempotency-Key" in f for f in fields)
        assert await licensing.stored() == (0, 0)


class TestSubmitForAnUnknownServiceType:
    async def test_is_422_with_a_clear_message(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post(
            "/v1/applications", json=_body(service_type="dpmptsp.tidak-ada"), headers=officer()
        )

        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "unprocessable"
        assert error["message"] == "Jenis layanan perizinan tidak dikenal"
        assert error["details"]["field"] == "service_type"
        assert "dpmptsp.tidak-ada" in error["details"]["problem"]
        assert await licensing.stored() == (0, 0)

    async def test_a_licensing_service_without_a_workflow_is_refused(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post(
            "/v1/applications", json=_body(service_type="dpmptsp.nib"), headers=officer()
        )

        assert response.status_code == 422
        error = response.json()["error"]
        assert error["message"] == "Jenis layanan ini belum memiliki alur kerja"
        assert error["details"]["field"] == "service_type"
        assert await licensing.stored() == (0, 0)

    async def test_a_non_licensing_service_of_the_officers_agency_is_unknown_here(
        self, licensing: LicensingApi
    ) -> None:
        response = await licensing.client.post(
            "/v1/applications",
            json=_body(service_type="disdukcapil.kk"),
            headers=officer(agency="disdukcapil"),
        )

        assert response.status_code == 422
        assert response.json()["error"]["details"]["field"] == "service_type"
        assert await licensing.stored() == (0, 0)

    async def test_a_non_licensing_service_applied_for_online_is_unknown_here(
        self, licensing: LicensingApi
    ) -> None:
        citizen = bearer(roles=[Role.CITIZEN], agency=None, site=None, subject="citizen-1")

        response = await licensing.client.post(
            "/v1/applications",
            json=_body(service_type="dpmptsp.legalisasi", channel="online"),
            headers=citizen,
        )

        assert response.status_code == 422
        assert response.json()["error"]["details"]["field"] == "service_type"
        assert await licensing.stored() == (0, 0)


class TestSubmitWithAnUnreadableBody:
    @pytest.mark.parametrize(
        "content",
        [
            b'{"service_type": "dpmptsp.pbg",',
            b"{'service_type': 'dpmptsp.pbg'}",
            b'{"service_type": "dpmptsp.pbg"}}',
            b"\xff\xfe\x00{",
        ],
        ids=["truncated", "single quotes", "trailing brace", "not utf-8"],
    )
    async def test_malformed_json_is_400(self, licensing: LicensingApi, content: bytes) -> None:
        response = await licensing.client.post(
            "/v1/applications", content=content, headers={**officer(), "Content-Type": "application/json"}
        )

        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_json"
        assert error["details"]["problems"][0]["field"] == "body"
        assert await licensing.stored() == (0, 0)

    async def test_an_empty_body_is_422_naming_the_body(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post(
            "/v1/applications", content=b"", headers={**officer(), "Content-Type": "application/json"}
        )

        assert response.status_code == 422
        assert [p["field"] for p in response.json()["error"]["details"]["problems"]] == ["body"]
        assert await licensing.stored() == (0, 0)

    async def test_a_body_over_the_limit_is_413(self, licensing: LicensingApi) -> None:
        body = _applicant(name="x" * (1024 * 1024))

        response = await licensing.client.post("/v1/applications", json=body, headers=officer())

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert await licensing.stored() == (0, 0)

    async def test_a_streamed_body_over_the_limit_is_413(self, licensing: LicensingApi) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"service_type": "dpmptsp.pbg", "applicant": {"name": "'
            for _ in range(20):
                yield b"x" * 65_536
            yield b'"}}'

        response = await licensing.client.post(
            "/v1/applications", content=chunks(), headers={**officer(), "Content-Type": "application/json"}
        )

        assert "Content-Length" not in response.request.headers
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert await licensing.stored() == (0, 0)


class TestNulCharacters:
    """PostgreSQL cannot store NUL: a NUL in a path, query or body is a 4xx, never a 500."""

    @pytest.mark.parametrize(
        "url",
        [
            "/v1/applications/0000%00",
            "/v1/applications/0000%00/actions/verify",
            "/v1/applications?status=submitted%00",
            "/v1/track/ABC%00DEFG",
            "/v1/permits/verification?number=503%00/PBG",
        ],
    )
    async def test_in_the_path_or_query_is_400(self, licensing: LicensingApi, url: str) -> None:
        method = "POST" if "/actions/" in url else "GET"
        response = await licensing.client.request(method, url, headers=officer())

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_character"

    async def test_in_the_applicants_name_is_422_and_stores_nothing(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post(
            "/v1/applications", json=_applicant(name="Siti\u0000Rahmawati"), headers=officer()
        )

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_character"
        assert await licensing.stored() == (0, 0)
