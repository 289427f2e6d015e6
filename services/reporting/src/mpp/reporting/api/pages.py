"""The ministry's dashboards: server-rendered pages in Bahasa Indonesia under ``/dasbor``.

Every figure comes from :func:`mpp.reporting.figures.compute` within the caller's scope as the JSON API
computes it (:func:`mpp.reporting.api.metrics.scope_of`); a page reads each metric once for all its rows
(grouped by site, agency or service type), never once per row. Pages need no external resource: the
style sheet and the script are served from this package and the charts are inline SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from importlib.resources import files
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.auth import ForbiddenError, Principal, Role
from mpp.reporting.api import html as h
from mpp.reporting.api.labels import CODES, FIELDS, GROUPS, HIDDEN, PERIODS, fmt, label
from mpp.reporting.api.metrics import READERS, Filters, scope_of
from mpp.reporting.api.page_auth import PageForbidden, require_page_roles
from mpp.reporting.domain.metrics import METRICS, Metric, find
from mpp.reporting.domain.periods import Period
from mpp.reporting.figures import Geography, GroupBy, compute, compute_many
from mpp.reporting.persistence.repository import Scope, late_list

router = APIRouter(prefix="/dasbor", include_in_schema=False)

LATE_ROWS = 100
_JAKARTA = ZoneInfo("Asia/Jakarta")
_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'; connect-src 'self'"
)
_ASSETS = {
    name: (files("mpp.reporting") / "static" / name).read_text(encoding="utf-8")
    for name in ("dasbor.css", "dasbor.js")
}

Reader = Annotated[Principal, Depends(require_page_roles(*READERS))]


class PageNotFound(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={"Content-Security-Policy": _CSP})


async def forbidden_page(_request: Request, exc: Exception) -> Response:
    """A page out of the caller's scope: 403 as an HTML page."""
    assert isinstance(exc, PageForbidden)
    return _html(h.message_page("Akses ditolak", exc.message), 403)


async def invalid_page(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageInvalid)
    return _html(h.message_page("Permintaan tidak valid", exc.message), 422)


async def not_found_page(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageNotFound)
    return _html(h.message_page("Tidak ditemukan", exc.message), 404)


class PagePeriod(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    SEMESTER = "semester"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class View:
    """What the reader asked for: the day range, the trend granularity and the region filters."""

    start: date
    end: date
    period: Period
    province: str | None = None
    kabkota: str | None = None

    def query(self, **extra: str | None) -> dict[str, str | None]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "period": self.period.value,
            "province": self.province,
            "kabkota": self.kabkota,
            **extra,
        }


_DAY = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$"


class PageInvalid(Exception):
    """A query the page cannot answer: 422 as an HTML page."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PageInvalid(f"Tanggal {name} tidak valid: {value}") from None


def view(
    start: Annotated[str | None, Query(alias="from", pattern=_DAY)] = None,
    end: Annotated[str | None, Query(alias="to", pattern=_DAY)] = None,
    period: PagePeriod = PagePeriod.MONTH,
    province: Annotated[str | None, Query(pattern=r"^([0-9]{2})?$")] = None,
    kabkota: Annotated[str | None, Query(pattern=r"^([0-9]{4})?$")] = None,
) -> View:
    """The page's query; an empty field of the filter form means no filter (or the default range)."""
    last = _day(end, "akhir") or datetime.now(_JAKARTA).date()
    first = _day(start, "awal") or date(last.year, 1, 1)
    if first > last:
        raise PageInvalid("Tanggal awal tidak boleh sesudah tanggal akhir")
    return View(first, last, Period(period.value), province or None, kabkota or None)


Viewed = Annotated[View, Depends(view)]


def _scope(request: Request, principal: Principal, f: Filters) -> tuple[Scope, Filters]:
    try:
        return scope_of(request, principal, f)
    except ForbiddenError as exc:
        raise PageForbidden(exc.message) from None


def _geo(request: Request) -> Geography:
    geography: Geography = request.app.state.reporting.geography
    return geography


# --- reading figures ----------------------------------------------------------------------------

Key = tuple[str, str]
"""(metric id, figure field)."""


@dataclass(frozen=True, slots=True)
class Column:
    metric: str
    field: str
    title: str


