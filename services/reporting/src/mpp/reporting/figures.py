"""Figures of one metric over periods and groups: reads the summed read models within a scope and
applies the metric's formula to each (period, group) cell."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.masterdata import Catalogue
from mpp.kit import collector
from mpp.reporting.domain.facts import SERVICE, WAITING
from mpp.reporting.domain.metrics import Metric, Totals, reads
from mpp.reporting.domain.percentiles import BlockHistogram
from mpp.reporting.domain.periods import Period, period_label, period_start
from mpp.reporting.persistence import repository
from mpp.reporting.persistence.repository import Scope
from mpp.reporting.persistence.tables import BLOCK_BUCKETS

UNKNOWN = ""


class GroupBy(StrEnum):
    SITE = "site"
    AGENCY = "agency"
    SERVICE_TYPE = "service_type"
    KABKOTA = "kabkota"
    PROVINCE = "province"
    HOUR = "hour"
    WEEKDAY = "weekday"
    """ISO weekday of the local day, 1 (Monday) to 7 (Sunday)."""


_NUMERIC = (GroupBy.HOUR, GroupBy.WEEKDAY)


class Unsupported(ValueError):
    """The metric cannot be grouped this way."""


class Geography:
    """Where sites are and what they host, from master data."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.sites = {s.code: s for s in catalogue.sites}
        self.agency_types = {a.code: a.type.value for a in catalogue.agencies}
        self.summary_regions: dict[str, tuple[str, str]] = {}
        """National mode: (kab/kota, province) of sites known only through their daily summaries."""

    def _regions(self) -> dict[str, tuple[str, str]]:
        catalogue = {code: (s.kabkota, s.province) for code, s in self.sites.items()}
        return {**self.summary_regions, **catalogue}

    def region(self, site: str, level: GroupBy) -> str:
        found = self.sites.get(site)
        if found is None:
            kabkota, province = self.summary_regions.get(site, (UNKNOWN, UNKNOWN))
            return province if level is GroupBy.PROVINCE else kabkota
        return found.province if level is GroupBy.PROVINCE else found.kabkota

    def sites_in(self, *, province: str | None = None, kabkota: str | None = None) -> frozenset[str]:
        return frozenset(
            code
            for code, (kk, prov) in self._regions().items()
            if (province is None or prov == province) and (kabkota is None or kk == kabkota)
        )

    def hosted(
        self, sites: Iterable[str] | None, agency: str | None, service_type: str | None
    ) -> dict[str, Any]:
        """Agencies (code -> type), service types and counters present at ``sites`` (every known site
        when none), narrowed to an agency or a service type."""
        wanted = set(self.sites) if sites is None else set(sites) & set(self.sites)
        counters = [
            c
            for c in self.catalogue.counters
            if c.site in wanted
            and (agency is None or c.agency == agency)
            and (service_type is None or service_type in c.service_types)
        ]
        agencies = {c.agency for c in counters}
        services = {
            s.code: {"agency": s.agency, "licensing": s.licensing, "online_enabled": s.online_enabled}
            for s in self.catalogue.service_types
            if s.agency in agencies and (service_type is None or s.code == service_type)
        }
        return {
            "agencies": {a: self.agency_types.get(a, "unknown") for a in sorted(agencies)},
            "service_types": services,
            "counters": len(counters),
        }


def _dims(metric: Metric, group_by: GroupBy | None) -> list[str]:
    dims: list[str] = []
    if group_by in (GroupBy.SITE, GroupBy.PROVINCE, GroupBy.KABKOTA):
        dims.append("site")
    elif group_by in (GroupBy.AGENCY, GroupBy.SERVICE_TYPE):
        dims.append(group_by.value)
    if metric.activity:
        dims += [d for d in ("agency", "service_type") if d not in dims]
    return dims


