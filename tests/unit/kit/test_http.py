import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.types import Message

from mpp.kit.auth import Principal, Role, bearer_principal, issue_token, require_roles
from mpp.kit.http import (
    EDGE_CONFLICT_ATTEMPTS,
    DomainError,
    add_inner_middleware,
    create_http_app,
    error_response,
)
from mpp.kit.observability import ServiceMetrics, configure_logging, setup_tracing
from mpp.kit.settings import ServiceSettings

pytestmark = pytest.mark.unit

SECRET = "development-secret-of-at-least-32-bytes"
MAX_BODY = 1024
NIK = "3201014508900001"


class Applicant(BaseModel):
    nik: str = Field(pattern=r"^\d{16}$")
    name: str


class SubmitApplication(BaseModel):
    applicant: Applicant
    copies: int


class ApplicationConflictError(DomainError):
    status_code = 409
    code = "application_conflict"
    message = "Permohonan tidak dapat diproses pada status saat ini"


Officer = Annotated[Principal, Depends(require_roles(Role.OFFICER, Role.SUPERVISOR))]


def _build_app(readiness: Callable[[], Awaitable[dict[str, bool]]] | None = None) -> FastAPI:
    settings = ServiceSettings(jwt_hs256_secret=SECRET, http_max_body_bytes=MAX_BODY)
    app = create_http_app(
        settings=settings, metrics=ServiceMetrics("test"), title="test", version="0", readiness=readiness
    )

    @app.post("/applications", status_code=201)
    async def submit(command: SubmitApplication) -> dict[str, int]:
        return {"copies": command.copies}

    @app.get("/applications/{application_id}")
    async def get_application(application_id: str, officer: Officer) -> dict[str, str]:
        officer.ensure_scope("dpmptsp", "mpp-demo")
        return {"id": application_id}

    @app.get("/me")
    async def me(principal: Annotated[Principal, Depends(bearer_principal)]) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.post("/applications/{application_id}/approve")
    async def approve(application_id: str) -> None:
        raise ApplicationConflictError(details={"state": "submitted", "allowed_actions": ["verify"]})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"database refused NIK {NIK}")

    @app.get("/db-down")
    async def db_down() -> None:
        raise ConnectionRefusedError(111, "Connect call failed")

    @app.post("/db-refuses/{sqlstate}")
    async def db_refuses(sqlstate: str) -> None:
        raise DBAPIError("INSERT INTO applicants (name) VALUES ($1)", ("Siti\x00",), _DriverError(sqlstate))

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.state.runs = []

    @app.post("/deadlocked/{times}")
    async def deadlocked(times: int, command: SubmitApplication) -> dict[str, Any]:
        """Rolled back as a deadlock's victim the first ``times`` runs of the request."""
        app.state.runs.append(command.copies)
        if len(app.state.runs) <= times:
            raise DBAPIError("UPDATE visits SET ...", (), _DriverError("40P01"))
        return {"runs": app.state.runs}

    @app.get("/deadlocked-while-answering")
    async def deadlocked_while_answering() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            app.state.runs.append(1)
            yield b"["
            raise DBAPIError("SELECT ...", (), _DriverError("40P01"))

        return StreamingResponse(chunks(), media_type="application/json")

    return app


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://mpp.test") as client:
        yield client


def _bearer(
    roles: list[str], agency: str | None = "dpmptsp", site: str | None = "mpp-demo"
) -> dict[str, str]:
    token = issue_token(SECRET, subject="user-1", roles=roles, agency=agency, site=site)
    return {"Authorization": f"Bearer {token}"}


async def _chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


