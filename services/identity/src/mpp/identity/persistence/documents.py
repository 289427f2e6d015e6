"""Every document-application query lives here. The form's personal details and the issued number are
encrypted on the way in and decrypted on the way out, bound to the application's id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, overload

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.calendar import Pause, WorkingClock
from mpp.contracts.events.identity import DocumentApplicationReason, DocumentMedium
from mpp.contracts.workflow import Workflow
from mpp.identity.domain.documents import DocumentApplication, DocumentServiceKind
from mpp.identity.persistence.protection import CitizenKeys
from mpp.identity.persistence.tables import document_applications, document_serials
from mpp.kit.db import dialect_insert

Rules = Callable[[str, str], tuple[Workflow, WorkingClock]]
"""(workflow code, site) -> the workflow and the site's working clock, to rebuild an aggregate."""

t = document_applications


class ConcurrentApplicationUpdate(Exception):
    """Someone else changed the application between load and save."""


class DocumentApplicationRepository:
    def __init__(self, session: AsyncSession, keys: CitizenKeys, rules: Rules) -> None:
        self._s = session
        self._keys = keys
        self._rules = rules

    def _encrypt(self, column: str, application_id: str, value: str) -> bytes:
        return self._keys.cipher.encrypt(value, context=f"document_applications.{column}:{application_id}")

    def _decrypt(self, column: str, application_id: str, stored: bytes) -> str:
        return self._keys.cipher.decrypt(stored, context=f"document_applications.{column}:{application_id}")

    async def add(self, app: DocumentApplication) -> None:
        await self._s.execute(
            t.insert().values(
                id=app.id,
                tracking_code=app.tracking_code,
                service_type=app.service_type,
                kind=app.kind.value,
                workflow=app.workflow.code,
                agency=app.agency,
                site=app.site,
                channel=app.channel,
                applicant_ref=app.applicant_ref,
                reason=app.reason.value,
                submitted_at=_utc(app.submitted_at),
                submitted_by=app.submitted_by,
                documents=[{k: v for k, v in d.items() if k != "file_name"} for d in app.documents],
                updated_at=_utc(app.submitted_at),
                version=1,
                **self._mutable(app),
            )
        )
        app.version = 1

    async def get(self, application_id: str, *, for_update: bool = False) -> DocumentApplication | None:
        """One application; ``for_update`` locks its row until the transaction ends (PostgreSQL), so two
        officers acting at once are served one after the other and the second sees the first's result."""
        query = select(t).where(t.c.id == application_id)
        if for_update and self._s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self._s.execute(query)).first()
        return None if row is None else self._to_application(row)

    async def find_by_tracking_code(self, tracking_code: str) -> DocumentApplication | None:
        row = (await self._s.execute(select(t).where(t.c.tracking_code == tracking_code))).first()
        return None if row is None else self._to_application(row)

    async def save(self, app: DocumentApplication, at: datetime) -> None:
        """Optimistic save: fails if the stored version moved since the aggregate was loaded."""
        result = await self._s.execute(
            update(t)
            .where(t.c.id == app.id, t.c.version == app.version)
            .values(version=app.version + 1, updated_at=_utc(at), **self._mutable(app))
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentApplicationUpdate(app.id)
        app.version += 1

    async def work_queue(
        self,
        *,
        agency: str,
        site: str,
        status: str | None,
        service_type: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[DocumentApplication], int]:
        """Applications of one agency at one site, oldest first (the order officers work them)."""
        conditions = [t.c.agency == agency, t.c.site == site]
        if status is not None:
            conditions.append(t.c.status == status)
        if service_type is not None:
            conditions.append(t.c.service_type == service_type)
        total = (await self._s.execute(select(func.count()).select_from(t).where(*conditions))).scalar_one()
        rows = (
            await self._s.execute(
                select(t).where(*conditions).order_by(t.c.submitted_at, t.c.id).offset(offset).limit(limit)
            )
        ).all()
        return [self._to_application(row) for row in rows], int(total)

    async def next_serial(self, scope: str, day: date) -> int:
        """The next serial of a numbering scope on a day. One row per (scope, day) updated in place with
        ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: concurrent issuers queue on the row lock and
        each gets its own number, which is kept only if its transaction commits."""
        insert = dialect_insert(self._s, document_serials).values(scope=scope, day=day, last=1)
        upsert = insert.on_conflict_do_update(
            index_elements=[document_serials.c.scope, document_serials.c.day],
            set_={"last": document_serials.c.last + 1},
        ).returning(document_serials.c.last)
        return int((await self._s.execute(upsert)).scalar_one())

    def _mutable(self, app: DocumentApplication) -> dict[str, Any]:
        file_names = [d.get("file_name") for d in app.documents]
        return {
            "subject_ref": app.subject_ref,
            "details_enc": self._encrypt(
                "details", app.id, orjson.dumps(app.details | {"file_names": file_names}).decode()
            ),
            "status": app.state,
            "finished": app.finished,
            "pauses": [[_iso(a), _iso(b) if b else None] for a, b in app.pauses],
            "due_at": _utc(app.due_at),
            "last_note": app.last_note,
            "missing": list(app.missing),
            "issued_at": _utc(app.issued_at),
            "document_ref": app.document_ref,
            "document_number_enc": (
                None
                if app.document_number is None
                else self._encrypt("document_number", app.id, app.document_number)
            ),
            "medium": None if app.medium is None else app.medium.value,
            "working_days_elapsed": app.working_days_elapsed,
            "within_sla": app.within_sla,
        }

    def _to_application(self, row: Any) -> DocumentApplication:
        workflow, clock = self._rules(row.workflow, row.site)
        details: dict[str, Any] = orjson.loads(self._decrypt("details", row.id, row.details_enc))
        file_names = details.pop("file_names", [])
        documents = [
            dict(d) | {"file_name": name} for d, name in zip(row.documents, file_names, strict=False)
        ]
        return DocumentApplication(
            id=row.id,
            tracking_code=row.tracking_code,
            service_type=row.service_type,
            kind=DocumentServiceKind(row.kind),
            agency=row.agency,
            site=row.site,
            channel=row.channel,
            applicant_ref=row.applicant_ref,
            subject_ref=row.subject_ref,
            reason=DocumentApplicationReason(row.reason),
            submitted_at=_aware(row.submitted_at),
            submitted_by=row.submitted_by,
            documents=documents,
            details=details,
            workflow=workflow,
            clock=clock,
            state=row.status,
            pauses=[_pause(p) for p in row.pauses],
            due_at=_aware(row.due_at),
            last_note=row.last_note,
            missing=tuple(row.missing),
            issued_at=_aware(row.issued_at),
            document_ref=row.document_ref,
            document_number=(
                None
                if row.document_number_enc is None
                else self._decrypt("document_number", row.id, row.document_number_enc)
            ),
            medium=None if row.medium is None else DocumentMedium(row.medium),
            working_days_elapsed=row.working_days_elapsed,
            within_sla=row.within_sla,
            version=row.version,
        )


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


@overload
def _utc(instant: datetime) -> datetime: ...
@overload
def _utc(instant: None) -> None: ...
def _utc(instant: datetime | None) -> datetime | None:
    """Stored in UTC: SQLite keeps no offset, so a local time would read back wrong."""
    return None if instant is None else instant.astimezone(UTC)


@overload
def _aware(instant: datetime) -> datetime: ...
@overload
def _aware(instant: None) -> None: ...
def _aware(instant: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if instant is None or instant.tzinfo is not None:
        return instant
    return instant.replace(tzinfo=UTC)


def _pause(stored: list[str | None]) -> Pause:
    started, ended = stored
    assert started is not None
    return datetime.fromisoformat(started), datetime.fromisoformat(ended) if ended else None