class _Cells:
    """Totals per (period start, group value) for one query."""

    def __init__(
        self, geography: Geography, period: Period, group_by: GroupBy | None, *, rollups: bool = True
    ) -> None:
        self.geography = geography
        self.period = period
        self.group_by = group_by
        self.rollups = rollups
        # Sites summed into regions by the database: rows then carry the region, not the site.
        self.regions: dict[str, str] | None = None
        # Cells no finer than a month may read whole months from the monthly roll-ups.
        self.monthly = period not in (Period.DAY, Period.WEEK) and group_by is not GroupBy.WEEKDAY
        # One period over the whole range: the rows need no time at all.
        self.by_time = period is not Period.ALL or group_by is GroupBy.WEEKDAY
        self.totals: dict[tuple[date | None, str | None], Totals] = defaultdict(Totals)
        self.sites: dict[str | None, set[str]] = defaultdict(set)

    def __call__(self, day: date, row: dict[str, Any]) -> Totals:
        group: str | None = None
        by = self.group_by
        if by in (GroupBy.PROVINCE, GroupBy.KABKOTA):
            if self.regions is not None:
                group = row["site"]
            else:
                group = self.geography.region(row["site"], by)
                self.sites[group].add(row["site"])
        elif by is GroupBy.SITE:
            group = row["site"]
            self.sites[group].add(row["site"])
        elif by is GroupBy.WEEKDAY:
            group = str(day.isoweekday())
        elif by is not None:
            group = str(row[by.value])
        return self.totals[(period_start(day, self.period), group)]

    def order(self, key: tuple[date | None, str | None]) -> tuple[date, int, str]:
        start, group = key
        number = int(group) if self.group_by in _NUMERIC and group is not None else 0
        return (start or date.min, number, str(group))


def _hosted(metric: Metric) -> bool:
    """The figure compares with the master data hosted at the sites of its cell (M1, M2, D3)."""
    return metric.activity or metric.id == "D3"


def _kind(metric: Metric) -> str:
    return WAITING if metric.id == "D1" else SERVICE


async def _by_hour(session: AsyncSession, metric: Metric, scope: Scope, cells: _Cells) -> None:
    if metric.hourly == "hourly":
        for day, hour, measure, value in await repository.hourly_sums(
            session, scope, dims=[], measures=metric.measures
        ):
            if reads(metric, measure):
                cells(day, {"hour": hour}).measures[measure] += int(value)
        return
    # Sums of durations are kept per day, not per hour: by hour the mean is left out.
    kind = _kind(metric)
    for day, hour, bucket, count in await repository.histogram_sums(session, scope, dims=["hour"], kind=kind):
        totals = cells(day, {"hour": hour})
        _counter(totals, kind)[bucket] += int(count)
        totals.measures[f"{kind}_count"] += int(count)


def _counter(totals: Totals, kind: str) -> Counter[int]:
    """The cell's histogram of ``kind`` counted bucket by bucket (several rows' keys may share a cell)."""
    held = totals.histograms.get(kind)
    if not isinstance(held, Counter):
        held = totals.histograms[kind] = Counter()
    return held


def _by_site(scope: Scope, group_by: GroupBy | None) -> bool:
    """Whether the figures are read per site without agency or service type: by site or region, or of
    chosen sites (not of every site summed, which the national roll-ups answer)."""
    if scope.agency is not None or scope.service_type is not None:
        return False
    if group_by is None:
        return scope.sites is not None
    return group_by in (GroupBy.SITE, GroupBy.PROVINCE, GroupBy.KABKOTA)


def _union(lists: Iterable[Sequence[str]]) -> list[str]:
    out: list[str] = []
    for names in lists:
        out += [n for n in names if n not in out]
    return out


