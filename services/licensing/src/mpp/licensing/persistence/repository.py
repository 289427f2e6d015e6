"""Every licensing query lives here."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import (
    LargeBinary,
    String,
    Text,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from mpp.contracts.calendar import Pause, WorkingClock
from mpp.contracts.envelope import Envelope
from mpp.contracts.workflow import Workflow
from mpp.kit.db import dialect_insert
from mpp.kit.outbox import outbox_row
from mpp.licensing.domain.model import VERIFYING_NIK, Application
from mpp.licensing.persistence.tables import applications, idempotency_keys, outbox, permit_sequences

ID_LENGTH = 36
"""Application ids are UUIDs; a longer case id (another service's) cannot be one."""


class ConcurrentUpdate(Exception):
    """Someone else changed the application between load and save."""


Rules = Callable[[str, str], tuple[Workflow, WorkingClock]]
"""(workflow code, site) -> the workflow and the site's working clock, to rebuild an aggregate."""

# The hot statements are built once: constructing a statement and computing its cache key on every call
# costs more CPU than executing it. Values travel as bind parameters; an UPDATE or INSERT executed with a
# parameter dict sets the columns the dict names.
_GET = select(applications).where(applications.c.id == bindparam("b_id"))
_GET_FOR_UPDATE = _GET.with_for_update()
_INSERT = applications.insert()
_SAVE = update(applications).where(
    applications.c.id == bindparam("b_id"), applications.c.version == bindparam("b_version")
)
_SEALED_REQUEST = select(applications.c.verification_request).where(applications.c.id == bindparam("b_id"))
_FOR_ANSWERS = (
    select(applications)
    .where(
        or_(
            applications.c.verification_request_id.in_(bindparam("b_requests", expanding=True)),
            applications.c.id.in_(bindparam("b_cases", expanding=True)),
        )
    )
    .order_by(applications.c.id)
)
_FOR_ANSWERS_LOCKED = _FOR_ANSWERS.with_for_update()
_BY_TRACKING_CODE = select(applications.c.id).where(applications.c.tracking_code == bindparam("b_code"))
_PERMIT_HOLDER = select(applications.c.id, applications.c.applicant_name).where(
    applications.c.permit_number == bindparam("b_number")
)
_IDEMPOTENCY_FIND = select(
    idempotency_keys.c.request_hash, idempotency_keys.c.status_code, idempotency_keys.c.response
).where(
    idempotency_keys.c.principal == bindparam("b_principal"), idempotency_keys.c.key == bindparam("b_key")
)
_IDEMPOTENCY_REMEMBER = idempotency_keys.insert()
_PERMIT_SEQUENCE: dict[str, Executable] = {}
MUTABLE_COLUMNS = (
    "status",
    "pauses",
    "due_at",
    "at_risk_from",
    "finished",
    "approved_at",
    "approved_by",
    "issued_at",
    "permit_number",
    "within_sla",
    "sla_breached_at",
    "applicant_ref",
    "nik_failure_reason",
    "verification_request_id",
    "verification_attempts",
    "verification_next_at",
    "verification_request",
)


def _numbered_issue() -> Executable:
    """PostgreSQL: draw the next permit number and write the issued application and its PermitIssued
    outbox row in one statement. The row was prepared with a placeholder in the number's place, which
    the statement replaces by the drawn serial, so the sequence row stays locked only from this
    statement to the commit right after it (numbers stay gap-free: a rolled-back issue returns its
    number with the rest of the transaction)."""
    seq_insert = postgresql.insert(permit_sequences).values(
        agency=bindparam("b_agency"), site=bindparam("b_site"), year=bindparam("b_year"), last=1
    )
    seq = (
        seq_insert.on_conflict_do_update(
            index_elements=[permit_sequences.c.agency, permit_sequences.c.site, permit_sequences.c.year],
            set_={"last": permit_sequences.c.last + 1},
        )
        .returning(permit_sequences.c.last)
        .cte("seq")
    )
    serial = cast(seq.c.last, Text)
    digits = (
        select(case((seq.c.last < 10000, func.lpad(serial, 4, "0")), else_=serial).label("digits"))
        .select_from(seq)
        .cte("num")
    )
    token = bindparam("b_token", type_=String)
    drawn = select(digits.c.digits).scalar_subquery()
    values: dict[str, Any] = {
        name: bindparam(f"v_{name}", type_=applications.c[name].type) for name in MUTABLE_COLUMNS
    }
    values["permit_number"] = func.replace(bindparam("v_permit_number", type_=String), token, drawn)
    values["version"] = bindparam("v_version", type_=applications.c.version.type)
    saved = (
        update(applications)
        .where(applications.c.id == bindparam("b_id"), applications.c.version == bindparam("b_version"))
        .values(values)
        .returning(applications.c.permit_number)
        .cte("saved")
    )
    value = func.convert_to(
        func.replace(func.convert_from(bindparam("o_value", type_=LargeBinary), "UTF8"), token, drawn),
        "UTF8",
    )
    row = select(
        bindparam("o_event_id", type_=String),
        bindparam("o_topic", type_=String),
        bindparam("o_key", type_=LargeBinary),
        value,
        bindparam("o_headers", type_=LargeBinary),
        bindparam("o_created_at", type_=outbox.c.created_at.type),
    ).select_from(saved)
    written = (
        outbox.insert()
        .from_select(["event_id", "topic", "key", "value", "headers", "created_at"], row)
        .returning(outbox.c.seq)
        .cte("written")
    )
    return select(saved.c.permit_number).select_from(saved.join(written, true()))


_NUMBERED_ISSUE = _numbered_issue()

"""The permit-sequence upsert per dialect (its ON CONFLICT syntax is the dialect's)."""


def _locking(session: AsyncSession) -> bool:
    """Whether ``SELECT ... FOR UPDATE`` locks rows (PostgreSQL); SQLite serialises writers instead."""
    return session.get_bind().dialect.name == "postgresql"


class ApplicationRepository:
    def __init__(self, session: AsyncSession, rules: Rules) -> None:
        self._s = session
        self._rules = rules

    async def add(
        self,
        app: Application,
        *,
        applicant_name: str,
        documents: list[dict[str, Any]],
        sealed_request: bytes | None = None,
    ) -> None:
        await self._s.execute(
            _INSERT,
            {
                "id": app.id,
                "tracking_code": app.tracking_code,
                "service_type": app.service_type,
                "agency": app.agency,
                "site": app.site,
                "applicant_name": applicant_name,
                "channel": app.channel,
                "documents": documents,
                "submitted_at": app.submitted_at,
                "version": 1,
                "workflow": app.workflow.code,
                **_mutable(app),
                "verification_request": sealed_request,
            },
        )
        app.version = 1

    async def get(self, application_id: str, *, for_update: bool = False) -> Application | None:
        """One application; ``for_update`` locks its row until the transaction ends (PostgreSQL), so a
        read-modify-write of two officers at once runs one after the other."""
        query = _GET_FOR_UPDATE if for_update and _locking(self._s) else _GET
        row = (await self._s.execute(query, {"b_id": application_id})).first()
        return None if row is None else self._to_application(row)

    async def save(self, app: Application, *, sealed_request: bytes | None = None) -> None:
        """Optimistic save: fails if the stored version moved since the aggregate was loaded. The sealed
        verification request is replaced when given, and forgotten once the NIK is settled."""
        result = await self._s.execute(_SAVE, _save_values(app, sealed_request))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(app.id)
        app.version += 1

    @property
    def numbers_in_one_statement(self) -> bool:
        """Whether :meth:`save_issued` draws the permit number in the statement that saves the issue."""
        return _locking(self._s)

    async def save_issued(self, app: Application, event: Envelope, *, token: str, now: datetime) -> str:
        """Save an application just issued with ``token`` in its permit number's serial place, and write
        its PermitIssued to the outbox, drawing the serial of (agency, site, issue year) in the same
        statement (PostgreSQL only). Returns the permit number, which is also set on ``app``."""
        assert app.permit_number is not None and app.issued_at is not None
        values = _save_values(app, None)
        params: dict[str, Any] = {f"v_{name}": values.get(name) for name in MUTABLE_COLUMNS}
        if "verification_request" not in values:
            # Unchanged otherwise; an issued application is past its NIK check, so nothing is kept.
            params["v_verification_request"] = None
        row = outbox_row(event, now)
        params.update(
            {
                "v_version": values["version"],
                "b_id": app.id,
                "b_version": app.version,
                "b_agency": app.agency,
                "b_site": app.site,
                "b_year": app.issued_at.year,
                "b_token": token,
                **{f"o_{k}": v for k, v in row.items() if k != "sent_at"},
            }
        )
        number = (await self._s.execute(_NUMBERED_ISSUE, params)).scalar_one_or_none()
        if number is None:
            raise ConcurrentUpdate(app.id)
        app.version += 1
        app.permit_number = str(number)
        return app.permit_number

    async def save_locked(self, changed: Sequence[tuple[Application, bytes | None]]) -> None:
        """Save applications whose rows this transaction has locked (``for_answers``): on PostgreSQL in one
        pipelined statement, since nobody else can have moved their versions; elsewhere one by one, each
        checked like :meth:`save`."""
        if not _locking(self._s) or len(changed) < 2:
            for app, sealed in changed:
                await self.save(app, sealed_request=sealed)
            return
        await self._s.execute(_SAVE, [_save_values(app, sealed) for app, sealed in changed])
        for app, _ in changed:
            app.version += 1

    async def for_answers(
        self, request_ids: Collection[str], case_ids: Collection[str]
    ) -> tuple[dict[str, Application], dict[str, Application]]:
        """In one query, the applications that asked any of ``request_ids`` or whose id is one of
        ``case_ids``: by outstanding request id, and by id. On PostgreSQL they are locked for this
        transaction (in id order, so two batches never deadlock): the verification sweep, which skips
        locked rows, cannot change them between this read and the save."""
        if not request_ids and not case_ids:
            return {}, {}
        query = _FOR_ANSWERS_LOCKED if _locking(self._s) else _FOR_ANSWERS
        params = {
            "b_requests": list(request_ids),
            "b_cases": [c for c in case_ids if len(c) <= ID_LENGTH],
        }
        rows = (await self._s.execute(query, params)).all()
        found = [self._to_application(row) for row in rows]
        by_request = {a.verification_request_id: a for a in found if a.verification_request_id}
        return by_request, {a.id: a for a in found}

    async def sealed_request(self, application_id: str) -> bytes | None:
        """The pending verification request, sealed, while the NIK is not settled."""
        row = (await self._s.execute(_SEALED_REQUEST, {"b_id": application_id})).first()
        return None if row is None or row.verification_request is None else bytes(row.verification_request)

    async def verification_due_for_update(self, now: datetime, limit: int) -> list[Application]:
        """Applications verifying their NIK whose next request is due, locked for this transaction; rows
        another worker holds are skipped (PostgreSQL), so each is asked again once per pass."""
        query = (
            select(applications)
            .where(
                applications.c.verification_next_at <= now,
                applications.c.status == VERIFYING_NIK,
            )
            .order_by(applications.c.verification_next_at)
            .limit(limit)
        )
        if self._s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = (await self._s.execute(query)).all()
        return [self._to_application(row) for row in rows]

    async def find_by_tracking_code(self, tracking_code: str) -> Application | None:
        row = (await self._s.execute(_BY_TRACKING_CODE, {"b_code": tracking_code})).first()
        return await self.get(row.id) if row else None

    async def permit_holder(self, permit_number: str) -> tuple[Application, str] | None:
        """The application that issued ``permit_number`` and the holder's name."""
        row = (await self._s.execute(_PERMIT_HOLDER, {"b_number": permit_number})).first()
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
        return [self._to_application(row) for row in rows], int(total)

    async def sla_watch(
        self, *, agency: str | None, site: str | None, now: datetime, offset: int, limit: int
    ) -> tuple[list[Application], int]:
        """Open applications at risk or breached in a scope, the most urgent first, with the total."""
        conditions = [
            applications.c.finished.is_(False),
            or_(applications.c.at_risk_from < now, applications.c.sla_breached_at.is_not(None)),
        ]
        if agency is not None:
            conditions.append(applications.c.agency == agency)
        if site is not None:
            conditions.append(applications.c.site == site)
        total = (
            await self._s.execute(select(func.count()).select_from(applications).where(*conditions))
        ).scalar_one()
        rows = (
            await self._s.execute(
                select(applications)
                .where(*conditions)
                .order_by(applications.c.due_at.asc().nulls_last(), applications.c.id)
                .offset(offset)
                .limit(limit)
            )
        ).all()
        return [self._to_application(row) for row in rows], int(total)

    async def overdue_for_update(self, now: datetime, limit: int) -> list[Application]:
        """Open applications past their due instant and not yet marked breached, locked for this
        transaction; rows another worker holds are skipped (PostgreSQL), so each is marked once."""
        query = (
            select(applications)
            .where(
                applications.c.finished.is_(False),
                applications.c.due_at < now,
                applications.c.sla_breached_at.is_(None),
            )
            .order_by(applications.c.due_at)
            .limit(limit)
        )
        if self._s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = (await self._s.execute(query)).all()
        return [self._to_application(row) for row in rows]

    def _to_application(self, row: Any) -> Application:
        workflow, clock = self._rules(row.workflow, row.site)
        return Application(
            id=row.id,
            tracking_code=row.tracking_code,
            service_type=row.service_type,
            agency=row.agency,
            site=row.site,
            applicant_ref=row.applicant_ref,
            channel=row.channel,
            submitted_at=_aware(row.submitted_at),
            documents=len(row.documents),
            workflow=workflow,
            clock=clock,
            state=row.status,
            pauses=[_pause(p) for p in row.pauses],
            due_at=_aware(row.due_at),
            at_risk_from=_aware(row.at_risk_from),
            approved_at=_aware(row.approved_at),
            approved_by=row.approved_by,
            issued_at=_aware(row.issued_at),
            permit_number=row.permit_number,
            within_sla=row.within_sla,
            sla_breached_at=_aware(row.sla_breached_at),
            verification_request_id=row.verification_request_id,
            nik_failure_reason=row.nik_failure_reason,
            verification_attempts=row.verification_attempts,
            verification_next_at=_aware(row.verification_next_at),
            version=row.version,
        )

    async def next_permit_sequence(self, *, agency: str, site: str, year: int) -> int:
        dialect = self._s.get_bind().dialect.name
        upsert = _PERMIT_SEQUENCE.get(dialect)
        if upsert is None:
            insert = dialect_insert(self._s, permit_sequences).values(
                agency=bindparam("b_agency"), site=bindparam("b_site"), year=bindparam("b_year"), last=1
            )
            upsert = _PERMIT_SEQUENCE[dialect] = insert.on_conflict_do_update(
                index_elements=[permit_sequences.c.agency, permit_sequences.c.site, permit_sequences.c.year],
                set_={"last": permit_sequences.c.last + 1},
            ).returning(permit_sequences.c.last)
        params = {"b_agency": agency, "b_site": site, "b_year": year}
        return int((await self._s.execute(upsert, params)).scalar_one())


class IdempotencyStore:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def find(self, principal: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        row = (await self._s.execute(_IDEMPOTENCY_FIND, {"b_principal": principal, "b_key": key})).first()
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
            _IDEMPOTENCY_REMEMBER,
            {
                "principal": principal,
                "key": key,
                "request_hash": request_hash,
                "status_code": status_code,
                "response": response,
                "created_at": at,
            },
        )


def _save_values(app: Application, sealed_request: bytes | None) -> dict[str, Any]:
    values = _mutable(app)
    if not app.awaiting_nik:
        values["verification_request"] = None
    elif sealed_request is not None:
        values["verification_request"] = sealed_request
    values["version"] = app.version + 1
    values["b_id"] = app.id
    values["b_version"] = app.version
    return values


def _mutable(app: Application) -> dict[str, Any]:
    return {
        "status": app.state,
        "pauses": [[_iso(a), _iso(b) if b else None] for a, b in app.pauses],
        "due_at": _utc(app.due_at),
        "at_risk_from": _utc(app.at_risk_from),
        "finished": app.finished,
        "approved_at": _utc(app.approved_at),
        "approved_by": app.approved_by,
        "issued_at": _utc(app.issued_at),
        "permit_number": app.permit_number,
        "within_sla": app.within_sla,
        "sla_breached_at": _utc(app.sla_breached_at),
        "applicant_ref": app.applicant_ref,
        "nik_failure_reason": app.nik_failure_reason,
        "verification_request_id": app.verification_request_id,
        "verification_attempts": app.verification_attempts,
        "verification_next_at": _utc(app.verification_next_at),
    }


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


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
