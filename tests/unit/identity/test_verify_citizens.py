"""The verification use case on fakes: one registry query per batch, one answer per request id, envelopes
that keep the request's correlation, and access-log lines that never hold a NIK."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.identity import (
    CitizenVerificationFailedV1,
    CitizenVerificationRequestedV1,
    CitizenVerifiedV1,
    VerificationPurpose,
)
from mpp.identity.domain.citizen import CitizenStatus
from mpp.identity.domain.verification import AccessOutcome, AccessRecord, RegistryEntry
from mpp.identity.handlers import Ports, verify_citizens

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
KNOWN = "3298014507660003"
DECEASED = "3298010101500007"
UNKNOWN = "3298012512990001"
SITE = "mpp-kota-sukamaju"


class FixedClock:
    def now(self) -> datetime:
        return NOW


class UtcCalendar:
    def today(self, site: str, at: datetime) -> date:
        return at.date()


class FakePseudonymiser:
    def citizen_ref(self, nik: str) -> str:
        return "c_" + nik.rjust(32, "0")

    def lookup_hash(self, nik: str) -> str:
        return "h_" + nik[::-1]


class Agencies:
    def knows(self, agency: str) -> bool:
        return agency != "stranger"


class FakeRegistry:
    def __init__(self, entries: dict[str, RegistryEntry]) -> None:
        self.entries = entries
        self.queries: list[list[str]] = []

    async def registry_entries(self, niks: Iterable[str]) -> dict[str, RegistryEntry]:
        asked = list(niks)
        self.queries.append(asked)
        return {nik: self.entries[nik] for nik in asked if nik in self.entries}


class FakeAccessLog:
    def __init__(self, answered: set[tuple[str, str]] | None = None) -> None:
        self.previously = answered or set()
        self.records: list[AccessRecord] = []

    async def answered(self, requests: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return set(requests) & self.previously

    async def add_many(self, records: Sequence[AccessRecord]) -> None:
        self.records.extend(records)


class FakeScope:
    def __init__(self, registry: FakeRegistry, access_log: FakeAccessLog) -> None:
        self._registry = registry
        self._access_log = access_log
        self.published: list[Envelope] = []

    @property
    def citizens(self) -> FakeRegistry:
        return self._registry

    @property
    def access_log(self) -> FakeAccessLog:
        return self._access_log

    def publish(self, *envelopes: Envelope) -> None:
        self.published.extend(envelopes)


PORTS = Ports(
    clock=FixedClock(), calendar=UtcCalendar(), pseudonymiser=FakePseudonymiser(), agencies=Agencies()
)


def _registry() -> FakeRegistry:
    return FakeRegistry(
        {
            KNOWN: RegistryEntry("c_known_citizen", date(1966, 7, 5), CitizenStatus.ACTIVE, "3298"),
            DECEASED: RegistryEntry("c_deceased_citizen", date(1950, 1, 1), CitizenStatus.DECEASED, "3298"),
        }
    )


def _request(
    nik: str, request_id: str, *, agency: str = "dpmptsp", event_id: uuid.UUID | None = None
) -> Envelope:
    return Envelope.wrap(
        CitizenVerificationRequestedV1(
            request_id=request_id,
            nik=nik,
            requesting_agency=agency,
            requesting_service="mpp.licensing",
            officer_ref="officer-7",
            case_id=f"case-{request_id}",
            purpose=VerificationPurpose.PERMIT_APPLICATION,
            requested_at=NOW,
        ),
        producer="mpp.licensing",
        agency=agency,
        site=SITE,
        subject=request_id,
        correlation_id=f"corr-{request_id}",
        event_id=event_id,
    )


class TestVerifyCitizens:
    async def test_asks_the_registry_once_for_the_whole_batch(self) -> None:
        registry = _registry()
        scope = FakeScope(registry, FakeAccessLog())

        await verify_citizens(
            [_request(KNOWN, "r1"), _request(UNKNOWN, "r2"), _request(DECEASED, "r3")], scope, PORTS
        )

        assert registry.queries == [[KNOWN, UNKNOWN, DECEASED]]

    async def test_answers_each_request_with_the_right_event(self) -> None:
        scope = FakeScope(_registry(), FakeAccessLog())

        await verify_citizens(
            [
                _request(KNOWN, "r1"),
                _request(UNKNOWN, "r2"),
                _request(DECEASED, "r3"),
                _request(KNOWN, "r4", agency="stranger"),
            ],
            scope,
            PORTS,
        )

        answers = {e.subject: e.payload for e in scope.published}
        assert isinstance(answers["r1"], CitizenVerifiedV1)
        assert answers["r1"].citizen_ref == "c_known_citizen"
        assert answers["r1"].elderly_priority is True
        assert answers["r1"].domicile_kabkota == "3298"
        reasons = {
            rid: p.reason_code.value
            for rid, p in answers.items()
            if isinstance(p, CitizenVerificationFailedV1)
        }
        assert reasons == {"r2": "not_found", "r3": "inactive", "r4": "not_authorised"}

    async def test_the_answer_keeps_the_correlation_and_names_the_request_as_its_cause(self) -> None:
        scope = FakeScope(_registry(), FakeAccessLog())
        request = _request(KNOWN, "r1")

        await verify_citizens([request], scope, PORTS)

        [answer] = scope.published
        assert answer.correlation_id == "corr-r1"
        assert answer.causation_id == str(request.id)
        assert answer.subject == "r1"
        assert answer.producer == "mpp.identity"
        assert answer.agency == "disdukcapil"
        assert answer.site == SITE
        assert answer.topic == "mpp.identity.verification-results"

    async def test_a_request_id_asked_twice_in_one_batch_is_answered_once(self) -> None:
        scope = FakeScope(_registry(), FakeAccessLog())

        outcome = await verify_citizens([_request(KNOWN, "r1"), _request(KNOWN, "r1")], scope, PORTS)

        assert [e.subject for e in scope.published] == ["r1"]
        assert outcome.duplicates == 1
        assert len(scope.access_log.records) == 1

    async def test_a_request_id_answered_before_is_not_answered_again(self) -> None:
        scope = FakeScope(_registry(), FakeAccessLog(answered={("dpmptsp", "r1")}))

        outcome = await verify_citizens([_request(KNOWN, "r1"), _request(KNOWN, "r2")], scope, PORTS)

        assert [e.subject for e in scope.published] == ["r2"]
        assert outcome.duplicates == 1

    async def test_the_same_request_id_of_another_agency_is_another_request(self) -> None:
        scope = FakeScope(_registry(), FakeAccessLog(answered={("dpmptsp", "r1")}))

        await verify_citizens([_request(KNOWN, "r1", agency="polres")], scope, PORTS)

        assert [e.subject for e in scope.published] == ["r1"]

    async def test_logs_each_lookup_by_reference_or_keyed_hash_never_by_nik(self) -> None:
        scope = FakeScope(_registry(), FakeAccessLog())
        requests = [_request(KNOWN, "r1"), _request(UNKNOWN, "r2"), _request(DECEASED, "r3")]

        await verify_citizens(requests, scope, PORTS)

        by_request = {r.request_id: r for r in scope.access_log.records}
        assert (by_request["r1"].citizen_ref, by_request["r1"].subject_hash) == ("c_known_citizen", None)
        assert (by_request["r2"].citizen_ref, by_request["r2"].subject_hash) == (None, "h_" + UNKNOWN[::-1])
        assert by_request["r3"].citizen_ref == "c_deceased_citizen"
        assert [r.outcome for r in scope.access_log.records] == [
            AccessOutcome.VERIFIED,
            AccessOutcome.REFUSED,
            AccessOutcome.REFUSED,
        ]
        assert by_request["r2"].reason_code == "not_found"
        assert by_request["r1"].officer_ref == "officer-7"
        assert by_request["r1"].purpose == "permit_application"
        assert by_request["r1"].case_id == "case-r1"
        assert by_request["r1"].answer_event_id == str(scope.published[0].id)
        assert by_request["r1"].request_event_id == str(requests[0].id)
        for record in scope.access_log.records:
            assert not any(nik in repr(record) for nik in (KNOWN, UNKNOWN, DECEASED))

    async def test_no_answer_carries_a_nik(self) -> None:
        scope = FakeScope(_registry(), FakeAccessLog())

        await verify_citizens(
            [_request(KNOWN, "r1"), _request(UNKNOWN, "r2"), _request(DECEASED, "r3")], scope, PORTS
        )

        for envelope in scope.published:
            text = envelope.model_dump_json()
            assert not any(nik in text for nik in (KNOWN, UNKNOWN, DECEASED))
