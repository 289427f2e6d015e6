"""Queries of SKM survey invitations and answers, and of complaints."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.events.common import ComplaintCategory, ComplaintChannel, ComplaintClass
from mpp.contracts.events.queue import ComplaintOutcome
from mpp.queue.domain.complaints import Complaint, ComplaintState
from mpp.queue.domain.surveys import SurveyAnswers, SurveyInvitation
from mpp.queue.persistence.protection import TextSealer
from mpp.queue.persistence.repository import _aware
from mpp.queue.persistence.tables import complaints, survey_invitations, survey_responses


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _req(value: datetime | None) -> datetime:
    found = _aware(value)
    assert found is not None
    return found


def _invitation(row: RowMapping) -> SurveyInvitation:
    return SurveyInvitation(
        token=row["token"],
        ticket_id=row["ticket_id"],
        site=row["site"],
        agency=row["agency"],
        service_type=row["service_type"],
        completed_at=_req(row["completed_at"]),
        closes_at=_req(row["closes_at"]),
        answered_at=_aware(row["answered_at"]),
    )


_INVITATION_OF_TICKET = select(survey_invitations).where(
    survey_invitations.c.ticket_id == bindparam("ticket_id")
)


class SurveyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        self.invited: dict[str, SurveyInvitation] = {}
        """Invitations written in this unit of work, by ticket id."""

    def invited_row(self, inv: SurveyInvitation) -> dict[str, Any]:
        """The row of a new invitation, for the caller to insert in this unit of work (the statement that
        saves the completed ticket does); remembered so that :meth:`of_ticket` needs no read."""
        # As a read would return it: times in UTC.
        self.invited[inv.ticket_id] = replace(
            inv, completed_at=inv.completed_at.astimezone(UTC), closes_at=inv.closes_at.astimezone(UTC)
        )
        return {
            "token": inv.token,
            "ticket_id": inv.ticket_id,
            "site": inv.site,
            "agency": inv.agency,
            "service_type": inv.service_type,
            "completed_at": _utc(inv.completed_at),
            "closes_at": _utc(inv.closes_at),
            "answered_at": None,
        }

    async def find(self, key: str) -> SurveyInvitation | None:
        """The invitation of a survey token, or of the ticket id the citizen holds."""
        query = select(survey_invitations).where(
            or_(survey_invitations.c.token == key, survey_invitations.c.ticket_id == key)
        )
        row = (await self._s.execute(query)).mappings().first()
        return None if row is None else _invitation(row)

    async def of_ticket(self, ticket_id: str) -> SurveyInvitation | None:
        invited = self.invited.get(ticket_id)
        if invited is not None:
            return invited  # written in this transaction: no need to read it back
        row = (await self._s.execute(_INVITATION_OF_TICKET, {"ticket_id": ticket_id})).mappings().first()
        return None if row is None else _invitation(row)

    async def claim(self, token: str, at: datetime) -> bool:
        """Mark the invitation answered if it is still open: exactly one of concurrent claims wins.

        A conditional UPDATE: on PostgreSQL a second transaction waits for the row lock of the first,
        then re-reads the row, finds it answered and updates nothing.
        """
        result = await self._s.execute(
            update(survey_invitations)
            .where(
                survey_invitations.c.token == token,
                survey_invitations.c.answered_at.is_(None),
                survey_invitations.c.closes_at >= _utc(at),
            )
            .values(answered_at=_utc(at))
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def record(
        self, *, id: str, site: str, agency: str, service_type: str, answers: SurveyAnswers, at: datetime
    ) -> None:
        scores = {f"u{i}": getattr(answers.scores, f"u{i}") for i in range(1, 10)}
        await self._s.execute(
            survey_responses.insert().values(
                id=id,
                site=site,
                agency=agency,
                service_type=service_type,
                channel=answers.channel.value,
                sex=None if answers.sex is None else answers.sex.value,
                age_band=None if answers.age_band is None else answers.age_band.value,
                education=None if answers.education is None else answers.education.value,
                occupation=None if answers.occupation is None else answers.occupation.value,
                submitted_at=_utc(at),
                **scores,
            )
        )


def _complaint(row: RowMapping, sealer: TextSealer) -> Complaint:
    contact = row["contact_sealed"]
    return Complaint(
        id=row["id"],
        tracking_code=row["tracking_code"],
        site=row["site"],
        channel=ComplaintChannel(row["channel"]),
        category=ComplaintCategory(row["category"]),
        complaint_class=ComplaintClass(row["complaint_class"]),
        anonymous=row["anonymous"],
        description=sealer.open(row["id"], "description", row["description_sealed"]),
        received_at=_req(row["received_at"]),
        received_by=row["received_by"],
        first_response_limit_days=row["first_response_limit_days"],
        resolution_limit_days=row["resolution_limit_days"],
        first_response_due=_req(row["first_response_due"]),
        resolution_due=_req(row["resolution_due"]),
        complainant_ref=row["complainant_ref"],
        contact=None if contact is None else sealer.open(row["id"], "contact", contact),
        agency=row["agency"],
        service_type=row["service_type"],
        lapor_tracking_id=row["lapor_tracking_id"],
        state=ComplaintState(row["state"]),
        responded_at=_aware(row["responded_at"]),
        responded_by=row["responded_by"],
        response=row["response"],
        resolved_at=_aware(row["resolved_at"]),
        resolved_by=row["resolved_by"],
        outcome=None if row["outcome"] is None else ComplaintOutcome(row["outcome"]),
        resolution=row["resolution"],
    )


def _mutable(c: Complaint) -> dict[str, Any]:
    return {
        "agency": c.agency,
        "state": c.state.value,
        "responded_at": _utc(c.responded_at),
        "responded_by": c.responded_by,
        "response": c.response,
        "resolved_at": _utc(c.resolved_at),
        "resolved_by": c.resolved_by,
        "outcome": None if c.outcome is None else c.outcome.value,
        "resolution": c.resolution,
    }


class ComplaintRepository:
    def __init__(self, session: AsyncSession, sealer: TextSealer) -> None:
        self._s = session
        self._sealer = sealer

    async def add(self, c: Complaint) -> None:
        await self._s.execute(
            complaints.insert().values(
                id=c.id,
                tracking_code=c.tracking_code,
                site=c.site,
                channel=c.channel.value,
                category=c.category.value,
                complaint_class=c.complaint_class.value,
                anonymous=c.anonymous,
                complainant_ref=c.complainant_ref,
                contact_sealed=None if c.contact is None else self._sealer.seal(c.id, "contact", c.contact),
                service_type=c.service_type,
                lapor_tracking_id=c.lapor_tracking_id,
                description_sealed=self._sealer.seal(c.id, "description", c.description),
                received_at=_utc(c.received_at),
                received_by=c.received_by,
                first_response_limit_days=c.first_response_limit_days,
                resolution_limit_days=c.resolution_limit_days,
                first_response_due=_utc(c.first_response_due),
                resolution_due=_utc(c.resolution_due),
                **_mutable(c),
            )
        )

    async def get(self, complaint_id: str, *, lock: bool = False) -> Complaint | None:
        query = select(complaints).where(complaints.c.id == complaint_id)
        if lock:
            query = query.with_for_update()
        row = (await self._s.execute(query)).mappings().first()
        return None if row is None else _complaint(row, self._sealer)

    async def by_tracking_code(self, code: str) -> Complaint | None:
        query = select(complaints).where(complaints.c.tracking_code == code)
        row = (await self._s.execute(query)).mappings().first()
        return None if row is None else _complaint(row, self._sealer)

    async def code_taken(self, code: str) -> bool:
        query = select(complaints.c.id).where(complaints.c.tracking_code == code)
        return (await self._s.execute(query)).first() is not None

    async def save(self, c: Complaint) -> None:
        await self._s.execute(update(complaints).where(complaints.c.id == c.id).values(**_mutable(c)))

    async def listed(
        self,
        *,
        site: str,
        agency: str | None,
        state: ComplaintState | None,
        overdue_at: datetime | None,
        offset: int,
        limit: int,
    ) -> list[Complaint]:
        """A site's complaints (of one agency, or all), soonest resolution due first; ``overdue_at``
        keeps those with a limit passed without its step at that instant."""
        query = select(complaints).where(complaints.c.site == site)
        if agency is not None:
            query = query.where(complaints.c.agency == agency)
        if state is not None:
            query = query.where(complaints.c.state == state.value)
        if overdue_at is not None:
            at = _utc(overdue_at)
            query = query.where(
                or_(
                    and_(complaints.c.responded_at.is_(None), complaints.c.first_response_due < at),
                    and_(complaints.c.resolved_at.is_(None), complaints.c.resolution_due < at),
                )
            )
        query = query.order_by(complaints.c.resolution_due, complaints.c.id).offset(offset).limit(limit)
        return [_complaint(row, self._sealer) for row in (await self._s.execute(query)).mappings()]
