"""Every licensing query lives here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.db import dialect_insert
from mpp.licensing.domain.model import Application, ApplicationStatus
from mpp.licensing.persistence.tables import applications, idempotency_keys, permit_sequences


class ConcurrentUpdate(Exception):
    """Someone else changed the application between load and save."""


class ApplicationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, app: Application, *, applicant_name: str, documents: list[dict[str, Any]]) -> None:
        await self._s.execute(
            applications.insert().values(
                id=app.id,
                tracking_code=app.tracking_code,
                service_type=app.service_type,
                agency=app.agency,
                site=app.site,
                applicant_ref=app.applicant_ref,
                applicant_name=applicant_name,
                channel=app.channel,
                documents=documents,
                status=app.status.value,
                submitted_at=app.submitted_at,
                version=1,
            )
        )
        app.version = 1

    async def get(self, application_id: str) -> Application | None:
        row = (await self._s.execute(select(applications).where(applications.c.id == application_id))).first()
        return None if row is None else _to_application(row)

    async def save(self, app: Application) -> None:
        """Optimistic save: fails if the stored version moved since the aggregate was loaded."""
        result = await self._s.execute(
            update(applications)
            .where(applications.c.id == app.id, applications.c.version == app.version)
            .values(
                status=app.status.value,
                approved_at=app.approved_at,
                approved_by=app.approved_by,
                permit_number=app.permit_number,
                version=app.version + 1,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(app.id)
        app.version += 1

    async def find_by_tracking_code(self, tracking_code: str) -> Application | None:
        row = (
            await self._s.execute(
                select(applications.c.id).where(applications.c.tracking_code == tracking_code)
            )
        ).first()
        return await self.get(row.id) if row else None

    async def permit_holder(self, permit_number: str) -> tuple[Application, str] | None:
        """The application that issued ``permit_number`` and the holder's name."""
        row = (
            await self._s.execute(
                select(applications.c.id, applications.c.applicant_name).where(
                    applications.c.permit_number == permit_number
                )
            )
        ).first()
        if row is None:
            return None
        app = await self.get(row.id)
        return (app, row.applicant_name) if app else None

    async def work_queue(
        self,
        *,
        agency: str | None,
        site: str | None,
        status: str | None,
        service_type: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[Application], int]:
        """Applications in a scope, oldest first (the order officers work them), with the total count."""
        conditions = []
        if agency is not None:
            conditions.append(applications.c.agency == agency)
        if site is not None:
            conditions.append(applications.c.site == site)
        if status is not None:
            conditions.append(applications.c.status == status)
        if service_type is not None:
            conditions.append(applications.c.service_type == service_type)
        total = (
            await self._s.execute(select(func.count()).select_from(applications).where(*conditions))
        ).scalar_one()
        rows = (
            await self._s.execute(
                select(applications)
                .where(*conditions)
                .order_by(applications.c.submitted_at, applications.c.id)
                .offset(offset)
                .limit(limit)
            )
        ).all()
        return [_to_application(row) for row in rows], int(total)

    async def next_permit_sequence(self, *, agency: str, site: str, year: int) -> int:
        insert = dialect_insert(self._s, permit_sequences).values(agency=agency, site=site, year=year, last=1)
        upsert = insert.on_conflict_do_update(
            index_elements=[permit_sequences.c.agency, permit_sequences.c.site, permit_sequences.c.year],
            set_={"last": permit_sequences.c.last + 1},
        ).returning(permit_sequences.c.last)
        return int((await self._s.execute(upsert)).scalar_one())


class IdempotencyStore:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def find(self, principal: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        row = (
            await self._s.execute(
                select(
                    idempotency_keys.c.request_hash,
                    idempotency_keys.c.status_code,
                    idempotency_keys.c.response,
                ).where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key)
            )
        ).first()
        return (row.request_hash, row.status_code, row.response) if row else None

    async def remember(
        self,
        principal: str,
        key: str,
        request_hash: str,
        status_code: int,
        response: dict[str, Any],
        at: datetime,
    ) -> None:
        await self._s.execute(
            idempotency_keys.insert().values(
                principal=principal,
                key=key,
                request_hash=request_hash,
                status_code=status_code,
                response=response,
                created_at=at,
            )
        )


def _to_application(row: Any) -> Application:
    return Application(
        id=row.id,
        tracking_code=row.tracking_code,
        service_type=row.service_type,
        agency=row.agency,
        site=row.site,
        applicant_ref=row.applicant_ref,
        channel=row.channel,
        submitted_at=row.submitted_at,
        documents=len(row.documents),
        status=ApplicationStatus(row.status),
        approved_at=row.approved_at,
        approved_by=row.approved_by,
        permit_number=row.permit_number,
        version=row.version,
    )
