"""The metric API: every figure of the ministry's catalogue by period and dimension, within the caller's
scope. The ministry sees every MPP; an MPP operator their own site; agency staff (officers,
supervisors) their own agency at their own site, or at every site for an agency-wide user (an agency
claim and no site). Filters outside the scope are refused (403)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mpp.kit.auth import ForbiddenError, Principal, Role, require_roles
from mpp.kit.http import DomainError
from mpp.reporting.domain.metrics import METRICS, Metric, find
from mpp.reporting.domain.periods import Period
from mpp.reporting.figures import GroupBy, Unsupported, compute, compute_many
from mpp.reporting.persistence.repository import Scope

router = APIRouter()

READERS = (Role.MINISTRY, Role.OPERATOR, Role.SUPERVISOR, Role.OFFICER)

CodeParam = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
ProvinceParam = Annotated[str | None, Query(pattern=r"^[0-9]{2}$")]
KabKotaParam = Annotated[str | None, Query(pattern=r"^[0-9]{4}$")]
FromParam = Annotated[date | None, Query(alias="from")]
ToParam = Annotated[date | None, Query(alias="to")]

_OWN_SITE = "Anda hanya dapat melihat angka MPP Anda sendiri"
_OWN_AGENCY = "Anda hanya dapat melihat angka instansi Anda sendiri"
_OWN_REGION = "Provinsi atau kabupaten/kota yang diminta berada di luar wilayah MPP Anda"
_NO_SCOPE = "Token Anda tidak memuat MPP atau instansi, sehingga angka tidak dapat ditampilkan"


class UnknownMetric(DomainError):
    status_code = 404
    code = "unknown_metric"
    message = "Metrik tidak dikenal; lihat daftar di /v1/metrics"


class InvalidQuery(DomainError):
    status_code = 422
    code = "invalid_query"


@dataclass(frozen=True, slots=True)
class Filters:
    start: date | None
    end: date | None
    site: str | None
    agency: str | None
    service_type: str | None
    province: str | None
    kabkota: str | None

    def echo(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "site": self.site,
            "agency": self.agency,
            "service_type": self.service_type,
            "province": self.province,
            "kabkota": self.kabkota,
        }


def filters(
    start: FromParam = None,
    end: ToParam = None,
    site: CodeParam = None,
    agency: CodeParam = None,
    service_type: CodeParam = None,
    province: ProvinceParam = None,
    kabkota: KabKotaParam = None,
) -> Filters:
    if start and end and start > end:
        raise InvalidQuery("Tanggal awal (from) tidak boleh sesudah tanggal akhir (to)")
    return Filters(start, end, site, agency, service_type, province, kabkota)


def scope_of(request: Request, principal: Principal, f: Filters) -> tuple[Scope, Filters]:
    """The caller's scope narrowed by the filters; a filter outside the scope is a 403.

    The ministry sees everything; an operator their own site; agency staff (officers, supervisors)
    their own agency at their own site, or, with an agency claim and no site (an agency-wide user),
    their own agency at every site. A token missing the claim its role needs sees nothing."""
    geography = request.app.state.reporting.geography
    site, agency = f.site, f.agency
    if not principal.has_any(Role.MINISTRY):
        agency_wide = (
            not principal.has_any(Role.OPERATOR) and principal.site is None and principal.agency is not None
        )
        if principal.site is None and not agency_wide:
            raise ForbiddenError(_NO_SCOPE)
        if principal.site is not None:
            if site is not None and site != principal.site:
                raise ForbiddenError(_OWN_SITE)
            if (
                f.province is not None and geography.region(principal.site, GroupBy.PROVINCE) != f.province
            ) or (f.kabkota is not None and geography.region(principal.site, GroupBy.KABKOTA) != f.kabkota):
                raise ForbiddenError(_OWN_REGION)
            site = principal.site
        if not principal.has_any(Role.OPERATOR):
            if principal.agency is None:
                raise ForbiddenError(_NO_SCOPE)
            if agency is not None and agency != principal.agency:
                raise ForbiddenError(_OWN_AGENCY)
            agency = principal.agency
    sites: frozenset[str] | None = None
    if f.province is not None or f.kabkota is not None:
        sites = geography.sites_in(province=f.province, kabkota=f.kabkota)
    if site is not None:
        sites = frozenset({site}) if sites is None else sites & {site}
    narrowed = Filters(f.start, f.end, site, agency, f.service_type, f.province, f.kabkota)
    national = request.app.state.reporting.national
    return Scope(f.start, f.end, sites, agency, f.service_type, summaries=national), narrowed


def _metric(name: str) -> Metric:
    found = find(name)
    if found is None:
        raise UnknownMetric
    return found


@router.get("/v1/metrics", summary="Definitions of every metric (Bahasa Indonesia), with formula and source")
async def definitions(_principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict[str, Any]:
    return {"metrics": [m.definition() for m in METRICS]}


@router.get("/v1/metrics/{metric}/definition", summary="Definition of one metric")
async def definition(
    metric: str, _principal: Annotated[Principal, Depends(require_roles(*READERS))]
) -> dict[str, Any]:
    return _metric(metric).definition()


def _json(body: dict[str, Any]) -> Response:
    """A JSON body serialised by orjson in one pass: the figures are plain dicts, lists, strings and
    numbers, so the generic encoder's walk over every value (the larger part of a by-site response's
    time) is not needed."""
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), media_type="application/json")


@router.get(
    "/v1/metrics/{metric}",
    summary="Figures of one metric by period and dimension",
    response_model=dict[str, Any],
)
async def figures(
    request: Request,
    metric: str,
    principal: Annotated[Principal, Depends(require_roles(*READERS))],
    f: Annotated[Filters, Depends(filters)],
    period: Period = Period.MONTH,
    group_by: GroupBy | None = None,
) -> Response:
    found = _metric(metric)
    scope, narrowed = scope_of(request, principal, f)
    svc = request.app.state.reporting
    try:
        async with svc.sessions() as session:
            rows = await compute(session, svc.geography, found, scope, period=period, group_by=group_by)
    except Unsupported:
        raise InvalidQuery(
            f"Metrik {found.id} tidak tersedia per jam; per jam hanya M3, M4, D1 dan D2"
        ) from None
    return _json(
        {
            "metric": found.definition(),
            "period": period.value,
            "group_by": group_by.value if group_by else None,
            "scope": narrowed.echo(),
            "rows": rows,
        }
    )


@router.get(
    "/v1/overview",
    summary="Every metric over one period, for one MPP or nationally",
    response_model=dict[str, Any],
)
async def overview(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(*READERS))],
    f: Annotated[Filters, Depends(filters)],
) -> Response:
    scope, narrowed = scope_of(request, principal, f)
    svc = request.app.state.reporting
    async with svc.sessions() as session:
        computed = await compute_many(
            session, svc.geography, METRICS, scope, period=Period.ALL, group_by=None
        )
    metrics = []
    for m in METRICS:
        (row,) = computed[m.id]
        metrics.append({"id": m.id, "name": m.name, "href": m.definition()["href"], **row})
    level = "site" if narrowed.site else "national" if not (f.province or f.kabkota) else "region"
    return _json({"level": level, "scope": narrowed.echo(), "metrics": metrics})
