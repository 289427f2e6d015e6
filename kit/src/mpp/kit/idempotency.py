"""Idempotency-Key handling shared by HTTP edges: the request fingerprint, the replayed answer and the
error for a key reused with another body.

A service keeps the answers in its own table (``(principal, key) -> request hash, status, body``) with
a unique constraint on ``(principal, key)``: the first request stores its answer in the same transaction
as its effects, a retry finds it and gets the same answer back, and of two concurrent requests with one
key the second fails on the constraint and then replays the first one's answer. Services whose answers
hold personal data store the body encrypted; this module never sees how.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Header
from fastapi.responses import JSONResponse

from mpp.kit.http import DomainError

__all__ = [
    "REPLAYED_HEADER",
    "IdempotencyKey",
    "IdempotencyKeyReused",
    "StoredAnswer",
    "canonical",
    "fingerprint",
    "replayed",
]

REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        description="Client-chosen key; a retry with the same key and body gets the first answer back.",
    ),
]
"""A required ``Idempotency-Key`` header (a request without it is answered 422)."""


class IdempotencyKeyReused(DomainError):
    status_code = 422
    code = "idempotency_key_reused"
    message = "Idempotency-Key sudah dipakai untuk permintaan yang berbeda"


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    request_hash: str
    status_code: int
    body: dict[str, Any]


def canonical(body: Any) -> bytes:
    """The request body as canonical JSON bytes (sorted keys), the input of a fingerprint."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def fingerprint(body: Any) -> str:
    """SHA-256 of the canonical body. Bodies holding personal data should use a keyed hash instead."""
    return hashlib.sha256(canonical(body)).hexdigest()


def replayed(
    found: tuple[str, int, dict[str, Any]] | StoredAnswer,
    request_hash: str,
    location: Callable[[dict[str, Any]], str | None] | None = None,
) -> JSONResponse:
    """The stored answer of an earlier request with the same key, marked as replayed; raises
    :class:`IdempotencyKeyReused` when the earlier request had another body."""
    answer = found if isinstance(found, StoredAnswer) else StoredAnswer(*found)
    if answer.request_hash != request_hash:
        raise IdempotencyKeyReused()
    headers = {REPLAYED_HEADER: "true"}
    where = location(answer.body) if location is not None and 200 <= answer.status_code < 300 else None
    if where:
        headers["Location"] = where
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)
