"""The tables the service shows, as exportable tables: every cell comes from :func:`figures.compute`, the
same figures the JSON API answers, flattened into columns with Indonesian headers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.reporting.domain import ikm
from mpp.reporting.domain.metrics import METRICS, Metric, Totals, find
from mpp.reporting.domain.periods import Period
from mpp.reporting.export.labels import GROUPS, flatten, header, value_at
from mpp.reporting.export.sheet import Column, Kind, Table, kind_of
from mpp.reporting.figures import Geography, GroupBy, Unsupported, compute
from mpp.reporting.persistence.repository import Scope

METRIC_PREFIX = "metric-"


@dataclass(frozen=True, slots=True)
class Spec:
    """One exportable table: its title, the metric and grouping it is built from, and its default period."""

    name: str
    title: str
    metric: Metric | None = None
    group_by: GroupBy | None = None
    default_period: Period = Period.ALL
    fixed_group: bool = False


def _metric(id_: str) -> Metric:
    found = find(id_)
    assert found is not None
    return found


NAMED: dict[str, Spec] = {
    "overview": Spec("overview", "Ikhtisar per MPP"),
    "ikm-elements": Spec("ikm-elements", "IKM per unsur", _metric("M6"), fixed_group=True),
    "waiting-by-hour": Spec(
        "waiting-by-hour", "Waktu tunggu per jam", _metric("D1"), GroupBy.HOUR, fixed_group=True
    ),
    "sla-by-service-type": Spec(
        "sla-by-service-type",
        "Kepatuhan SLA per jenis layanan",
        _metric("M5"),
        GroupBy.SERVICE_TYPE,
        fixed_group=True,
    ),
}


def spec_of(table: str) -> Spec | None:
    """The table named in the address: a named table or ``metric-<id>`` (``metric-M3``, ``metric-ikm``)."""
    if table in NAMED:
        return NAMED[table]
    if table.startswith(METRIC_PREFIX):
        metric = find(table.removeprefix(METRIC_PREFIX))
        if metric is not None:
            return Spec(
                f"{METRIC_PREFIX}{metric.id}",
                f"{metric.id} {metric.name}",
                metric,
                default_period=Period.MONTH,
            )
    return None


def figure_columns(rows: Iterable[Mapping[str, Any]], *, prefix: str = "", label: str = "") -> list[Column]:
    """One column per flattened figure over all ``rows`` (union in order of appearance), typed by value."""
    paths: dict[str, list[Any]] = {}
    for figures in rows:
        for path, value in flatten(figures):
            paths.setdefault(path, []).append(value)
    return [
        Column(f"{prefix}{path}", f"{label}{header(path)}", kind_of(values)) for path, values in paths.items()
    ]


def _names(geography: Geography, group_by: GroupBy) -> dict[str, str]:
    catalogue = geography.catalogue
    if group_by is GroupBy.SITE:
        return {s.code: s.name for s in catalogue.sites}
    if group_by is GroupBy.AGENCY:
        return {a.code: a.name for a in catalogue.agencies}
    if group_by is GroupBy.SERVICE_TYPE:
        return {s.code: s.name for s in catalogue.service_types}
    if group_by is GroupBy.KABKOTA:
        return {s.kabkota: s.kabkota_name for s in catalogue.sites}
    if group_by is GroupBy.PROVINCE:
        return {s.province: s.province_name for s in catalogue.sites}
    return {}


def metric_table(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    group_by: GroupBy | None,
    geography: Geography,
    metric: Metric | None = None,
) -> Table:
    """The rows of ``GET /v1/metrics/{metric}`` as a table: period, group (with its name from the
    catalogue) and every figure. Without rows, ``metric``'s figures of nothing give the columns."""
    columns = [Column("period", "Periode"), Column("period_start", "Awal periode")]
    names: dict[str, str] = {}
    if group_by is not None:
        kind = Kind.INTEGER if group_by in (GroupBy.HOUR, GroupBy.WEEKDAY) else Kind.TEXT
        columns.append(Column(group_by.value, GROUPS[group_by.value], kind))
        names = _names(geography, group_by)
        if names:
            columns.append(Column(f"{group_by.value}_name", "Nama"))
    figures = figure_columns(r["figures"] for r in rows)
    if not rows and metric is not None:
        figures = figure_columns([metric.compute(Totals())])
    table = Table(title, columns + figures)
    for r in rows:
        cells: list[object] = [r["period"], r["period_start"]]
        if group_by is not None:
            cells.append(r[group_by.value])
            if names:
                cells.append(names.get(str(r[group_by.value]), ""))
        cells += [value_at(r["figures"], c.key) for c in figures]
        table.add(cells)
    return table


def ikm_table(title: str, rows: Sequence[Mapping[str, Any]]) -> Table:
    """Per period: each unsur with its answers, score sum, index and grade, then the IKM itself."""
    table = Table(
        title,
        [
            Column("period", "Periode"),
            Column("period_start", "Awal periode"),
            Column("element", "Unsur"),
            Column("label", "Nama unsur"),
            Column("answers", "Jumlah jawaban", Kind.INTEGER),
            Column("score_sum", "Jumlah nilai", Kind.INTEGER),
            Column("index", "Indeks (25 x NRR)", Kind.DECIMAL),
            Column("grade", "Mutu"),
        ],
        note="Indeks unsur = 25 x NRR; IKM = 25 x (NRR U1 + ... + NRR U9) x 1/9 (PermenPANRB 14/2017).",
    )
    for r in rows:
        f = r["figures"]
        for e in f["elements"]:
            grade = None if e["index"] is None else ikm.grade(Decimal(str(e["index"]))).value
            table.add(
                [
                    r["period"],
                    r["period_start"],
                    e["element"],
                    e["label"],
                    e["answers"],
                    e["score_sum"],
                    e["index"],
                    grade,
                ]
            )
        table.add(
            [
                r["period"],
                r["period_start"],
                "IKM",
                f"Indeks Kepuasan Masyarakat ({f['respondents']} responden)",
                f["respondents"],
                None,
                f["ikm"],
                f["grade"],
            ]
        )
    return table