class TestValidationErrors:
    async def test_wrong_types_and_missing_fields_list_each_field(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/applications", json={"applicant": {"nik": "12"}, "copies": "two"})

        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["message"] == "Data yang dikirim tidak valid"
        fields = {problem["field"]: problem["problem"] for problem in error["details"]["problems"]}
        assert set(fields) == {"applicant.nik", "applicant.name", "copies"}
        assert fields["applicant.name"] == "Wajib diisi"
        assert fields["copies"] == "Harus berupa bilangan bulat"

    async def test_rejected_input_is_not_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/applications", json={"applicant": {"nik": f"{NIK}9"}, "copies": 1})

        assert response.status_code == 422
        assert NIK not in response.text

    async def test_malformed_json_is_a_clear_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/applications", content=b'{"applicant": ', headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_json"
        assert error["message"] == "Isi permintaan bukan JSON yang valid"


class TestBodyLimit:
    async def test_oversized_body_with_content_length_is_413(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/raw", content=b"x" * (MAX_BODY + 1))

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert "melebihi batas" in response.json()["error"]["message"]

    async def test_oversized_streamed_body_without_content_length_is_413(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/raw", content=_chunks(count=5, size=MAX_BODY // 2))

        assert response.request.headers.get("content-length") is None
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"

    async def test_oversized_streamed_json_body_is_413(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/applications",
            content=_chunks(count=5, size=MAX_BODY // 2),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 413

    async def test_body_at_the_limit_is_accepted(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/raw", content=_chunks(count=2, size=MAX_BODY // 2))

        assert response.status_code == 200
        assert response.json() == {"size": MAX_BODY}


class TestAuthErrors:
    async def test_missing_token_is_401_with_bearer_challenge(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/applications/app-1")

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"

    async def test_other_scheme_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})

        assert response.status_code == 401
        assert response.json()["error"]["message"] == "Token tidak valid atau sudah kedaluwarsa"

    async def test_bad_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/me", headers={"Authorization": "Bearer not.a.token"})

        assert response.status_code == 401

    async def test_valid_token_reaches_the_route(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/me", headers=_bearer(["citizen"]))

        assert response.json() == {"subject": "user-1"}

    async def test_missing_role_is_403(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/applications/app-1", headers=_bearer(["citizen"]))

        assert response.status_code == 403
        assert response.json() == {
            "error": {
                "code": "forbidden",
                "message": "Anda tidak berwenang untuk tindakan ini",
                "details": None,
            }
        }

    async def test_other_agency_gets_the_same_403(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/applications/app-1", headers=_bearer(["officer"], agency="disdukcapil"))

        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"

    async def test_officer_of_the_agency_is_allowed(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/applications/app-1", headers=_bearer(["officer"]))

        assert response.status_code == 200


class TestErrorMapping:
    async def test_domain_error_uses_its_status_and_details(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/applications/app-1/approve")

        assert response.status_code == 409
        assert response.json() == {
            "error": {
                "code": "application_conflict",
                "message": "Permohonan tidak dapat diproses pada status saat ini",
                "details": {"state": "submitted", "allowed_actions": ["verify"]},
            }
        }

    async def test_unknown_route_is_404_in_the_same_shape(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/nothing-here")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    async def test_wrong_method_is_405_with_allow_header(self, client: httpx.AsyncClient) -> None:
        response = await client.delete("/applications")

        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"
        assert response.json()["error"]["code"] == "method_not_allowed"

    async def test_unexpected_error_is_500_without_internals(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/boom", headers={"X-Correlation-Id": "req-500-check"})

        assert response.status_code == 500
        assert response.json() == {
            "error": {
                "code": "internal_error",
                "message": "Terjadi kesalahan pada sistem. Silakan coba lagi nanti.",
                "details": {"correlation_id": "req-500-check"},
            }
        }
        assert response.headers["X-Correlation-Id"] == "req-500-check"

    async def test_database_outage_is_503_with_retry_after(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/db-down")

        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "unavailable"


class TestDeadlockVictimsRunAgain:
    """A request whose transaction PostgreSQL rolled back as a deadlock's victim runs again at the edge,
    its body replayed, instead of answering 503 (every service, not only the queue's own retries)."""

    async def test_the_rerun_reads_the_same_body_and_answers(self, caplog: pytest.LogCaptureFixture) -> None:
        app = _build_app()
        body = {"applicant": {"nik": NIK, "name": "Siti"}, "copies": 3}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            with caplog.at_level(logging.WARNING, logger="mpp.kit.db"):
                response = await client.post("/deadlocked/2", json=body)

        assert response.status_code == 200
        assert response.json() == {"runs": [3, 3, 3]}
        retried = [r for r in caplog.records if r.getMessage() == "db.transaction.conflict_retried"]
        assert [getattr(r, "attempt", None) for r in retried] == [1, 2]
        assert {getattr(r, "what", None) for r in retried} == {"HTTP POST"}

    async def test_a_request_that_keeps_losing_gets_the_503_after_its_last_run(self) -> None:
        app = _build_app()
        body = {"applicant": {"nik": NIK, "name": "Siti"}, "copies": 1}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.post("/deadlocked/99", json=body)

        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert len(app.state.runs) == EDGE_CONFLICT_ATTEMPTS

    async def test_a_request_that_has_begun_answering_is_not_run_again(self) -> None:
        app = _build_app()
        sent: list[Message] = []

        requests = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> Message:
            return requests.pop() if requests else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/deadlocked-while-answering",
            "raw_path": b"/deadlocked-while-answering",
            "query_string": b"",
            "root_path": "",
            "headers": [],
            "client": ("127.0.0.1", 5000),
            "server": ("mpp.test", 80),
        }
        with pytest.raises(DBAPIError):
            await app(scope, receive, send)

        assert [m["type"] for m in sent].count("http.response.start") == 1
        assert app.state.runs == [1]


class TestCharactersTheDatabaseCannotStore:
    """PostgreSQL refuses NUL in text: such input is the client's error (4xx), never a 500."""

    @pytest.mark.parametrize(
        "url",
        ["/applications/app%00-1", "/applications/app-1?view=%00", "/applications/app-1?view=a%00b"],
        ids=["path", "query", "query, inside a value"],
    )
    async def test_a_nul_in_the_path_or_query_is_400_before_the_route_runs(
        self, client: httpx.AsyncClient, url: str
    ) -> None:
        response = await client.get(url, headers=_bearer(["officer"]))

        assert response.status_code == 400
        assert response.json() == {
            "error": {
                "code": "invalid_character",
                "message": "Data yang dikirim mengandung karakter yang tidak diizinkan",
                "details": None,
            }
        }
        assert response.headers["X-Correlation-Id"]

    @pytest.mark.parametrize("sqlstate", ["22021", "22P05"])
    async def test_text_the_database_refuses_to_store_is_422(
        self, client: httpx.AsyncClient, sqlstate: str
    ) -> None:
        response = await client.post(f"/db-refuses/{sqlstate}")

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_character"

    async def test_other_database_errors_stay_500(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/db-refuses/23502")

        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"

    async def test_a_percent_sign_that_is_not_a_nul_is_answered(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/applications/app-1?view=100%25", headers=_bearer(["officer"]))

        assert response.status_code == 200


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """JSON logging to the captured stderr, restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("test", "INFO", json=True)
    yield capsys
    root.handlers[:] = handlers
    root.setLevel(level)


class TestFailureLog:
    async def test_unexpected_error_is_logged_redacted_with_the_correlation_id(
        self, client: httpx.AsyncClient, json_logs: pytest.CaptureFixture[str]
    ) -> None:
        await client.get("/boom", headers={"X-Correlation-Id": "req-log-check"})

        lines = [json.loads(line) for line in json_logs.readouterr().err.splitlines()]
        [failure] = [line for line in lines if line["event"] == "http.request.failed"]
        assert failure["correlation_id"] == "req-log-check"
        assert failure["route"] == "/boom"
        assert "database refused NIK ************0001" in failure["exception"]
        assert NIK not in failure["exception"]


class TestCorrelationId:
    async def test_incoming_id_is_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"X-Correlation-Id": "req-abc-12345"})

        assert response.headers["X-Correlation-Id"] == "req-abc-12345"

    async def test_missing_id_is_generated(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")

        assert uuid.UUID(response.headers["X-Correlation-Id"])

    async def test_id_that_looks_like_personal_data_is_replaced(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"X-Correlation-Id": NIK})

        assert uuid.UUID(response.headers["X-Correlation-Id"])

    async def test_error_responses_carry_the_id(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/raw", content=b"x" * (MAX_BODY + 1), headers={"X-Correlation-Id": "req-413-x"}
        )

        assert response.headers["X-Correlation-Id"] == "req-413-x"


class TestProbesAndMetrics:
    async def test_healthz(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")

        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_metrics_count_requests_by_route_template(self, client: httpx.AsyncClient) -> None:
        await client.get("/applications/app-1", headers=_bearer(["officer"]))
        await client.get("/applications/app-2", headers=_bearer(["officer"]))

        response = await client.get("/metrics")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        expected = 'mpp_test_http_requests_total{method="GET",route="/applications/{application_id}",status="200"} 2.0'
        assert expected in response.text.splitlines()
        assert "app-1" not in response.text

    async def test_unmatched_paths_share_one_label(self, client: httpx.AsyncClient) -> None:
        await client.get(f"/citizens/{NIK}")

        response = await client.get("/metrics")

        assert NIK not in response.text
        assert 'route="unmatched",status="404"' in response.text

    async def test_readyz_is_200_when_every_check_passes(self) -> None:
        async def readiness() -> dict[str, bool]:
            return {"database": True, "kafka": True}

        response = await _get(_build_app(readiness), "/readyz")

        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {"database": True, "kafka": True}}

    async def test_readyz_is_503_when_a_check_fails(self) -> None:
        async def readiness() -> dict[str, bool]:
            return {"database": True, "kafka": False}

        response = await _get(_build_app(readiness), "/readyz")

        assert response.status_code == 503
        assert response.json() == {"status": "not_ready", "checks": {"database": True, "kafka": False}}

    async def test_readyz_is_503_when_a_check_raises(self) -> None:
        async def readiness() -> dict[str, bool]:
            raise ConnectionError("database unreachable")

        response = await _get(_build_app(readiness), "/readyz")

        assert response.status_code == 503


class TestServerSpan:
    async def test_request_span_continues_the_incoming_trace(self, client: httpx.AsyncClient) -> None:
        exporter = InMemorySpanExporter()
        setup_tracing("test", None).add_span_processor(SimpleSpanProcessor(exporter))
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"

        await client.get("/applications/app-1", headers={**_bearer(["officer"]), "traceparent": traceparent})

        [span] = [span for span in exporter.get_finished_spans() if span.name.startswith("GET /applications")]
        assert span.name == "GET /applications/{application_id}"
        assert format(span.context.trace_id, "032x") == trace_id
        attributes: dict[str, Any] = dict(span.attributes or {})
        assert attributes["http.route"] == "/applications/{application_id}"
        assert attributes["http.response.status_code"] == 200


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://mpp.test"
    ) as client:
        return await client.get(path)


class _Teapot:
    """A layer that answers one path itself (by raising a domain error or failing) and hands on the rest."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/teapot":
            await error_response(ApplicationConflictError(details={"state": "brewing"}))(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] == "/teapot-breaks":
            raise RuntimeError("no tea")
        await self.app(scope, receive, send)


class TestInnerMiddleware:
    @pytest.fixture
    async def inner(self) -> AsyncIterator[httpx.AsyncClient]:
        app = _build_app()
        add_inner_middleware(app, _Teapot)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mpp.test") as c:
            yield c

    async def test_its_answers_pass_the_edge(self, inner: httpx.AsyncClient) -> None:
        response = await inner.get("/teapot", headers={"X-Correlation-Id": "corr-inner-0001"})

        assert response.status_code == 409
        assert response.json() == {
            "error": {
                "code": "application_conflict",
                "message": "Permohonan tidak dapat diproses pada status saat ini",
                "details": {"state": "brewing"},
            }
        }
        assert response.headers["x-correlation-id"] == "corr-inner-0001"

    async def test_its_failures_get_the_edge_500(self, inner: httpx.AsyncClient) -> None:
        response = await inner.get("/teapot-breaks")

        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"

    async def test_other_requests_reach_the_routes(self, inner: httpx.AsyncClient) -> None:
        response = await inner.get("/me", headers=_bearer(["officer"]))

        assert response.status_code == 200
        assert response.json() == {"subject": "user-1"}

    async def test_cannot_be_added_once_the_app_runs(self) -> None:
        app = _build_app()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mpp.test") as c:
            await c.get("/healthz")

        with pytest.raises(RuntimeError):
            add_inner_middleware(app, _Teapot)
