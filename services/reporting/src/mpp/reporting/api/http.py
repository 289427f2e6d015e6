"""Reporting JSON API: figures per day, site, agency and service type, within the caller's scope."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from mpp.kit.auth import ForbiddenError, Principal, Role, require_roles

router = APIRouter(prefix="/v1/figures")

READERS = (Role.MINISTRY, Role.OPERATOR, Role.SUPERVISOR, Role.OFFICER)


def _scope(principal: Principal, site: str | None, agency: str | None) -> tuple[str | None, str | None]:
    """Narrow the filters to what the caller may see: the ministry everything, an operator their
    site, an agency's staff their agency at their site (or at every site for an agency-wide user)."""
    if principal.has_any(Role.MINISTRY):
        return site, agency
    # A missing scope claim must narrow the view, never widen it to every site or agency.
    if principal.has_any(Role.OPERATOR):
        if principal.site is None or (site is not None and site != principal.site):
            raise ForbiddenError()
        return principal.site, agency
    if principal.agency is None:
        raise ForbiddenError()
    if agency is not None and agency != principal.agency:
        raise ForbiddenError()
    if principal.site is None:
        # An agency-wide user (agency claim, no site): their agency at every site.
        return site, principal.agency
    if site is not None and site != principal.site:
        raise ForbiddenError()
    return principal.site, principal.agency


@router.get("/daily", summary="Daily counts per site, agency, service type and metric")
async def daily(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*READERS))],
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    site: str | None = None,
    agency: str | None = None,
) -> dict[str, Any]:
    site, agency = _scope(principal, site, agency)
    svc = request.app.state.reporting
    async with svc.sessions() as session:
        rows = await svc.repository.query_daily(session, start=start, end=end, site=site, agency=agency)
    return {"rows": [{**r, "day": r["day"].isoformat()} for r in rows]}


@router.get("/totals", summary="Totals per metric over a period")
async def totals(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*READERS))],
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    site: str | None = None,
    agency: str | None = None,
) -> dict[str, Any]:
    site, agency = _scope(principal, site, agency)
    svc = request.app.state.reporting
    async with svc.sessions() as session:
        figures = await svc.repository.query_totals(session, start=start, end=end, site=site, agency=agency)
    return {"site": site, "agency": agency, "from": start, "to": end, "totals": figures}
