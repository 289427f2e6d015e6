"""The printable monthly report as one self-contained HTML page (no scripts, fonts, images or styles
from elsewhere): A4 print CSS, a header naming the MPP, its region and the month, and one section per
part of the report."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date

from mpp.reporting.domain.metrics import METRICS
from mpp.reporting.export.monthly import MonthlyReport, month_title
from mpp.reporting.export.sheet import Cell, Table

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'"

_CSS = """
@page { size: A4; margin: 14mm 12mm 16mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #111; margin: 0 auto;
  max-width: 190mm; padding: 8mm 0; }
header.kop { border-bottom: 2px solid #1f4e79; padding-bottom: 4mm; margin-bottom: 5mm; }
header.kop h1 { font-size: 16pt; margin: 0 0 1mm; color: #1f4e79; }
header.kop p { margin: 0.5mm 0; }
.sementara { border: 2px solid #b45309; background: #fff7ed; padding: 3mm; margin: 4mm 0; font-weight: bold; }
h2 { font-size: 13pt; color: #1f4e79; border-bottom: 1px solid #9ab; margin: 6mm 0 2mm; break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 1mm; break-after: avoid; }
p.ket { margin: 1mm 0 2mm; color: #444; font-size: 9pt; }
table { border-collapse: collapse; width: 100%; margin-bottom: 3mm; }
thead { display: table-header-group; }
th, td { border: 1px solid #bbb; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #e8eef4; }
td.angka { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr { break-inside: avoid; }
.metrik { break-inside: avoid; }
.metrik table { width: auto; min-width: 60%; }
section.bagian { break-before: page; }
section.bagian:first-of-type { break-before: auto; }
nav.tautan { margin: 3mm 0; }
nav.tautan a { margin-right: 4mm; }
footer { margin-top: 6mm; font-size: 8pt; color: #555; }
@media print { nav.tautan { display: none; } body { padding: 0; max-width: none; } }
"""


def number(value: Cell) -> str:
    """Indonesian number formatting: 1.234 and 84,38; empty cells as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "Ya" if value else "Tidak"
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    if isinstance(value, float):
        return f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    return str(value)


def css_string(text: str) -> str:
    """A quoted CSS string holding ``text``: anything but letters, digits and plain punctuation escaped,
    so no text can close the string or the style element."""
    safe = "".join(
        c if c.isascii() and (c.isalnum() or c in " .,-()/:") else f"\\{ord(c):06x} " for c in text
    )
    return f'"{safe}"'


def _running(report: MonthlyReport) -> str:
    """The header and footer of every printed page: the MPP and month, page numbers, provisional mark."""
    heading = css_string(f"{report.site.name} - {month_title(report.first)}")
    mark = '@top-right { content: "SEMENTARA"; font-weight: bold; color: #b45309; font-size: 8pt; }'
    return (
        f"@page {{ @top-left {{ content: {heading}; font-size: 8pt; color: #555; }} "
        f"{mark if report.provisional else ''}"
        '@bottom-right { content: "Halaman " counter(page) " dari " counter(pages); font-size: 8pt; color: #555; } }'
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(table: Table, rows: Sequence[Sequence[Cell]] | None = None, skip: int = 0) -> str:
    columns = table.columns[skip:]
    head = "".join(f'<th scope="col">{_e(c.header)}</th>' for c in columns)
    body = []
    for row in table.rows if rows is None else rows:
        cells = []
        for value in row[skip:]:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            css = ' class="angka"' if numeric else ""
            cells.append(f"<td{css}>{_e(number(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(columns)}">Tidak ada data pada bulan ini.</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _note(table: Table) -> str:
    return f'<p class="ket">{_e(table.note)}</p>' if table.note else ""


def render(report: MonthlyReport, *, xlsx_href: str, csv_href: str, generated: date) -> str:
    site = report.site
    title = f"Laporan Bulanan {site.name} - {month_title(report.first)}"
    summary, *others = report.sections
    metric_blocks = []
    for m in METRICS:
        rows = [r for r in summary.rows if r[0] == m.id]
        # Columns: code, metric name, figure, value, key: the page shows the figure and its value.
        shown = [[r[2], r[3]] for r in rows]
        view = Table(summary.title, summary.columns[2:4])
        metric_blocks.append(
            f'<div class="metrik" id="{_e(m.id)}"><h3>{_e(m.id)} {_e(m.name)}</h3>'
            f'<p class="ket">{_e(m.description)}</p>{_table(view, shown)}</div>'
        )
    sections = [
        f'<section class="bagian"><h2>Ringkasan metrik (M1-M10, D1-D3)</h2>{"".join(metric_blocks)}</section>'
    ]
    for table in others:
        sections.append(
            f'<section class="bagian"><h2>{_e(table.title)}</h2>{_note(table)}{_table(table)}</section>'
        )
    provisional = (
        '<p class="sementara" role="status">SEMENTARA: bulan ini belum berakhir; angka masih dapat berubah.</p>'
        if report.provisional
        else ""
    )
    return f"""<!doctype html>
<html lang="id"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}{_running(report)}</style></head>
<body>
<header class="kop">
<h1>Laporan Bulanan Mal Pelayanan Publik</h1>
<p><strong>{_e(site.name)}</strong></p>
<p>Kabupaten/kota: {_e(site.kabkota_name)} ({_e(site.kabkota)}) &middot; Provinsi: {_e(site.province_name)} ({_e(site.province)})</p>
<p>Bulan: <strong>{_e(month_title(report.first))}</strong> ({_e(report.first.isoformat())} s.d. {_e(report.last.isoformat())})</p>
</header>
{provisional}
<nav class="tautan"><a href="{_e(xlsx_href)}" download>Unduh laporan (XLSX)</a>
<a href="{_e(csv_href)}" download>Unduh laporan (CSV)</a></nav>
{"".join(sections)}
<footer>Disusun oleh layanan pelaporan MPP pada {_e(generated.isoformat())} dari peristiwa yang tercatat.
Laporan untuk Kementerian PANRB.</footer>
</body></html>"""