async def _by_day(
    session: AsyncSession, metrics: Sequence[Metric], scope: Scope, cells: dict[str, _Cells]
) -> None:
    """Fill the cells of several metrics grouped alike from one read of the facts (every measure any of
    them reads, at the finest dimensions any of them needs: coarser figures add the finer rows up) and
    one read of the histograms (every duration kind they read)."""
    first = cells[metrics[0].id]
    by = first.group_by
    dims = _union(_dims(m, by) for m in metrics)
    if (
        first.rollups
        and by in (GroupBy.PROVINCE, GroupBy.KABKOTA)
        and not any(_hosted(m) for m in metrics)
        and not scope.summaries
    ):
        # No figure needs the sites of a region: let the database sum them (a national deployment's
        # sites known only through their summaries are placed here, by the regions they state).
        regions = {code: first.geography.region(code, by) for code in first.geography.sites}
        for m in metrics:
            cells[m.id].regions = regions
    # Which metrics read a measure, and the cell of each (metric, day, key): looked up once each, not
    # once per row (a region's months come as tens of thousands of rows).
    readers: dict[str, list[tuple[Metric, _Cells]]] = {}
    found: dict[tuple[Any, ...], Totals] = {}
    for day, *rest in await repository.fact_sums(
        session,
        scope,
        dims=dims,
        measures=_union(m.measures for m in metrics),
        monthly=first.monthly,
        by_time=first.by_time,
        rollups=first.rollups,
        regions=first.regions,
    ):
        *values, measure, value = rest
        amount = int(value)
        wanted = readers.get(measure)
        if wanted is None:
            wanted = readers[measure] = [(m, cells[m.id]) for m in metrics if reads(m, measure)]
        for metric, metric_cells in wanted:
            key = (metric.id, day, *values)
            totals = found.get(key)
            if totals is None:
                totals = found[key] = metric_cells(day, dict(zip(dims, values, strict=True)))
            totals.measures[measure] += amount
            if metric.activity and amount > 0:
                row = dict(zip(dims, values, strict=True))
                if row["agency"]:
                    totals.active_agencies.add(row["agency"])
                if row["service_type"]:
                    totals.active_service_types.add(row["service_type"])
    durations = [m for m in metrics if m.hourly == "histogram"]
    if not durations:
        return
    hdims = [d for d in _union(_dims(m, by) for m in durations) if d in ("site", "agency", "service_type")]
    by_kind = {_kind(m): cells[m.id] for m in durations}
    rows = await repository.histograms_sums(
        session,
        scope,
        dims=hdims,
        kinds=sorted(by_kind),
        monthly=first.monthly,
        by_time=first.by_time,
        rollups=first.rollups,
        regions=first.regions,
        blocks=True,
    )
    if repository.blocked(scope, hdims, rollups=first.rollups):
        _merge_blocks(rows, hdims, by_kind)
    else:
        _merge_buckets(rows, hdims, by_kind)


def _merge_blocks(rows: Sequence[tuple[Any, ...]], hdims: Sequence[str], by_kind: dict[str, _Cells]) -> None:
    """Rows ``(day, *hdims, kind, block, *counts)`` into their cells' histograms, merged a block of 16
    buckets at a time: a year by site is tens of thousands of rows, not the 650,000 buckets they hold."""
    blocks: dict[tuple[Any, ...], BlockHistogram] = {}
    at = 1 + len(hdims) + 1  # the block's position, after the day, the dimensions and the kind
    for row in rows:
        key = row[:at]
        merged = blocks.get(key)
        if merged is None:
            kind = row[at - 1]
            totals = by_kind[kind](row[0], dict(zip(hdims, row[1 : at - 1], strict=True)))
            held = totals.histograms.get(kind)
            if not isinstance(held, BlockHistogram):
                held = totals.histograms[kind] = BlockHistogram(BLOCK_BUCKETS)
            merged = blocks[key] = held
        merged.add(row[at], row[at + 1 :])


def _merge_buckets(rows: Sequence[Sequence[Any]], hdims: Sequence[str], by_kind: dict[str, _Cells]) -> None:
    """Rows ``(day, *hdims, kind, bucket, count)`` into their cells' histograms."""
    histograms: dict[tuple[Any, ...], Counter[int]] = {}
    for day, *rest in rows:
        *values, kind, bucket, count = rest
        key = (kind, day, *values)
        histogram = histograms.get(key)
        if histogram is None:
            totals = by_kind[kind](day, dict(zip(hdims, values, strict=True)))
            histogram = histograms[key] = _counter(totals, kind)
        histogram[bucket] += int(count)


