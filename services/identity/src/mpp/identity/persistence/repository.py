"""Every identity query lives here. Personal fields are encrypted on the way in and decrypted on the way
out, so the rest of the service works with plain values and the database only ever sees ciphertext."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, and_, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.events.common import Sex
from mpp.identity.domain.citizen import Citizen, CitizenStatus
from mpp.identity.domain.verification import AccessRecord, RegistryEntry
from mpp.identity.persistence.protection import CitizenKeys
from mpp.identity.persistence.tables import access_log, citizens, idempotency_keys

ENCRYPTED_FIELDS = ("nik", "kk", "full_name", "birth_date", "birth_place")


class ConcurrentUpdate(Exception):
    """Someone else changed the record between load and save."""


def _context(field: str, citizen_ref: str) -> str:
    # Binds each ciphertext to its column and record (AES-GCM associated data).
    return f"citizens.{field}:{citizen_ref}"


def _in(session: AsyncSession, column: Any, values: list[str]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as one array parameter, so the statement compiles once."""
    condition: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        condition = column == any_(bindparam(f"{column.name}_values", value=values, type_=ARRAY(String)))
    else:
        condition = column.in_(values)
    return condition


_REGISTRY_COLUMNS = (
    citizens.c.citizen_ref,
    citizens.c.nik_lookup,
    citizens.c.birth_date_enc,
    citizens.c.status,
    citizens.c.domicile_kabkota,
)
# The verifier's statements on PostgreSQL, built once (they run with every consumed batch; building and
# keying a statement costs more CPU than running it). SQLite gets them built per call with IN lists.
_PG_REGISTRY_ENTRIES = select(*_REGISTRY_COLUMNS).where(
    citizens.c.nik_lookup == any_(bindparam("nik_lookup_values", type_=ARRAY(String)))
)
_PG_ANSWERED = select(access_log.c.requesting_agency, access_log.c.request_id).where(
    access_log.c.request_id == any_(bindparam("request_id_values", type_=ARRAY(String)))
)
_ACCESS_LOG_INSERT = access_log.insert()


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