def _sites_in(geography: Geography, scope: Scope) -> set[str]:
    return set(geography.sites) if scope.sites is None else set(scope.sites)


async def overview_table(session: AsyncSession, geography: Geography, scope: Scope) -> Table:
    """One row per MPP in the scope with every metric over the whole range (a column per figure)."""
    by_metric: dict[str, dict[str, dict[str, Any]]] = {}
    sites = _sites_in(geography, scope)
    for m in METRICS:
        rows = await compute(session, geography, m, scope, period=Period.ALL, group_by=GroupBy.SITE)
        by_metric[m.id] = {r["site"]: r["figures"] for r in rows}
        sites |= set(by_metric[m.id])
    for m in METRICS:
        missing = sites - set(by_metric[m.id])
        if not missing:
            continue
        if not (m.activity or m.id == "D3"):
            # No data: the figures of nothing, as compute gives them for an empty cell.
            empty = m.compute(Totals())
            by_metric[m.id].update((site, empty) for site in missing)
            continue
        # M1, M2 and D3 also count what the catalogue hosts at the site.
        for site in sorted(missing):
            one = dataclasses.replace(scope, sites=frozenset({site}))
            (row,) = await compute(session, geography, m, one, period=Period.ALL, group_by=None)
            by_metric[m.id][site] = row["figures"]
    known = geography.sites
    columns = [
        Column("site", "Kode MPP"),
        Column("site_name", "Nama MPP"),
        Column("kabkota_name", "Kabupaten/kota"),
        Column("province_name", "Provinsi"),
    ]
    figures: list[tuple[str, Column]] = []
    for m in METRICS:
        for c in figure_columns(
            [by_metric[m.id][s] for s in sorted(sites)], prefix=f"{m.id}.", label=f"{m.id} "
        ):
            figures.append((m.id, c))
    table = Table("Ikhtisar per MPP", columns + [c for _, c in figures])
    for site in sorted(sites):
        found = known.get(site)
        cells: list[object] = [
            site,
            found.name if found else "",
            found.kabkota_name if found else "",
            found.province_name if found else "",
        ]
        cells += [value_at(by_metric[mid][site], c.key.partition(".")[2]) for mid, c in figures]
        table.add(cells)
    return table


async def grouped_overview_table(
    session: AsyncSession, geography: Geography, scope: Scope, group_by: GroupBy
) -> Table:
    """One row per agency, service type, kab/kota or province in the scope with every metric over the
    whole range: the dashboards' tables of agencies and service types."""
    if group_by in (GroupBy.HOUR, GroupBy.WEEKDAY):
        raise Unsupported(group_by.value)
    by_metric: dict[str, dict[str, dict[str, Any]]] = {}
    keys: set[str] = set()
    for m in METRICS:
        rows = await compute(session, geography, m, scope, period=Period.ALL, group_by=group_by)
        by_metric[m.id] = {str(r[group_by.value]): r["figures"] for r in rows}
        keys |= set(by_metric[m.id])
    for m in METRICS:
        empty = m.compute(Totals())
        by_metric[m.id].update((key, empty) for key in keys - set(by_metric[m.id]))
    names = _names(geography, group_by)
    columns = [Column(group_by.value, GROUPS[group_by.value]), Column(f"{group_by.value}_name", "Nama")]
    figures: list[tuple[str, Column]] = []
    for m in METRICS:
        for c in figure_columns(
            [by_metric[m.id][k] for k in sorted(keys)], prefix=f"{m.id}.", label=f"{m.id} "
        ):
            figures.append((m.id, c))
    table = Table(f"Ikhtisar per {GROUPS[group_by.value].lower()}", columns + [c for _, c in figures])
    for key in sorted(keys):
        cells: list[object] = [key, names.get(key, "")]
        cells += [value_at(by_metric[mid][key], c.key.partition(".")[2]) for mid, c in figures]
        table.add(cells)
    return table


async def build(
    session: AsyncSession,
    geography: Geography,
    spec: Spec,
    scope: Scope,
    *,
    period: Period,
    group_by: GroupBy | None,
) -> Table:
    """The table ``spec`` names within ``scope``; raises :class:`figures.Unsupported` as the JSON API does."""
    if spec.metric is None:
        if group_by is None or group_by is GroupBy.SITE:
            return await overview_table(session, geography, scope)
        return await grouped_overview_table(session, geography, scope, group_by)
    if spec.fixed_group:
        group_by = spec.group_by
    rows = await compute(session, geography, spec.metric, scope, period=period, group_by=group_by)
    if spec.name == "ikm-elements":
        return ikm_table(spec.title, rows)
    return metric_table(spec.title, rows, group_by, geography, spec.metric)
