"""Schema-driven fuzzing of a service's HTTP API with schemathesis, in process and on the test's event loop.

The OpenAPI document is read from the application itself; schemathesis (through Hypothesis) generates
requests that fit it and requests that do not, and each is sent through the service's own
``httpx.AsyncClient``, so the database engine stays on the loop that created it. Generation is
derandomized: the same schema gives the same requests on every run. No answer may be a 5xx, and a 2xx
must match the schema's content type and response schema.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import APIOperation, GenerationMode
from schemathesis import Case as GenericCase
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

__all__ = ["Budget", "fuzz"]

Headers = dict[str, str]
Case = GenericCase[APIOperation[Any, Any, Any, Any]]
BASE_URL = "http://test"


@dataclass(frozen=True)
class Budget:
    """Examples per operation: requests that fit the schema, requests that do not, and requests that fit
    it aimed at records that exist (when the operation's path names one)."""

    positive: int = 80
    negative: int = 40
    known: int = 30


def _draw(strategy: SearchStrategy[Case], count: int) -> list[Case]:
    drawn: list[Case] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: Case) -> None:
        drawn.append(case)

    # Unsatisfiable: e.g. no request breaks the schema of an operation without parameters.
    with contextlib.suppress(Unsatisfiable):
        collect()
    return drawn


async def _send(client: httpx.AsyncClient, case: Case, headers: Headers) -> httpx.Response:
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=BASE_URL)
    sent_headers = {str(k): str(v) for k, v in (kwargs.get("headers") or {}).items()}
    sent_headers.pop("Authorization", None)
    sent_headers |= headers
    # The serializer gives a JSON body as `json` (a value) or `data` (bytes already encoded).
    content: bytes | None = kwargs.get("data")
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
    return await client.request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=sent_headers, content=content
    )


def _checks_for(response: httpx.Response) -> list[Any]:
    if 200 <= response.status_code < 300:
        return [not_a_server_error, content_type_conformance, response_schema_conformance]
    return [not_a_server_error]


async def fuzz(
    client: httpx.AsyncClient,
    callers: Sequence[Headers],
    *,
    budget: Budget,
    known: Mapping[str, Sequence[str]] | None = None,
    skip: Collection[str] = (),
) -> tuple[int, list[str]]:
    """Fuzz every operation of the application behind ``client``; the number of requests sent and the
    failures found. Each operation's requests take in turn the credentials of the ``callers`` it does
    not refuse (401/403); ``known`` gives path parameters of existing records. ``skip`` names operations
    (``"GET /path/{param}"``) left out, such as event streams that never end by design."""
    document = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"The OpenAPI document has an operation schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        if f"{operation.method.upper()} {operation.path}" in skip:
            continue
        cases = _draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE), budget.positive)
        fixed = {name: values for name, values in (known or {}).items() if "{" + name + "}" in operation.path}
        combinations = [
            dict(zip(fixed, values, strict=True)) for values in itertools.product(*fixed.values())
        ]
        for path in combinations if fixed else []:
            strategy = operation.as_strategy(path_parameters=path)
            cases += _draw(strategy, max(1, budget.known // len(combinations)))
        cases += _draw(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), budget.negative)
        if not cases:
            continue
        # The first request goes to every caller; the rest go in turn to the callers the operation let
        # through, so that they reach its handler.
        allowed: list[Headers] = []
        for headers in callers:
            status = await _exchange(client, cases[0], headers, failures)
            sent += status is not None
            if status not in (None, 401, 403):
                allowed.append(headers)
        turn = itertools.cycle(allowed or callers)
        for case in cases[1:]:
            sent += await _exchange(client, case, next(turn), failures) is not None
    return sent, failures


async def _exchange(
    client: httpx.AsyncClient, case: Case, headers: Headers, failures: list[str]
) -> int | None:
    """Send one case and check the answer: its status, or None when httpx itself refuses to send it."""
    try:
        response = await _send(client, case, headers)
    except (httpx.InvalidURL, UnicodeEncodeError):
        return None
    try:
        case.validate_response(response, checks=_checks_for(response), headers=headers)
    except FailureGroup as group:
        failures.append(f"{case.operation.label}: {group.message}")
    return response.status_code