class CitizenRepository:
    def __init__(self, session: AsyncSession, keys: CitizenKeys) -> None:
        self._s = session
        self._keys = keys

    def _encrypt(self, field: str, citizen_ref: str, value: str) -> bytes:
        return self._keys.cipher.encrypt(value, context=_context(field, citizen_ref))

    def _decrypt(self, field: str, citizen_ref: str, stored: bytes) -> str:
        return self._keys.cipher.decrypt(stored, context=_context(field, citizen_ref))

    async def add(self, citizen: Citizen) -> None:
        ref = citizen.citizen_ref
        await self._s.execute(
            citizens.insert().values(
                citizen_ref=ref,
                nik_lookup=self._keys.lookup_hash(citizen.nik),
                nik_enc=self._encrypt("nik", ref, citizen.nik),
                kk_enc=self._encrypt("kk", ref, citizen.kk_number),
                full_name_enc=self._encrypt("full_name", ref, citizen.full_name),
                birth_date_enc=self._encrypt("birth_date", ref, citizen.birth_date.isoformat()),
                birth_place_enc=self._encrypt("birth_place", ref, citizen.birth_place),
                sex=citizen.sex.value,
                domicile_kabkota=citizen.domicile_kabkota,
                status=citizen.status.value,
                site=citizen.site,
                registered_at=citizen.registered_at,
                registered_by=citizen.registered_by,
                status_changed_at=citizen.status_changed_at,
                version=1,
            )
        )
        citizen.version = 1

    async def exists(self, nik: str) -> bool:
        query = select(citizens.c.citizen_ref).where(citizens.c.nik_lookup == self._keys.lookup_hash(nik))
        return (await self._s.execute(query)).first() is not None

    async def get(self, citizen_ref: str) -> Citizen | None:
        row = (await self._s.execute(select(citizens).where(citizens.c.citizen_ref == citizen_ref))).first()
        return None if row is None else self._citizen(row)

    def _citizen(self, row: Row[Any]) -> Citizen:
        ref = row.citizen_ref
        return Citizen(
            citizen_ref=ref,
            nik=self._decrypt("nik", ref, row.nik_enc),
            kk_number=self._decrypt("kk", ref, row.kk_enc),
            full_name=self._decrypt("full_name", ref, row.full_name_enc),
            birth_date=date.fromisoformat(self._decrypt("birth_date", ref, row.birth_date_enc)),
            birth_place=self._decrypt("birth_place", ref, row.birth_place_enc),
            sex=Sex(row.sex),
            domicile_kabkota=row.domicile_kabkota,
            status=CitizenStatus(row.status),
            site=row.site,
            registered_at=row.registered_at,
            registered_by=row.registered_by,
            status_changed_at=row.status_changed_at,
            version=row.version,
        )

    async def save_status(self, citizen: Citizen) -> None:
        """Optimistic save of a status change: fails if the stored version moved since the load."""
        result = await self._s.execute(
            update(citizens)
            .where(citizens.c.citizen_ref == citizen.citizen_ref, citizens.c.version == citizen.version)
            .values(
                status=citizen.status.value,
                status_changed_at=citizen.status_changed_at,
                version=citizen.version + 1,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(citizen.citizen_ref)
        citizen.version += 1

    async def registry_entries(self, niks: Iterable[str]) -> dict[str, RegistryEntry]:
        """The registry entries of the NIKs that exist, by NIK: one query for a whole batch."""
        by_hash = {self._keys.lookup_hash(nik): nik for nik in niks}
        if not by_hash:
            return {}
        if _is_postgresql(self._s):
            result = await self._s.execute(_PG_REGISTRY_ENTRIES, {"nik_lookup_values": list(by_hash)})
        else:
            query = select(*_REGISTRY_COLUMNS).where(_in(self._s, citizens.c.nik_lookup, list(by_hash)))
            result = await self._s.execute(query)
        entries: dict[str, RegistryEntry] = {}
        for row in result.all():
            entries[by_hash[row.nik_lookup]] = RegistryEntry(
                citizen_ref=row.citizen_ref,
                birth_date=date.fromisoformat(
                    self._decrypt("birth_date", row.citizen_ref, row.birth_date_enc)
                ),
                status=CitizenStatus(row.status),
                domicile_kabkota=row.domicile_kabkota,
            )
        return entries

    async def page(self, *, site: str, page: int, size: int) -> tuple[list[Citizen], int]:
        """One page of a site's records, newest registration first, and the site's total."""
        query = (
            select(citizens)
            .where(citizens.c.site == site)
            .order_by(citizens.c.registered_at.desc(), citizens.c.citizen_ref)
            .limit(size)
            .offset((page - 1) * size)
        )
        rows = (await self._s.execute(query)).all()
        total = (
            await self._s.execute(select(func.count()).select_from(citizens).where(citizens.c.site == site))
        ).scalar_one()
        return [self._citizen(row) for row in rows], int(total)

    async def lookup_hash_of(self, citizen_ref: str) -> str | None:
        query = select(citizens.c.nik_lookup).where(citizens.c.citizen_ref == citizen_ref)
        value = (await self._s.execute(query)).scalar_one_or_none()
        return None if value is None else str(value)


class AccessLogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def answered(self, requests: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (requesting agency, request id) pairs already have an answer."""
        wanted = set(requests)
        if not wanted:
            return set()
        request_ids = sorted({request_id for _, request_id in wanted})
        if _is_postgresql(self._s):
            result = await self._s.execute(_PG_ANSWERED, {"request_id_values": request_ids})
        else:
            query = select(access_log.c.requesting_agency, access_log.c.request_id).where(
                _in(self._s, access_log.c.request_id, request_ids)
            )
            result = await self._s.execute(query)
        found = {(row.requesting_agency, row.request_id) for row in result.all()}
        return found & wanted

    async def add_many(self, records: Sequence[AccessRecord]) -> None:
        if not records:
            return
        await self._s.execute(
            _ACCESS_LOG_INSERT,
            [
                {
                    "request_id": r.request_id,
                    "request_event_id": r.request_event_id,
                    "correlation_id": r.correlation_id,
                    "channel": r.channel.value,
                    "requesting_agency": r.requesting_agency,
                    "requesting_service": r.requesting_service,
                    "officer_ref": r.officer_ref,
                    "case_id": r.case_id,
                    "purpose": r.purpose,
                    "site": r.site,
                    "citizen_ref": r.citizen_ref,
                    "subject_hash": r.subject_hash,
                    "outcome": r.outcome.value,
                    "reason_code": r.reason_code,
                    "answer_event_id": r.answer_event_id,
                    "requested_at": r.requested_at,
                    "answered_at": r.answered_at,
                }
                for r in records
            ],
        )

    async def about(
        self, *, citizen_ref: str, subject_hash: str | None, page: int, size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """The lookups of one citizen, newest first: by reference, and by the keyed hash of their NIK for
        lookups made before the record existed."""
        condition = access_log.c.citizen_ref == citizen_ref
        if subject_hash is not None:
            condition = or_(
                condition, and_(access_log.c.citizen_ref.is_(None), access_log.c.subject_hash == subject_hash)
            )
        t = access_log
        query = (
            select(
                t.c.answered_at,
                t.c.channel,
                t.c.requesting_agency,
                t.c.requesting_service,
                t.c.officer_ref,
                t.c.case_id,
                t.c.purpose,
                t.c.outcome,
                t.c.reason_code,
            )
            .where(condition)
            .order_by(t.c.answered_at.desc(), t.c.id.desc())
            .limit(size)
            .offset((page - 1) * size)
        )
        rows = [dict(row._mapping) for row in (await self._s.execute(query)).all()]
        total = (await self._s.execute(select(func.count()).select_from(t).where(condition))).scalar_one()
        return rows, int(total)


class IdempotencyStore:
    """Earlier answers by (caller, Idempotency-Key). The answers hold personal data: stored encrypted."""

    def __init__(self, session: AsyncSession, keys: CitizenKeys) -> None:
        self._s = session
        self._keys = keys

    async def find(self, principal: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        row = (
            await self._s.execute(
                select(
                    idempotency_keys.c.request_hash,
                    idempotency_keys.c.status_code,
                    idempotency_keys.c.response_enc,
                ).where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key)
            )
        ).first()
        if row is None:
            return None
        response = orjson.loads(
            self._keys.cipher.decrypt(row.response_enc, context=f"idempotency:{principal}:{key}")
        )
        return row.request_hash, row.status_code, response

    async def remember(
        self,
        principal: str,
        key: str,
        request_hash: str,
        status_code: int,
        response: dict[str, Any],
        at: datetime,
    ) -> None:
        stored = self._keys.cipher.encrypt(
            orjson.dumps(response).decode(), context=f"idempotency:{principal}:{key}"
        )
        await self._s.execute(
            idempotency_keys.insert().values(
                principal=principal,
                key=key,
                request_hash=request_hash,
                status_code=status_code,
                response_enc=stored,
                created_at=at,
            )
        )