SITE_COLUMNS = (
    Column("M3", "visitors", "Pengunjung"),
    Column("M4", "tickets_issued", "Tiket"),
    Column("M4", "applications_submitted", "Permohonan"),
    Column("M6", "ikm", "IKM"),
    Column("M6", "grade", "Mutu"),
    Column("M5", "sla_compliance_pct", "Kepatuhan SLA"),
    Column("D1", "median_seconds", "Median waktu tunggu"),
    Column("M10", "permits_issued", "Izin terbit"),
    Column("M7", "received", "Pengaduan"),
)
AGENCY_COLUMNS = SITE_COLUMNS[1:]


@dataclass(frozen=True, slots=True)
class Rank:
    title: str
    metric: str
    field: str
    higher_is_better: bool


RANKS = {
    "ikm": Rank("IKM", "M6", "ikm", True),
    "sla": Rank("Kepatuhan SLA", "M5", "sla_compliance_pct", True),
    "pengunjung": Rank("Pengunjung", "M3", "visitors", True),
    "tunggu": Rank("Median waktu tunggu", "D1", "median_seconds", False),
    "izin": Rank("Izin terbit", "M10", "permits_issued", True),
}


def _metric(metric_id: str) -> Metric:
    found = find(metric_id)
    assert found is not None, metric_id
    return found


@dataclass
class Breakdown:
    groups: dict[str, dict[Key, Any]] = field(default_factory=dict)
    totals: dict[Key, Any] = field(default_factory=dict)


async def breakdown(
    session: AsyncSession, geo: Geography, scope: Scope, group_by: GroupBy, columns: Sequence[Column]
) -> Breakdown:
    """Each column's figure per group and in total: two reads for all the metrics, whatever the rows."""
    out = Breakdown()
    metrics = [_metric(metric_id) for metric_id in dict.fromkeys(c.metric for c in columns)]
    grouped = await compute_many(session, geo, metrics, scope, period=Period.ALL, group_by=group_by)
    totals = await compute_many(session, geo, metrics, scope, period=Period.ALL, group_by=None)
    for metric in metrics:
        fields = [c.field for c in columns if c.metric == metric.id]
        for row in grouped[metric.id]:
            cells = out.groups.setdefault(str(row[group_by.value]), {})
            for f in fields:
                cells[(metric.id, f)] = row["figures"].get(f)
        (total,) = totals[metric.id]
        for f in fields:
            out.totals[(metric.id, f)] = total["figures"].get(f)
    return out


def ranks(groups: dict[str, dict[Key, Any]], codes: Sequence[str], rank: Rank) -> dict[str, int]:
    """Competition ranking (1, 2, 2, 4) of ``codes`` by one figure; groups without it come last, unranked."""
    key = (rank.metric, rank.field)
    valued = [(groups.get(c, {}).get(key), c) for c in codes]
    ordered = sorted(
        ((v, c) for v, c in valued if v is not None),
        key=lambda vc: -vc[0] if rank.higher_is_better else vc[0],
    )
    out: dict[str, int] = {}
    for position, (value, code) in enumerate(ordered, start=1):
        previous = ordered[position - 2] if position > 1 else None
        out[code] = out[previous[1]] if previous is not None and previous[0] == value else position
    return out


def _kind(column: Column) -> str:
    return fmt(column.field)


def breakdown_table(
    table_id: str,
    first: Sequence[str],
    rows: Sequence[tuple[Sequence[str], dict[Key, Any]]],
    columns: Sequence[Column],
    totals: dict[Key, Any] | None,
    total_label: str,
) -> str:
    headers = [*(f"<span>{h.esc(f)}</span>" for f in first), *(h.heading(c.metric, c.title) for c in columns)]
    body = []
    for leading, cells in rows:
        figures = "".join(
            h.cell(cells.get((c.metric, c.field)), _kind(c), field=f"{c.metric}.{c.field}") for c in columns
        )
        body.append(f"<tr>{''.join(leading)}{figures}</tr>")
    foot = ""
    if totals is not None:
        figures = "".join(
            h.cell(totals.get((c.metric, c.field)), _kind(c), field=f"{c.metric}.{c.field}") for c in columns
        )
        foot = f'<tr><th colspan="{len(first)}">{h.esc(total_label)}</th>{figures}</tr>'
    return h.table(headers, body, foot=foot, attrs=f' id="{table_id}"')