async def compute(
    session: AsyncSession,
    geography: Geography,
    metric: Metric,
    scope: Scope,
    *,
    period: Period,
    group_by: GroupBy | None,
    rollups: bool = True,
) -> list[dict[str, Any]]:
    """One row per (period, group) with data; for ``period=all`` without grouping, always one row.

    ``rollups=False`` reads the daily read models only (the figures are the same either way)."""
    found = await compute_many(
        session, geography, [metric], scope, period=period, group_by=group_by, rollups=rollups
    )
    return found[metric.id]


@collector.pausing
async def compute_many(
    session: AsyncSession,
    geography: Geography,
    metrics: Sequence[Metric],
    scope: Scope,
    *,
    period: Period,
    group_by: GroupBy | None,
    rollups: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """:func:`compute` of several metrics over the same scope, period and grouping (metric id -> rows),
    reading the facts and the histograms once for all of them rather than once per metric.

    The cyclic garbage collector is held off meanwhile (:func:`mpp.kit.collector.paused`): a year of
    sites is tens of thousands of rows, every one freed by reference counting when the figures are
    made, which the collector would otherwise scan over and over (a third of such a read's time)."""
    if group_by is GroupBy.HOUR:
        unsupported = next((m for m in metrics if m.hourly is None), None)
        if unsupported is not None:
            raise Unsupported(unsupported.id)
    await repository.prepare_reads(session)
    if rollups and await repository.rollups_are_pending(session):
        rollups = False  # a rebuild has not filled them yet: the daily read models hold the figures
    cells = {m.id: _Cells(geography, period, group_by, rollups=rollups) for m in metrics}
    if group_by is GroupBy.HOUR:
        for m in metrics:
            await _by_hour(session, m, scope, cells[m.id])
    elif metrics:
        # Sites summed into regions by the database need the same regions for every metric of a read:
        # metrics whose figures need the sites of a region are read apart.
        parts = [list(metrics)]
        if group_by in (GroupBy.PROVINCE, GroupBy.KABKOTA):
            parts = [[m for m in metrics if _hosted(m)], [m for m in metrics if not _hosted(m)]]
        if _by_site(scope, group_by):
            # Metrics counted by agency and service type (M1, M2) read the facts at that detail; the
            # others are read apart, from the roll-up summed over agencies and service types.
            parts = [[m for m in p if m.activity] for p in parts] + [
                [m for m in p if not m.activity] for p in parts
            ]
        for part in parts:
            if part:
                await _by_day(session, part, scope, cells)
    errors: dict[str, int] = {}
    out: dict[str, list[dict[str, Any]]] = {}
    for metric in metrics:
        kind = _kind(metric)
        if metric.hourly == "histogram" and kind not in errors:
            errors[kind] = await repository.summary_error(session, scope, kind)
        out[metric.id] = _rows(geography, metric, scope, cells[metric.id], errors.get(kind))
    return out


def _rows(
    geography: Geography, metric: Metric, scope: Scope, cells: _Cells, error: int | None
) -> list[dict[str, Any]]:
    period, group_by = cells.period, cells.group_by
    if period is Period.ALL and group_by is None:
        cells.totals.setdefault((None, None), Totals())
    if metric.hourly == "histogram" and error is not None:
        # Summaries with buckets coarser than 10 seconds widen the stated error of their percentiles.
        for totals in cells.totals.values():
            totals.max_error[_kind(metric)] = error
    rows = []
    for (start, group), totals in sorted(cells.totals.items(), key=lambda kv: cells.order(kv[0])):
        if _hosted(metric):
            sites: Iterable[str] | None = scope.sites
            if group_by in (GroupBy.SITE, GroupBy.PROVINCE, GroupBy.KABKOTA):
                sites = cells.sites[group]
            agency = group if group_by is GroupBy.AGENCY else scope.agency
            service_type = group if group_by is GroupBy.SERVICE_TYPE else scope.service_type
            totals.hosted = geography.hosted(sites, agency, service_type)
        out: dict[str, Any] = {
            "period": period_label(start, period),
            "period_start": start.isoformat() if start else None,
        }
        if group_by is not None:
            out[group_by.value] = int(group) if group_by in _NUMERIC and group is not None else group
        figures = metric.compute(totals)
        out["figures"] = metric.by_hour(figures) if group_by is GroupBy.HOUR else figures
        rows.append(out)
    return rows
