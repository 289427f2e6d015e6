"""The monthly report of one MPP to the ministry: every metric (M1-M10, D1-D3) of the month, the IKM per
unsur with grades, SLA compliance per service type, complaints against their time limits and visitors by
day. Every figure comes from :func:`figures.compute` over the site and the month's local days."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.masterdata import Site
from mpp.reporting.domain.metrics import METRICS, Totals, find
from mpp.reporting.domain.periods import Period
from mpp.reporting.export.labels import MONTHS, flatten, header
from mpp.reporting.export.sheet import Column, Kind, Table
from mpp.reporting.export.tables import ikm_table, metric_table
from mpp.reporting.figures import Geography, GroupBy, compute
from mpp.reporting.persistence.repository import Scope

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
WEEKDAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")

# SP4N-LAPOR! time limits in working days (local SOPs): first response; resolution by kind of complaint.
RESPONSE_LIMIT = "3 hari kerja"
RESOLUTION_LIMIT = "5 hari kerja (informasi, pengaduan); 14 (sengketa); 60 (dengan pemeriksaan lapangan)"


def parse_month(text: str) -> date | None:
    """The first day of ``YYYY-MM``, none when it is not a month."""
    found = MONTH_PATTERN.match(text)
    if found is None or not 2000 <= int(found.group(1)) <= 2999:
        return None
    return date(int(found.group(1)), int(found.group(2)), 1)


def month_end(first: date) -> date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def month_title(first: date) -> str:
    return f"{MONTHS[first.month - 1]} {first.year}"


@dataclass(slots=True)
class MonthlyReport:
    site: Site
    first: date
    last: date
    provisional: bool
    metrics: dict[str, dict[str, Any]]
    sla_by_service_type: list[dict[str, Any]]
    visitors_by_day: list[dict[str, Any]]
    sections: list[Table]

    @property
    def month(self) -> str:
        return f"{self.first.year}-{self.first.month:02d}"

    def long_table(self) -> Table:
        """Every cell of every section as one row (section, row number, column, value): the whole report
        in one CSV."""
        table = Table(
            f"Laporan bulanan {self.site.code} {self.month}",
            [
                Column("section", "Bagian"),
                Column("row", "Baris", Kind.INTEGER),
                Column("column", "Kolom"),
                Column("value", "Nilai"),
            ],
        )
        for section in self.sections:
            for n, row in enumerate(section.rows, start=1):
                for column, value in zip(section.columns, row, strict=True):
                    table.add([section.title, n, column.header, value])
        return table

    def json(self) -> dict[str, Any]:
        s = self.site
        return {
            "site": {
                "code": s.code,
                "name": s.name,
                "kabkota": s.kabkota,
                "kabkota_name": s.kabkota_name,
                "province": s.province,
                "province_name": s.province_name,
            },
            "month": self.month,
            "month_title": month_title(self.first),
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "provisional": self.provisional,
            "metrics": self.metrics,
            "sla_by_service_type": self.sla_by_service_type,
            "visitors_by_day": self.visitors_by_day,
            "sections": [
                {
                    "title": t.title,
                    "columns": [{"key": c.key, "header": c.header, "kind": c.kind.value} for c in t.columns],
                    "rows": t.rows,
                    "note": t.note,
                }
                for t in self.sections
            ],
        }


def _summary(metrics: dict[str, dict[str, Any]]) -> Table:
    table = Table(
        "Ringkasan metrik",
        [
            Column("metric", "Kode"),
            Column("name", "Metrik"),
            Column("figure", "Angka"),
            Column("value", "Nilai"),  # numbers stay numbers; grades and codes are text
            Column("path", "Kunci"),
        ],
    )
    for m in METRICS:
        for path, value in flatten(metrics[m.id]["figures"]):
            table.add([m.id, m.name, header(path), value, path])
    return table


def _complaints(figures: dict[str, Any]) -> Table:
    table = Table(
        "Pengaduan dan batas waktu",
        [
            Column("stage", "Tahap"),
            Column("limit", "Batas waktu SP4N-LAPOR!"),
            Column("count", "Jumlah", Kind.INTEGER),
            Column("within_limit", "Dalam batas waktu", Kind.INTEGER),
            Column("within_limit_pct", "Tepat waktu (%)", Kind.DECIMAL),
            Column("mean_working_days", "Rata-rata hari kerja", Kind.DECIMAL),
        ],
        note=f"Pengaduan diterima: {figures['received']} (anonim: {figures['anonymous']}); "
        f"ditindaklanjuti: {figures['followed_up_pct'] if figures['followed_up_pct'] is not None else '-'}%.",
    )
    table.add(["Diterima", None, figures["received"], None, None, None])
    table.add(
        [
            "Tanggapan pertama",
            RESPONSE_LIMIT,
            figures["responded"],
            figures["responded_within_limit"],
            figures["response_within_limit_pct"],
            figures["mean_response_working_days"],
        ]
    )
    table.add(
        [
            "Penyelesaian",
            RESOLUTION_LIMIT,
            figures["resolved"],
            figures["resolved_within_limit"],
            figures["resolution_within_limit_pct"],
            figures["mean_resolution_working_days"],
        ]
    )
    for key, label in (("by_channel", "Kanal"), ("by_category", "Kategori")):
        for sub, count in figures[key].items():
            table.add(
                [f"{label}: {header(f'{key}.{sub}').partition(': ')[2]}", None, count, None, None, None]
            )
    return table


def _visitors(days: list[dict[str, Any]]) -> Table:
    table = Table(
        "Pengunjung per hari",
        [
            Column("day", "Tanggal"),
            Column("weekday", "Hari"),
            Column("visitors", "Pengunjung", Kind.INTEGER),
            Column("visitors_walk_in", "Datang langsung", Kind.INTEGER),
            Column("visitors_online", "Antrean daring", Kind.INTEGER),
            Column("visitors_mpp_digital", "MPP Digital", Kind.INTEGER),
        ],
    )
    for d in days:
        f = d["figures"]
        table.add(
            [
                d["day"],
                WEEKDAYS[date.fromisoformat(d["day"]).weekday()],
                f["visitors"],
                f["visitors_walk_in"],
                f["visitors_online"],
                f["visitors_mpp_digital"],
            ]
        )
    return table


async def monthly_report(
    session: AsyncSession, geography: Geography, site: Site, first: date, *, today: date
) -> MonthlyReport:
    """The report of ``site`` for the month starting ``first``; provisional until the month is over
    (``today`` is the site's local date)."""
    last = month_end(first)
    scope = Scope(first, last, frozenset({site.code}), None, None)
    metrics: dict[str, dict[str, Any]] = {}
    for m in METRICS:
        (row,) = await compute(session, geography, m, scope, period=Period.ALL, group_by=None)
        metrics[m.id] = {"name": m.name, "figures": row["figures"]}
    m5, m3 = find("M5"), find("M3")
    assert m5 is not None and m3 is not None
    sla = await compute(session, geography, m5, scope, period=Period.ALL, group_by=GroupBy.SERVICE_TYPE)
    daily = {
        r["period_start"]: r["figures"]
        for r in await compute(session, geography, m3, scope, period=Period.DAY, group_by=None)
    }
    empty = m3.compute(Totals())
    days = []
    day = first
    while day <= last:
        days.append({"day": day.isoformat(), "figures": daily.get(day.isoformat(), empty)})
        day += timedelta(days=1)
    m6 = [{"period": "all", "period_start": None, "figures": metrics["M6"]["figures"]}]
    ikm = ikm_table("IKM per unsur", m6)
    ikm.columns, ikm.rows = ikm.columns[2:], [r[2:] for r in ikm.rows]
    sla_table = metric_table("SLA per jenis layanan", sla, GroupBy.SERVICE_TYPE, geography, m5)
    sla_table.columns, sla_table.rows = sla_table.columns[2:], [r[2:] for r in sla_table.rows]
    sections = [
        _summary(metrics),
        ikm,
        sla_table,
        _complaints(metrics["M7"]["figures"]),
        _visitors(days),
    ]
    return MonthlyReport(
        site=site,
        first=first,
        last=last,
        provisional=today <= last,
        metrics=metrics,
        sla_by_service_type=[{"service_type": r["service_type"], "figures": r["figures"]} for r in sla],
        visitors_by_day=[{"day": d["day"], "visitors": d["figures"]["visitors"]} for d in days],
        sections=sections,
    )