# --- sections -----------------------------------------------------------------------------------


def filter_form(geo: Geography, v: View, *, regions: bool, extra: str = "") -> str:
    periods = "".join(
        f'<option value="{p}"{" selected" if v.period.value == p else ""}>{h.esc(name)}</option>'
        for p, name in PERIODS.items()
    )
    parts = [
        f'<form class="saring" method="get" id="saring">{extra}',
        f'<label>Periode tren<select name="period">{periods}</select></label>',
        f'<label>Dari tanggal<input type="date" name="from" value="{v.start.isoformat()}"></label>',
        f'<label>Sampai tanggal<input type="date" name="to" value="{v.end.isoformat()}"></label>',
    ]
    if regions:
        provinces = sorted({(s.province, s.province_name) for s in geo.sites.values()})
        kabkotas = sorted({(s.kabkota, s.kabkota_name, s.province) for s in geo.sites.values()})
        parts.append(
            '<label>Provinsi<select name="province"><option value="">Semua provinsi</option>'
            + "".join(
                f'<option value="{c}"{" selected" if v.province == c else ""}>{h.esc(n)}</option>'
                for c, n in provinces
            )
            + "</select></label>"
        )
        parts.append(
            '<label>Kabupaten/kota<select name="kabkota"><option value="">Semua kabupaten/kota</option>'
            + "".join(
                f'<option value="{c}" data-province="{p}"{" selected" if v.kabkota == c else ""}>{h.esc(n)}</option>'
                for c, n, p in kabkotas
            )
            + "</select></label>"
        )
    parts.append('<button type="submit">Terapkan</button></form>')
    return "".join(parts)


def metric_card(metric: Metric, figures: dict[str, Any], query: dict[str, str | None]) -> str:
    items = []
    for key, value in figures.items():
        if key in HIDDEN:
            continue
        if isinstance(value, dict):
            if not value:
                continue
            items.append(f"<dt><strong>{h.esc(GROUPS.get(key, label(key)))}</strong></dt><dd></dd>")
            items.extend(
                f"<dt>&nbsp;&nbsp;{h.esc(CODES.get(k, k))}</dt><dd>{h.esc(h.number(n))}</dd>"
                for k, n in value.items()
            )
            continue
        kind = fmt(key) if key in FIELDS else "int"
        items.append(
            f'<dt>{h.esc(label(key))}</dt><dd data-metric="{metric.id}" data-field="{h.esc(key)}" '
            f'data-value="{"" if value is None else h.esc(value)}">{h.esc(h.shown(value, kind))}</dd>'
        )
    exports = h.export_links(f"metric-{metric.id}", query)
    return (
        f'<section id="kartu-{metric.id}"><h3>{h.definition_link(metric.id, f"{metric.id} {metric.name}")}</h3>'
        f"<dl>{''.join(items)}</dl><p>{exports}</p></section>"
    )


async def trend_section(
    session: AsyncSession,
    geo: Geography,
    scope: Scope,
    v: View,
    series: Sequence[Column],
    query: dict[str, str | None],
) -> str:
    metrics = [_metric(metric_id) for metric_id in dict.fromkeys(c.metric for c in series)]
    by_metric = await compute_many(session, geo, metrics, scope, period=v.period, group_by=None)
    labels = sorted({r["period"] for rows in by_metric.values() for r in rows})
    values = {c: {r["period"]: r["figures"].get(c.field) for r in by_metric[c.metric]} for c in series}
    chart = h.line_chart(
        f"Tren per periode ({PERIODS[v.period.value].lower()})",
        labels,
        [h.Series(c.title, [values[c].get(p, 0) for p in labels]) for c in series],
    )
    rows = [
        f'<tr><td data-value="{h.esc(p)}">{h.esc(p)}</td>'
        + "".join(h.cell(values[c].get(p, 0), "int", field=f"{c.metric}.{c.field}") for c in series)
        + "</tr>"
        for p in labels
    ]
    exports = " ".join(h.export_links(f"metric-{m}", query) for m in by_metric)
    table = h.table(
        ["<span>Periode</span>", *(h.heading(c.metric, c.title) for c in series)],
        rows,
        attrs=' id="tabel-tren"',
    )
    return f'<section id="tren"><h2>Tren {exports}</h2>{chart}<details><summary>Angka tren</summary>{table}</details></section>'


