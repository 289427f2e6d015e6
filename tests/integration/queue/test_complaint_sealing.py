"""Complaint descriptions and contacts are encrypted at rest; officers read them through the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from mpp.kit.db import create_engine
from mpp.kit.migrations import downgrade, upgrade
from mpp.queue.app import MIGRATIONS
from mpp.queue.persistence.protection import TextSealer, UnreadableText, development_sealer
from mpp.queue.persistence.tables import complaints
from tests.integration.queue.harness import SITE, QueueApi, officer, running_queue

pytestmark = pytest.mark.integration

WORDS = "Petugas meminta uang tambahan; hubungi Budi Santoso"
PHONE = "0812-3456-7890"


async def test_a_new_complaint_is_stored_sealed_and_read_in_clear(queue: QueueApi) -> None:
    created = await queue.client.post(
        "/v1/complaints",
        json={"category": "fees", "description": WORDS, "contact": PHONE, "agency": "disdukcapil"},
        headers=officer(),
    )
    assert created.status_code == 201, created.text
    complaint_id = created.json()["id"]

    async with queue.engine.connect() as conn:
        row = (await conn.execute(select(complaints).where(complaints.c.id == complaint_id))).mappings().one()
    read = await queue.client.get(f"/v1/complaints/{complaint_id}", headers=officer())

    stored = bytes(row["description_sealed"]) + bytes(row["contact_sealed"])
    assert WORDS.encode() not in stored and PHONE.encode() not in stored
    assert b"Budi" not in stored
    assert (read.json()["description"], read.json()["contact"]) == (WORDS, PHONE)


def test_a_sealed_text_opens_only_for_its_own_complaint_and_field() -> None:
    sealer = development_sealer()
    sealed = sealer.seal("complaint-1", "description", WORDS)

    assert sealer.open("complaint-1", "description", sealed) == WORDS
    with pytest.raises(UnreadableText):
        sealer.open("complaint-2", "description", sealed)
    with pytest.raises(UnreadableText):
        sealer.open("complaint-1", "contact", sealed)
    with pytest.raises(UnreadableText):
        TextSealer(bytes(32)).open("complaint-1", "description", sealed)


async def test_the_migration_seals_complaints_stored_in_clear(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    engine = create_engine(url)
    at = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    try:
        await upgrade(engine, MIGRATIONS, revision="0005")
        async with engine.begin() as conn:
            for n, contact in ((1, PHONE), (2, None)):
                await conn.execute(
                    text(
                        "INSERT INTO complaints (id, tracking_code, site, channel, category, complaint_class,"
                        " anonymous, contact, agency, description, received_at, received_by,"
                        " first_response_limit_days, resolution_limit_days, first_response_due,"
                        " resolution_due, state) VALUES (:id, :code, :site, 'counter', 'fees', 'complaint',"
                        " false, :contact, 'disdukcapil', :description, :at, 'officer-1', 3, 10, :due, :due,"
                        " 'received')"
                    ),
                    {
                        "id": f"old-complaint-{n}",
                        "code": f"LAMA{n:04d}",
                        "site": SITE,
                        "contact": contact,
                        "description": f"{WORDS} ({n})",
                        "at": at,
                        "due": at + timedelta(days=14),
                    },
                )
    finally:
        await engine.dispose()

    async with running_queue(url) as queue:  # starting the service upgrades the database to head
        async with queue.engine.connect() as conn:
            stored = (
                await conn.execute(select(complaints.c.description_sealed, complaints.c.contact_sealed))
            ).all()
            columns = (
                (
                    await conn.execute(
                        text(
                            "SELECT column_name FROM information_schema.columns WHERE table_name = 'complaints'"
                        )
                    )
                )
                .scalars()
                .all()
            )
        first = await queue.client.get("/v1/complaints/old-complaint-1", headers=officer())
        second = await queue.client.get("/v1/complaints/old-complaint-2", headers=officer())

    assert "description" not in columns and "contact" not in columns
    assert all(WORDS.encode() not in bytes(d) for d, _ in stored)
    assert (first.json()["description"], first.json()["contact"]) == (f"{WORDS} (1)", PHONE)
    assert (second.json()["description"], second.json()["contact"]) == (f"{WORDS} (2)", None)


async def test_downgrading_opens_the_sealed_texts_and_upgrading_seals_them_again(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    async with running_queue(url) as queue:
        created = await queue.client.post(
            "/v1/complaints",
            json={"category": "fees", "description": WORDS, "contact": PHONE, "agency": "disdukcapil"},
            headers=officer(),
        )
        anonymous = await queue.client.post(
            "/v1/complaints",
            json={"category": "queue", "description": "Antrean terlalu lama", "anonymous": True},
            headers=officer(),
        )
    assert created.status_code == 201, created.text
    assert anonymous.status_code == 201, anonymous.text

    engine = create_engine(url)
    try:
        await downgrade(engine, MIGRATIONS, "0005")
        async with engine.connect() as conn:
            plain = {
                row.id: (row.description, row.contact)
                for row in await conn.execute(text("SELECT id, description, contact FROM complaints"))
            }
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as conn:
            sealed = (await conn.execute(select(complaints.c.description_sealed))).scalars().all()
    finally:
        await engine.dispose()

    assert plain == {
        created.json()["id"]: (WORDS, PHONE),
        anonymous.json()["id"]: ("Antrean terlalu lama", None),
    }
    assert len(sealed) == 2 and all(WORDS.encode() not in bytes(s) for s in sealed)
    async with running_queue(url) as queue:
        again = await queue.client.get(f"/v1/complaints/{created.json()['id']}", headers=officer())
    assert (again.json()["description"], again.json()["contact"]) == (WORDS, PHONE)
