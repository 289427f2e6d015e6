"""Idempotency-Key helpers: fingerprints and replayed answers."""

from __future__ import annotations

import orjson
import pytest

from mpp.kit.idempotency import (
    REPLAYED_HEADER,
    IdempotencyKeyReused,
    StoredAnswer,
    fingerprint,
    replayed,
)

pytestmark = pytest.mark.unit


def test_the_fingerprint_ignores_key_order_but_not_values() -> None:
    a = {"service_type": "x", "documents": [{"size": 1}], "channel": "walk_in"}
    b = {"channel": "walk_in", "documents": [{"size": 1}], "service_type": "x"}
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint({**a, "channel": "online"})


def test_a_replay_returns_the_first_answer_marked_as_replayed() -> None:
    body = {"id": "app-1", "state": "verifying_nik"}
    response = replayed(StoredAnswer(fingerprint({"k": 1}), 201, body), fingerprint({"k": 1}))
    assert response.status_code == 201
    assert orjson.loads(response.body) == body
    assert response.headers[REPLAYED_HEADER] == "true"
    assert "location" not in response.headers


def test_a_replayed_creation_points_to_what_was_created() -> None:
    h = fingerprint({"k": 1})
    response = replayed((h, 201, {"id": "app-1"}), h, location=lambda b: f"/v1/applications/{b['id']}")
    assert response.headers["location"] == "/v1/applications/app-1"


def test_a_replayed_error_has_no_location() -> None:
    h = fingerprint({"k": 1})
    response = replayed((h, 409, {"code": "conflict"}), h, location=lambda b: "/v1/x")
    assert response.status_code == 409
    assert "location" not in response.headers


def test_a_key_reused_with_another_body_is_refused_in_indonesian() -> None:
    with pytest.raises(IdempotencyKeyReused) as refused:
        replayed(StoredAnswer(fingerprint({"k": 1}), 201, {}), fingerprint({"k": 2}))
    assert refused.value.status_code == 422
    assert "Idempotency-Key sudah dipakai" in refused.value.message