def ikm_section(figures: dict[str, Any], query: dict[str, str | None]) -> str:
    weakest = figures.get("weakest_element")
    rows = []
    for e in figures.get("elements", []):
        cls = ' class="terlemah"' if e["element"] == weakest else ""
        rows.append(
            f'<tr{cls} data-element="{h.esc(e["element"])}"><td>{h.esc(e["element"])}</td><td>{h.esc(e["label"])}</td>'
            + h.cell(e["index"], "dec", field="index")
            + h.cell(e["answers"], "int", field="answers")
            + "</tr>"
        )
    grade = figures.get("grade")
    summary = (
        f'<p>IKM <strong data-field="ikm">{h.esc(h.shown(figures.get("ikm"), "dec"))}</strong> '
        f'<span class="mutu">{h.esc(grade or h.DASH)}</span> {h.esc(figures.get("grade_label") or "")} · '
        f"{h.esc(h.number(figures.get('respondents')))} responden"
        + (f" · unsur terlemah: <strong>{h.esc(weakest)}</strong>" if weakest else "")
        + "</p>"
    )
    table = h.table(["Unsur", "Uraian", "Indeks unsur", "Jawaban"], rows, attrs=' id="tabel-ikm"')
    return (
        f'<section id="ikm"><h2>{h.definition_link("M6", "Indeks Kepuasan Masyarakat")} '
        f"{h.export_links('ikm-elements', query)}</h2>{summary}{table}</section>"
    )


