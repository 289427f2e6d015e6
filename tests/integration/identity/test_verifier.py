"""The verification consumer on the real broker and PostgreSQL: requests published as CloudEvents records
are answered on the results topic through the outbox, once per request id, with the right reasons and
the request's correlation, and no answer carries the NIK.

The broker is shared by every test and every run, so this test runs the identity app in a consumer group
of its own whose consumed offsets start at the current end of the request topic (stored in the service's
database, which the runtime reads on assignment): it answers only what is published from then on and
never takes partitions from, or answers the backlog of, any other identity instance.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, insert, select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.identity import (
    CitizenVerificationFailedV1,
    CitizenVerificationRequestedV1,
    CitizenVerifiedV1,
    VerificationPurpose,
)
from mpp.contracts.kafka import from_record, to_record
from mpp.contracts.topics import IDENTITY_VERIFICATION_REQUESTS, IDENTITY_VERIFICATION_RESULTS
from mpp.identity.app import MIGRATIONS
from mpp.identity.persistence.tables import consumer_offsets, inbox, outbox
from mpp.kit.db import create_engine
from mpp.kit.kafka import create_producer, ensure_topics, stop_consumer, topic_partitions
from mpp.kit.migrations import upgrade
from tests.integration.identity.harness import NOW, SITE, IdentityApi, person, running_identity, supervisor
from tests.support.kafka_tools import make_topics, read_all, wait_for

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:10]


async def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(await topic_partitions(bootstrap, topic))
        return ends
    finally:
        await stop_consumer(consumer)


async def _start_group_at_the_end(database_url: str, group: str, bootstrap: str) -> None:
    """Record the request topic's current end as consumed by ``group``, in Kafka and in the service's
    (migrated) database. Both: the fetcher starts from Kafka's committed offset while the runtime's
    rebalance listener is still reading the database's, and may deliver records from there before it
    seeks."""
    ends = await _end_offsets(bootstrap, IDENTITY_VERIFICATION_REQUESTS)
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign(list(ends))
        await committer.commit(dict(ends))
    finally:
        await stop_consumer(committer)
    engine = create_engine(database_url)
    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.begin() as conn:
            await conn.execute(
                insert(consumer_offsets),
                [
                    {"consumer": group, "topic": tp.topic, "partition": tp.partition, "offset": end - 1}
                    for tp, end in ends.items()
                ],
            )
    finally:
        await engine.dispose()


def _request(nik: str, request_id: str, *, agency: str = "dpmptsp") -> Envelope:
    return Envelope.wrap(
        CitizenVerificationRequestedV1(
            request_id=request_id,
            nik=nik,
            requesting_agency=agency,
            requesting_service="mpp.licensing",
            officer_ref="loket-3",
            case_id=f"case-{request_id}",
            purpose=VerificationPurpose.PERMIT_APPLICATION,
            requested_at=NOW,
        ),
        producer="mpp.licensing",
        agency=agency,
        site=SITE,
        subject=request_id,
        correlation_id=f"corr-{request_id}",
    )


@dataclass
class Verifier:
    api: IdentityApi
    group: str
    bootstrap: str
    producer: AIOKafkaProducer

    async def publish(self, *envelopes: Envelope) -> None:
        for envelope in envelopes:
            key, value, headers = to_record(envelope)
            await (
                await self.producer.send(
                    IDENTITY_VERIFICATION_REQUESTS, value=value, key=key, headers=headers
                )
            )

    async def settled(self, ends: dict[TopicPartition, int], answers: int) -> bool:
        """Every published request consumed and committed, and at least ``answers`` answers published."""
        t = consumer_offsets
        async with self.api.engine.connect() as conn:
            stored = {
                (r.topic, r.partition): r.offset
                for r in (await conn.execute(select(t).where(t.c.consumer == self.group))).all()
            }
            unsent = (
                await conn.execute(select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None)))
            ).scalar_one()
            sent = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        consumed = all(stored.get((tp.topic, tp.partition), -1) >= end - 1 for tp, end in ends.items())
        return consumed and unsent == 0 and sent >= answers

    async def results(self, request_ids: set[str]) -> list[Any]:
        records = await read_all(self.bootstrap, IDENTITY_VERIFICATION_RESULTS)
        return [r for r in records if r.key is not None and r.key.decode() in request_ids]


@pytest.fixture
async def verifier(fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str) -> Any:
    url = await fresh_database()
    group = f"mpp.identity.verifier.test-{RUN}-{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka_bootstrap)
    await make_topics(kafka_bootstrap, f"{group}.dlq", partitions=1)
    await _start_group_at_the_end(url, group, kafka_bootstrap)
    producer = create_producer(kafka_bootstrap, client_id="identity-verifier-test")
    await producer.start()
    try:
        async with running_identity(
            url,
            relay_enabled=True,
            consumer_enabled=True,
            kafka_bootstrap_servers=kafka_bootstrap,
            verifier_group=group,
        ) as api:
            yield Verifier(api, group, kafka_bootstrap, producer)
    finally:
        await producer.stop()


class TestVerificationConsumer:
    async def test_answers_every_request_once_with_the_right_outcome(self, verifier: Verifier) -> None:
        api = verifier.api
        # Born on this very day 60 years ago: elderly priority from today.
        elderly = person(1, born=date(1966, 11, 3))
        deceased = person(2)
        unknown_nik = person(3)["nik"]
        invalid_nik = "3298019913850003"
        elderly_ref = (await api.register(elderly))["citizen_ref"]
        deceased_ref = (await api.register(deceased))["citizen_ref"]
        await api.client.put(
            f"/v1/citizens/{deceased_ref}/status", json={"status": "deceased"}, headers=supervisor()
        )
        ids = {
            name: f"req-{RUN}-{name}-{uuid.uuid4().hex[:6]}"
            for name in ("known", "unknown", "deceased", "invalid", "stranger")
        }
        known = _request(elderly["nik"], ids["known"])
        requests = [
            known,
            _request(unknown_nik, ids["unknown"]),
            _request(deceased["nik"], ids["deceased"]),
            _request(invalid_nik, ids["invalid"]),
            _request(elderly["nik"], ids["stranger"], agency="agensi-tak-dikenal"),
        ]
        # A redelivery of the same record, and the same request asked again under a new event id.
        asked_again = _request(elderly["nik"], ids["known"])

        await verifier.publish(*requests, known, asked_again)
        ends = await _end_offsets(verifier.bootstrap, IDENTITY_VERIFICATION_REQUESTS)
        await wait_for(
            lambda: verifier.settled(ends, answers=len(requests)), timeout_s=60, what="all requests answered"
        )

        records = await verifier.results(set(ids.values()))
        assert Counter(r.key.decode() for r in records) == Counter(set(ids.values()))
        answers = {r.key.decode(): from_record(r.value, r.headers) for r in records}
        verified = answers[ids["known"]].payload
        assert isinstance(verified, CitizenVerifiedV1)
        assert verified.citizen_ref == elderly_ref
        assert verified.elderly_priority is True
        assert verified.age_band.value == "60_plus"
        assert verified.domicile_kabkota == "3298"
        assert verified.case_id == f"case-{ids['known']}"
        assert verified.requesting_agency == "dpmptsp"
        reasons = {}
        for name in ("unknown", "deceased", "invalid", "stranger"):
            payload = answers[ids[name]].payload
            assert isinstance(payload, CitizenVerificationFailedV1)
            assert payload.retryable is False
            reasons[name] = payload.reason_code.value
        assert reasons == {
            "unknown": "not_found",
            "deceased": "inactive",
            "invalid": "invalid_structure",
            "stranger": "not_authorised",
        }

    async def test_answers_keep_the_correlation_and_name_the_request_as_cause(
        self, verifier: Verifier
    ) -> None:
        body = person(10)
        await verifier.api.register(body)
        requests = [_request(body["nik"], f"req-{RUN}-corr-{i}-{uuid.uuid4().hex[:6]}") for i in range(3)]

        await verifier.publish(*requests)
        ends = await _end_offsets(verifier.bootstrap, IDENTITY_VERIFICATION_REQUESTS)
        await wait_for(lambda: verifier.settled(ends, answers=3), timeout_s=60, what="answers")

        by_request = {env.subject: env for env in requests}
        records = await verifier.results(set(by_request))
        assert len(records) == 3
        for record in records:
            answer = from_record(record.value, record.headers)
            request = by_request[record.key.decode()]
            assert answer.subject == request.subject
            assert answer.correlation_id == request.correlation_id
            assert answer.causation_id == str(request.id)
            assert answer.producer == "mpp.identity"
            assert answer.agency == "disdukcapil"
            assert answer.site == SITE

    async def test_no_answer_record_contains_the_nik(self, verifier: Verifier) -> None:
        known = person(20)
        await verifier.api.register(known)
        niks = {"known": known["nik"], "unknown": person(21)["nik"], "invalid": "3298019913850003"}
        requests = {
            name: _request(nik, f"req-{RUN}-nik-{name}-{uuid.uuid4().hex[:6]}") for name, nik in niks.items()
        }

        await verifier.publish(*requests.values())
        ends = await _end_offsets(verifier.bootstrap, IDENTITY_VERIFICATION_REQUESTS)
        await wait_for(lambda: verifier.settled(ends, answers=3), timeout_s=60, what="answers")

        records = await verifier.results({env.subject for env in requests.values()})
        assert len(records) == 3
        for record in records:
            raw = record.value + b"".join(k.encode() + (v or b"") for k, v in record.headers) + record.key
            for nik in niks.values():
                assert nik.encode() not in raw
                assert nik[6:12].encode() + nik[12:].encode() not in raw

    async def test_every_answer_is_in_the_access_log_and_every_request_in_the_inbox(
        self, verifier: Verifier
    ) -> None:
        api = verifier.api
        known = person(30)
        ref = (await api.register(known))["citizen_ref"]
        found = _request(known["nik"], f"req-{RUN}-log-found-{uuid.uuid4().hex[:6]}")
        missing = _request(person(31)["nik"], f"req-{RUN}-log-missing-{uuid.uuid4().hex[:6]}")

        await verifier.publish(found, missing, found)
        ends = await _end_offsets(verifier.bootstrap, IDENTITY_VERIFICATION_REQUESTS)
        await wait_for(lambda: verifier.settled(ends, answers=2), timeout_s=60, what="answers")

        mine = {found.subject, missing.subject}
        logged = [r for r in await api.access_rows() if r["request_id"] in mine]
        assert sorted(r["request_id"] for r in logged) == sorted(mine)  # the redelivery is not logged twice
        rows = {r["request_id"]: r for r in logged}
        assert (rows[found.subject]["citizen_ref"], rows[found.subject]["outcome"]) == (ref, "verified")
        assert (rows[missing.subject]["subject_hash"] is not None, rows[missing.subject]["reason_code"]) == (
            True,
            "not_found",
        )
        assert rows[found.subject]["request_event_id"] == str(found.id)
        assert rows[found.subject]["correlation_id"] == found.correlation_id
        assert rows[found.subject]["officer_ref"] == "loket-3"
        assert rows[found.subject]["requesting_agency"] == "dpmptsp"
        async with api.engine.connect() as conn:
            claimed = set(
                (
                    await conn.execute(select(inbox.c.event_id).where(inbox.c.consumer == verifier.group))
                ).scalars()
            )
        assert {str(found.id), str(missing.id)} <= claimed
