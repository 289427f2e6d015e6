"""Downloads: every table the service shows as CSV or XLSX, and the monthly report of one MPP as a
printable page, JSON and XLSX.

Exports take the JSON API's query parameters and scopes (``scope_of``) and its figures
(``figures.compute``). The monthly report covers a whole MPP, so it is for the ministry (any site) and
the MPP's operator (their own site); agency staff get 403 and use the exports, which narrow to their
agency.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mpp.contracts.masterdata import Site
from mpp.kit.auth import ForbiddenError, Principal, Role, require_roles
from mpp.kit.http import DomainError
from mpp.reporting.api.metrics import READERS, Filters, InvalidQuery, filters, scope_of
from mpp.reporting.api.page_auth import PageForbidden, require_page_roles
from mpp.reporting.api.pages import PageInvalid, PageNotFound
from mpp.reporting.domain.periods import Period
from mpp.reporting.export import html as report_html
from mpp.reporting.export.csvfile import to_csv
from mpp.reporting.export.labels import PERIODS
from mpp.reporting.export.monthly import MonthlyReport, monthly_report, parse_month
from mpp.reporting.export.sheet import Table
from mpp.reporting.export.tables import Spec, build, spec_of
from mpp.reporting.export.xlsx import to_xlsx
from mpp.reporting.figures import GroupBy, Unsupported

router = APIRouter()

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MONTHLY_READERS = (Role.MINISTRY, Role.OPERATOR)

_OWN_SITE = "Anda hanya dapat melihat laporan bulanan MPP Anda sendiri"


class UnknownTable(DomainError):
    status_code = 404
    code = "unknown_table"
    message = (
        "Tabel ekspor tidak dikenal; pilih overview, ikm-elements, waiting-by-hour, sla-by-service-type "
        "atau metric-<kode metrik>"
    )


class UnknownSite(DomainError):
    status_code = 404
    code = "unknown_site"
    message = "MPP tidak dikenal dalam katalog"


class InvalidMonth(DomainError):
    status_code = 422
    code = "invalid_month"
    message = "Bulan harus ditulis TTTT-BB, misalnya 2026-03"


def attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}


def _filename(spec: Spec, f: Filters, period: Period, group_by: GroupBy | None) -> str:
    where = f.site or (f"kabkota-{f.kabkota}" if f.kabkota else None)
    where = where or (f"provinsi-{f.province}" if f.province else "nasional")
    parts = [spec.name, where]
    if f.agency:
        parts.append(f.agency)
    if f.service_type:
        parts.append(f.service_type)
    if f.start or f.end:
        parts.append(
            f"{f.start.isoformat() if f.start else 'awal'}_sd_{f.end.isoformat() if f.end else 'kini'}"
        )
    else:
        parts.append("semua-tanggal")
    parts.append(PERIODS[period.value])
    if group_by is not None and not spec.fixed_group:
        parts.append(f"per-{group_by.value}")
    return "_".join(parts)


async def _export(
    request: Request,
    table: str,
    principal: Principal,
    f: Filters,
    period: Period | None,
    group_by: GroupBy | None,
) -> tuple[Table, str]:
    spec = spec_of(table)
    if spec is None:
        raise UnknownTable
    if group_by in (GroupBy.HOUR, GroupBy.WEEKDAY) and spec.metric is None:
        raise InvalidQuery(
            "Ikhtisar dapat dikelompokkan per MPP, instansi, jenis layanan, kab/kota atau provinsi"
        )
    if group_by is not None and spec.fixed_group:
        raise InvalidQuery(f"Tabel {spec.name} sudah memiliki pengelompokan tetap; hapus group_by")
    scope, narrowed = scope_of(request, principal, f)
    chosen = period or spec.default_period
    svc = request.app.state.reporting
    try:
        async with svc.sessions() as session:
            built = await build(session, svc.geography, spec, scope, period=chosen, group_by=group_by)
    except Unsupported:
        raise InvalidQuery("Metrik ini tidak tersedia per jam; per jam hanya M3, M4, D1 dan D2") from None
    return built, _filename(spec, narrowed, chosen, group_by if not spec.fixed_group else spec.group_by)


@router.get(
    "/v1/exports/{table}.csv", summary="A table as CSV (UTF-8 with BOM), same parameters as the JSON API"
)
async def export_csv(
    request: Request,
    table: str,
    principal: Annotated[Principal, Depends(require_roles(*READERS))],
    f: Annotated[Filters, Depends(filters)],
    period: Period | None = None,
    group_by: GroupBy | None = None,
) -> Response:
    built, name = await _export(request, table, principal, f, period, group_by)
    return Response(to_csv(built), media_type=CSV_TYPE, headers=attachment(f"{name}.csv"))


@router.get(
    "/v1/exports/{table}.xlsx", summary="A table as an XLSX workbook, same parameters as the JSON API"
)
async def export_xlsx(
    request: Request,
    table: str,
    principal: Annotated[Principal, Depends(require_roles(*READERS))],
    f: Annotated[Filters, Depends(filters)],
    period: Period | None = None,
    group_by: GroupBy | None = None,
) -> Response:
    built, name = await _export(request, table, principal, f, period, group_by)
    return Response(
        to_xlsx([built], title=built.title), media_type=XLSX_TYPE, headers=attachment(f"{name}.xlsx")
    )


def _site_today(site: Site) -> date:
    return datetime.now(ZoneInfo(site.timezone)).date()


async def _monthly(
    request: Request, principal: Principal, site: str, month: str, *, page: bool = False
) -> MonthlyReport:
    """The report, or the refusal: JSON errors for the API, Indonesian HTML pages for the page routes."""
    if not principal.has_any(Role.MINISTRY) and principal.site != site:
        raise PageForbidden(_OWN_SITE) if page else ForbiddenError(_OWN_SITE)
    first = parse_month(month)
    if first is None:
        raise PageInvalid(InvalidMonth.message) if page else InvalidMonth
    svc = request.app.state.reporting
    found = svc.geography.sites.get(site)
    if found is None:
        raise PageNotFound(UnknownSite.message) if page else UnknownSite
    async with svc.sessions() as session:
        return await monthly_report(session, svc.geography, found, first, today=_site_today(found))


def _report_name(report: MonthlyReport) -> str:
    return f"laporan-bulanan_{report.site.code}_{report.month}{'_sementara' if report.provisional else ''}"


def _xlsx(report: MonthlyReport) -> Response:
    body = to_xlsx(report.sections, title=f"Laporan bulanan {report.site.name} {report.month}")
    return Response(body, media_type=XLSX_TYPE, headers=attachment(f"{_report_name(report)}.xlsx"))


def _csv(report: MonthlyReport) -> Response:
    return Response(
        to_csv(report.long_table()), media_type=CSV_TYPE, headers=attachment(f"{_report_name(report)}.csv")
    )


# The .csv and .xlsx routes come first: ``{month}`` alone would also match "2026-03.xlsx".
@router.get("/v1/reports/monthly/{site}/{month}.csv", summary="The monthly report of one MPP as CSV")
async def monthly_csv(
    request: Request,
    site: str,
    month: str,
    principal: Annotated[Principal, Depends(require_roles(*MONTHLY_READERS))],
) -> Response:
    return _csv(await _monthly(request, principal, site, month))


@router.get("/v1/reports/monthly/{site}/{month}.xlsx", summary="The monthly report of one MPP as XLSX")
async def monthly_xlsx(
    request: Request,
    site: str,
    month: str,
    principal: Annotated[Principal, Depends(require_roles(*MONTHLY_READERS))],
) -> Response:
    return _xlsx(await _monthly(request, principal, site, month))


@router.get("/v1/reports/monthly/{site}/{month}", summary="The monthly report of one MPP as JSON")
async def monthly_json(
    request: Request,
    site: str,
    month: str,
    principal: Annotated[Principal, Depends(require_roles(*MONTHLY_READERS))],
) -> JSONResponse:
    report = await _monthly(request, principal, site, month)
    return JSONResponse(report.json())


@router.get("/laporan/bulanan/{site}/{month}.csv", include_in_schema=False)
async def monthly_page_csv(
    request: Request,
    site: str,
    month: str,
    principal: Annotated[Principal, Depends(require_page_roles(*MONTHLY_READERS))],
) -> Response:
    return _csv(await _monthly(request, principal, site, month, page=True))


@router.get("/laporan/bulanan/{site}/{month}.xlsx", include_in_schema=False)
async def monthly_page_xlsx(
    request: Request,
    site: str,
    month: str,
    principal: Annotated[Principal, Depends(require_page_roles(*MONTHLY_READERS))],
) -> Response:
    return _xlsx(await _monthly(request, principal, site, month, page=True))


@router.get("/laporan/bulanan/{site}/{month}", response_class=HTMLResponse, include_in_schema=False)
async def monthly_page(
    request: Request,
    site: str,
    month: str,
    principal: Annotated[Principal, Depends(require_page_roles(*MONTHLY_READERS))],
) -> HTMLResponse:
    report = await _monthly(request, principal, site, month, page=True)
    page = report_html.render(
        report,
        xlsx_href=f"/laporan/bulanan/{report.site.code}/{report.month}.xlsx",
        csv_href=f"/laporan/bulanan/{report.site.code}/{report.month}.csv",
        generated=_site_today(report.site),
    )
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": report_html.CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