async def sla_section(
    session: AsyncSession,
    geo: Geography,
    scope: Scope,
    figures: dict[str, Any],
    query: dict[str, str | None],
    *,
    show_site: bool,
    show_agency: bool,
) -> str:
    total, late = await late_list(session, scope, limit=LATE_ROWS)
    headers = ["Nomor permohonan"]
    if show_site:
        headers.append("MPP")
    if show_agency:
        headers.append("Instansi")
    headers += ["Jenis layanan", "Batas waktu", "Selesai", "Hari terlambat"]
    rows = []
    for r in late:
        cells = [f"<td>{h.esc(r['application_ref'])}</td>"]
        if show_site:
            cells.append(
                f"<td>{h.esc(geo.sites[r['site']].name if r['site'] in geo.sites else r['site'])}</td>"
            )
        if show_agency:
            cells.append(f"<td>{h.esc(r['agency'])}</td>")
        cells += [
            f"<td>{h.esc(r['service_type'])}</td>",
            h.cell(r["due_day"].isoformat() if r["due_day"] else None, "text", field="due_day"),
            h.cell(r["finished_day"].isoformat(), "text", field="finished_day"),
            h.cell(r["days_late"], "int", field="days_late"),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    summary = (
        f'<p>Kepatuhan <strong data-field="sla_compliance_pct">{h.esc(h.percent(figures.get("sla_compliance_pct")))}</strong>: '
        f"{h.esc(h.number(figures.get('applications_within_sla')))} dari "
        f"{h.esc(h.number(figures.get('applications_with_sla_outcome')))} permohonan selesai tepat waktu. "
        f'Terlambat: <strong id="jumlah-terlambat" data-value="{total}">{h.esc(h.number(total))}</strong>'
        + (f" (ditampilkan {len(late)} terbaru)" if total > len(late) else "")
        + "</p>"
    )
    table = (
        h.table(headers, rows, attrs=' id="tabel-terlambat"')
        if rows
        else "<p>Tidak ada permohonan terlambat.</p>"
    )
    return (
        f'<section id="sla"><h2>{h.definition_link("M5", "Kepatuhan standar waktu pelayanan")} '
        f"{h.export_links('sla-by-service-type', query)}</h2>{summary}{table}"
        '<p class="catatan">Hanya nomor permohonan, tanpa data pribadi pemohon.</p></section>'
    )


async def hourly_section(
    session: AsyncSession, geo: Geography, scope: Scope, query: dict[str, str | None]
) -> str:
    rows = await compute(session, geo, _metric("D1"), scope, period=Period.ALL, group_by=GroupBy.HOUR)
    by_hour = {r["hour"]: r["figures"] for r in rows}
    hours = sorted(by_hour)
    minutes = [
        h.Series(name, [None if by_hour[x][f] is None else by_hour[x][f] / 60 for x in hours])
        for name, f in (("Median (menit)", "median_seconds"), ("P90 (menit)", "p90_seconds"))
    ]
    chart = h.bar_chart(
        "Waktu tunggu menurut jam pengambilan tiket", [f"{x:02d}" for x in hours], minutes, fmt="dec"
    )
    table_rows = [
        f'<tr data-hour="{x}"><td data-value="{x}">{x:02d}.00</td>'
        + h.cell(by_hour[x]["count"], "int", field="count")
        + h.cell(by_hour[x]["median_seconds"], "dur", field="median_seconds")
        + h.cell(by_hour[x]["p90_seconds"], "dur", field="p90_seconds")
        + "</tr>"
        for x in hours
    ]
    table = h.table(["Jam", "Tiket dipanggil", "Median", "P90"], table_rows, attrs=' id="tabel-jam"')
    body = f"{chart}{table}" if hours else "<p>Belum ada data waktu tunggu.</p>"
    return (
        f'<section id="per-jam"><h2>{h.definition_link("D1", "Waktu tunggu per jam")} '
        f"{h.export_links('waiting-by-hour', query)}</h2>{body}</section>"
    )


async def metric_cards(
    session: AsyncSession, geo: Geography, scope: Scope, ids: Sequence[str], query: dict[str, str | None]
) -> tuple[str, dict[str, dict[str, Any]]]:
    figures: dict[str, dict[str, Any]] = {}
    cards = []
    metrics = [m for m in METRICS if m.id in ids]
    computed = await compute_many(session, geo, metrics, scope, period=Period.ALL, group_by=None)
    for metric in metrics:
        (row,) = computed[metric.id]
        figures[metric.id] = row["figures"]
        cards.append(metric_card(metric, row["figures"], query))
    return f'<div class="kartu" id="ringkasan">{"".join(cards)}</div>', figures


def _site_name(geo: Geography, code: str) -> str:
    site = geo.sites.get(code)
    return site.name if site else code


def _link(href: str, text: str) -> str:
    return f'<a href="{h.esc(href)}">{h.esc(text)}</a>'


# --- routes -------------------------------------------------------------------------------------


@router.get("/aset/dasbor.css")
async def stylesheet() -> Response:
    return Response(_ASSETS["dasbor.css"], media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/aset/dasbor.js")
async def script() -> Response:
    return Response(
        _ASSETS["dasbor.js"], media_type="text/javascript", headers={"Cache-Control": "max-age=3600"}
    )


@router.get("")
async def home(principal: Reader) -> Response:
    """Each reader's own dashboard."""
    if principal.has_any(Role.MINISTRY):
        return RedirectResponse("/dasbor/nasional", status_code=303)
    if principal.has_any(Role.OPERATOR):
        if principal.site is None:
            raise PageForbidden("Token Anda tidak memuat MPP, sehingga dasbor tidak dapat ditampilkan")
        return RedirectResponse(f"/dasbor/mpp/{principal.site}", status_code=303)
    if principal.agency is None:
        raise PageForbidden("Token Anda tidak memuat instansi, sehingga dasbor tidak dapat ditampilkan")
    if principal.site is None:
        return RedirectResponse(f"/dasbor/instansi/{principal.agency}", status_code=303)
    return RedirectResponse(f"/dasbor/mpp/{principal.site}/instansi/{principal.agency}", status_code=303)


@router.get("/nasional")
async def national(
    request: Request,
    principal: Annotated[Principal, Depends(require_page_roles(Role.MINISTRY))],
    v: Viewed,
    peringkat: str = "ikm",
) -> HTMLResponse:
    """Every MPP in one sortable table with a ranking, a totals row and the national trend."""
    geo = _geo(request)
    rank = RANKS.get(peringkat, RANKS["ikm"])
    scope, _ = _scope(request, principal, Filters(v.start, v.end, None, None, None, v.province, v.kabkota))
    codes = sorted(scope.sites if scope.sites is not None else geo.sites, key=lambda c: geo.sites[c].name)
    query = v.query()
    svc = request.app.state.reporting
    async with svc.sessions() as session:
        data = await breakdown(session, geo, scope, GroupBy.SITE, SITE_COLUMNS)
        trend = await trend_section(
            session, geo, scope, v, (SITE_COLUMNS[0], SITE_COLUMNS[1], SITE_COLUMNS[2]), query
        )
    # Sites with events but missing from the catalogue still count in the totals: list them too.
    codes += sorted(g for g in data.groups if g not in geo.sites and scope.sites is None)
    ranking = ranks(data.groups, codes, rank)
    codes = sorted(codes, key=lambda c: (ranking.get(c, len(codes) + 1), _site_name(geo, c)))
    rows = []
    for code in codes:
        site = geo.sites.get(code)
        leading = [
            h.cell(ranking.get(code), "int", field="rank"),
            f'<td data-site="{h.esc(code)}">'
            + (
                _link(h.url(f"/dasbor/mpp/{code}", v.query(province=None, kabkota=None)), site.name)
                if site
                else h.esc(code)
            )
            + "</td>",
            f"<td>{h.esc(site.kabkota_name if site else h.DASH)}</td>",
            f"<td>{h.esc(site.province_name if site else h.DASH)}</td>",
        ]
        rows.append((leading, data.groups.get(code, {})))
    rank_options = "".join(
        f'<option value="{k}"{" selected" if r is rank else ""}>{h.esc(r.title)}</option>'
        for k, r in RANKS.items()
    )
    form = filter_form(
        geo,
        v,
        regions=True,
        extra=f'<label>Peringkat menurut<select name="peringkat">{rank_options}</select></label>',
    )
    title_scope = "Nasional" if not (v.province or v.kabkota) else "Wilayah terpilih"
    table = breakdown_table(
        "tabel-nasional",
        ["Peringkat", "MPP", "Kabupaten/kota", "Provinsi"],
        rows,
        SITE_COLUMNS,
        data.totals,
        f"Jumlah {title_scope.lower()} ({len(codes)} MPP)",
    )
    body = (
        f'{form}<section id="mpp"><h2>Seluruh MPP: peringkat menurut {h.esc(rank.title)} '
        f"{h.export_links('overview', query)}</h2>"
        f'<label class="catatan">Cari MPP <input type="search" data-saring="tabel-nasional"></label>'
        f'{table}<p class="catatan">Klik judul kolom untuk mengurutkan. Periode {v.start.isoformat()} s.d. '
        f"{v.end.isoformat()}.</p></section>{trend}"
    )
    return _html(h.page(f"Ringkasan nasional MPP: {title_scope}", body))


@router.get("/mpp/{site}")
async def site_page(request: Request, site: str, principal: Reader, v: Viewed) -> HTMLResponse:
    """One MPP: every metric, trends, IKM per element, SLA with the late applications, waiting per hour,
    and the agencies at the site."""
    if not principal.has_any(Role.MINISTRY, Role.OPERATOR):
        raise PageForbidden("Halaman MPP untuk operator MPP dan KemenPANRB; buka halaman instansi Anda")
    geo = _geo(request)
    scope, _ = _scope(request, principal, Filters(v.start, v.end, site, None, None, None, None))
    where = geo.sites.get(site)
    if where is None:
        raise PageNotFound("MPP tidak dikenal")
    base = v.query(province=None, kabkota=None)
    query = {**base, "site": site}
    agencies = {a.code: a for a in geo.catalogue.agencies}
    svc = request.app.state.reporting
    async with svc.sessions() as session:
        cards, figures = await metric_cards(session, geo, scope, [m.id for m in METRICS], query)
        trend = await trend_section(session, geo, scope, v, SITE_COLUMNS[:3], query)
        sla = await sla_section(session, geo, scope, figures["M5"], query, show_site=False, show_agency=True)
        hourly = await hourly_section(session, geo, scope, query)
        data = await breakdown(session, geo, scope, GroupBy.AGENCY, AGENCY_COLUMNS)
    hosted = set(geo.hosted({site}, None, None)["agencies"])
    rows = []
    for code in sorted(
        hosted | {g for g in data.groups if g}, key=lambda c: agencies[c].name if c in agencies else c
    ):
        name = agencies[code].name if code in agencies else code
        link = _link(h.url(f"/dasbor/mpp/{site}/instansi/{code}", base), name)
        rows.append(([f'<td data-agency="{h.esc(code)}">{link}</td>'], data.groups.get(code, {})))
    month = f"{v.end.year}-{v.end.month:02d}"
    body = (
        f"<p>{h.esc(where.kabkota_name)}, {h.esc(where.province_name)} · Periode {v.start.isoformat()} s.d. "
        f'{v.end.isoformat()} · <a id="laporan-bulanan" href="/laporan/bulanan/{h.esc(site)}/{month}">'
        f"Laporan bulanan {month}</a></p>"
        f"{filter_form(geo, v, regions=False)}{cards}{trend}{ikm_section(figures['M6'], query)}{sla}{hourly}"
        f'<section id="instansi"><h2>Instansi di MPP ini {h.export_links("overview", {**query, "group_by": "agency"})}</h2>'
        + breakdown_table("tabel-instansi", ["Instansi"], rows, AGENCY_COLUMNS, data.totals, "Jumlah MPP")
        + "</section>"
    )
    nav = [h.NavItem("/dasbor/nasional", "Nasional")] if principal.has_any(Role.MINISTRY) else []
    return _html(h.page(where.name, body, nav=nav))


AGENCY_METRICS = ("M2", "M4", "M5", "M6", "M7", "M8", "M9", "M10", "D1", "D2", "D3")


@router.get("/mpp/{site}/instansi/{agency}")
async def agency_at_site(
    request: Request, site: str, agency: str, principal: Reader, v: Viewed
) -> HTMLResponse:
    """One agency at one MPP, by service type."""
    geo = _geo(request)
    scope, _ = _scope(request, principal, Filters(v.start, v.end, site, agency, None, None, None))
    where = geo.sites.get(site)
    known = {a.code: a for a in geo.catalogue.agencies}
    if where is None or agency not in known:
        raise PageNotFound("MPP atau instansi tidak dikenal")
    base = v.query(province=None, kabkota=None)
    query = {**base, "site": site, "agency": agency}
    svc = request.app.state.reporting
    async with svc.sessions() as session:
        cards, figures = await metric_cards(session, geo, scope, AGENCY_METRICS, query)
        trend = await trend_section(session, geo, scope, v, AGENCY_COLUMNS[:2], query)
        sla = await sla_section(session, geo, scope, figures["M5"], query, show_site=False, show_agency=False)
        hourly = await hourly_section(session, geo, scope, query)
        data = await breakdown(session, geo, scope, GroupBy.SERVICE_TYPE, AGENCY_COLUMNS[:-2])
    services = {s.code: s.name for s in geo.catalogue.service_types if s.agency == agency}
    hosted = set(geo.hosted({site}, agency, None)["service_types"])
    rows = [
        (
            [f'<td data-service-type="{h.esc(code)}">{h.esc(services.get(code, code))}</td>'],
            data.groups.get(code, {}),
        )
        for code in sorted(hosted | {g for g in data.groups if g})
    ]
    nav = []
    if principal.has_any(Role.MINISTRY, Role.OPERATOR):
        nav.append(h.NavItem(h.url(f"/dasbor/mpp/{site}", base), where.name))
    if principal.has_any(Role.MINISTRY) or principal.site is None:
        nav.append(h.NavItem(h.url(f"/dasbor/instansi/{agency}", base), "Seluruh MPP instansi ini"))
    body = (
        f"<p>{h.esc(where.name)}, {h.esc(where.kabkota_name)} · Periode {v.start.isoformat()} s.d. {v.end.isoformat()}</p>"
        f"{filter_form(geo, v, regions=False)}{cards}{trend}{ikm_section(figures['M6'], query)}{sla}{hourly}"
        f'<section id="layanan"><h2>Menurut jenis layanan {h.export_links("overview", {**query, "group_by": "service_type"})}</h2>'
        + breakdown_table(
            "tabel-layanan", ["Jenis layanan"], rows, AGENCY_COLUMNS[:-2], data.totals, "Jumlah instansi"
        )
        + "</section>"
    )
    return _html(h.page(f"{known[agency].name} di {where.name}", body, nav=nav))


@router.get("/instansi/{agency}")
async def agency_everywhere(request: Request, agency: str, principal: Reader, v: Viewed) -> HTMLResponse:
    """One agency across every MPP it serves at (the ministry, or the agency's own agency-wide users)."""
    agency_wide = principal.site is None and principal.agency == agency
    if not (principal.has_any(Role.MINISTRY) or (agency_wide and not principal.has_any(Role.OPERATOR))):
        raise PageForbidden(
            "Halaman instansi lintas MPP untuk KemenPANRB dan pengguna tingkat instansi; buka dasbor Anda"
        )
    geo = _geo(request)
    scope, _ = _scope(request, principal, Filters(v.start, v.end, None, agency, None, v.province, v.kabkota))
    known = {a.code: a for a in geo.catalogue.agencies}
    if agency not in known:
        raise PageNotFound("Instansi tidak dikenal")
    query = {**v.query(), "agency": agency}
    present = {c.site for c in geo.catalogue.counters if c.agency == agency}
    if scope.sites is not None:
        present &= scope.sites
    svc = request.app.state.reporting
    async with svc.sessions() as session:
        cards, figures = await metric_cards(session, geo, scope, AGENCY_METRICS, query)
        trend = await trend_section(session, geo, scope, v, AGENCY_COLUMNS[:2], query)
        sla = await sla_section(session, geo, scope, figures["M5"], query, show_site=True, show_agency=False)
        hourly = await hourly_section(session, geo, scope, query)
        data = await breakdown(session, geo, scope, GroupBy.SITE, AGENCY_COLUMNS)
    codes = sorted(present | {g for g in data.groups if g in geo.sites}, key=lambda c: geo.sites[c].name)
    base = v.query(province=None, kabkota=None)
    rows = [
        (
            [
                f'<td data-site="{h.esc(c)}">{_link(h.url(f"/dasbor/mpp/{c}/instansi/{agency}", base), geo.sites[c].name)}</td>',
                f"<td>{h.esc(geo.sites[c].province_name)}</td>",
            ],
            data.groups.get(c, {}),
        )
        for c in codes
    ]
    body = (
        f"{filter_form(geo, v, regions=True)}{cards}{trend}"
        f'<section id="mpp"><h2>Menurut MPP {h.export_links("overview", {**query, "group_by": "site"})}</h2>'
        + breakdown_table(
            "tabel-mpp", ["MPP", "Provinsi"], rows, AGENCY_COLUMNS, data.totals, "Jumlah instansi"
        )
        + f"</section>{ikm_section(figures['M6'], query)}{sla}{hourly}"
    )
    return _html(h.page(f"{known[agency].name}: seluruh MPP", body))


def _definition(metric: Metric) -> str:
    d = metric.definition()
    return (
        f'<section id="{d["id"]}"><h2>{h.esc(d["id"])} {h.esc(d["name"])}</h2><p>{h.esc(d["description"])}</p>'
        f'<dl><dt>Rumus</dt><dd class="rumus">{h.esc(d["formula"])}</dd><dt>Sumber</dt><dd>{h.esc(d["source"])}</dd>'
        f"<dt>Per jam</dt><dd>{'ya' if d['by_hour'] else 'tidak'}</dd></dl>"
        f'<p class="catatan"><a href="{h.esc(d["href"])}">Definisi (JSON)</a></p></section>'
    )


@router.get("/definisi")
async def definitions(_principal: Reader) -> HTMLResponse:
    index = "".join(f'<li><a href="#{m.id}">{h.esc(m.id)} {h.esc(m.name)}</a></li>' for m in METRICS)
    return _html(h.page("Definisi metrik", f"<ul>{index}</ul>{''.join(_definition(m) for m in METRICS)}"))


@router.get("/definisi/{metric}")
async def definition(metric: str, _principal: Reader) -> HTMLResponse:
    found = find(metric)
    if found is None:
        raise PageNotFound("Metrik tidak dikenal; lihat daftar definisi di /dasbor/definisi")
    return _html(h.page(f"Definisi {found.id}: {found.name}", _definition(found)))


__all__ = [
    "PageForbidden",
    "PageInvalid",
    "PageNotFound",
    "forbidden_page",
    "invalid_page",
    "not_found_page",
    "router",
]
