"""HTML building blocks of the dashboards: escaping, Indonesian number formats, the page frame and charts
drawn as inline SVG on the server. Nothing here computes a figure; it only shows what
:func:`mpp.reporting.figures.compute` returned."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlencode

ASSETS = "/dasbor/aset"
DASH = "\u2013"  # an en dash: no figure


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def url(path: str, query: Mapping[str, str | None]) -> str:
    """``path`` with the non-empty query parameters."""
    params = {k: v for k, v in query.items() if v not in (None, "")}
    return path + ("?" + urlencode(params) if params else "")


def number(value: Any, decimals: int = 0) -> str:
    """Indonesian notation: ``.`` between thousands, ``,`` before decimals; a dash for no value."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "ya" if value else "tidak"
    quantum = Decimal(1).scaleb(-decimals)
    text = f"{Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP):,.{decimals}f}"
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def percent(value: Any) -> str:
    return DASH if value is None else number(value, 2) + " %"


def duration(seconds: Any) -> str:
    """``12 mnt 30 dtk``, ``1 jam 5 mnt``."""
    if seconds is None:
        return DASH
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} jam {minutes} mnt"
    if minutes:
        return f"{minutes} mnt {secs} dtk"
    return f"{secs} dtk"


def _decimal(value: Any) -> str:
    return number(value, 2)


FORMATS: dict[str, Callable[[Any], str]] = {
    "int": number,
    "pct": percent,
    "dec": _decimal,
    "dur": duration,
    "text": str,
}


def shown(value: Any, kind: str) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "ya" if value else "tidak"
    return FORMATS[kind](value)


def cell(value: Any, kind: str, *, field: str = "", extra: str = "") -> str:
    """A table cell holding a figure: the formatted text, and the raw value for sorting and tests."""
    raw = "" if value is None else esc(value)
    attrs = f' data-value="{raw}"' + (f' data-field="{esc(field)}"' if field else "")
    cls = ' class="angka"' if kind != "text" else ""
    return f"<td{cls}{attrs}{extra}>{esc(shown(value, kind))}</td>"


def definition_link(metric_id: str, text: str) -> str:
    return f'<a class="def" href="/dasbor/definisi/{esc(metric_id)}" title="Definisi {esc(metric_id)}">{esc(text)}</a>'


def heading(metric_id: str, text: str) -> str:
    """A column heading: its text (a click sorts) and a small link to the metric's definition."""
    return (
        f'<span>{esc(text)}</span> <a class="def-i" href="/dasbor/definisi/{esc(metric_id)}" '
        f'title="Definisi {esc(metric_id)}" aria-label="Definisi {esc(metric_id)}">?</a>'
    )


def export_links(table: str, query: Mapping[str, str | None]) -> str:
    links = " ".join(
        f'<a class="ekspor" href="{esc(url(f"/v1/exports/{table}.{ext}", query))}">{ext.upper()}</a>'
        for ext in ("csv", "xlsx")
    )
    return f'<span class="unduh">Unduh: {links}</span>'


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    text: str


def page(title: str, body: str, *, nav: Sequence[NavItem] = (), status_note: str = "") -> str:
    links = "".join(f'<a href="{esc(n.href)}">{esc(n.text)}</a>' for n in nav)
    return f"""<!doctype html>
<html lang="id"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} - Dasbor MPP</title>
<link rel="stylesheet" href="{ASSETS}/dasbor.css">
<script src="{ASSETS}/dasbor.js" defer></script>
</head><body>
<header class="atas"><a class="merek" href="/dasbor">Dasbor MPP</a><nav>{links}
<a href="/dasbor/definisi">Definisi metrik</a>
<form method="post" action="/dasbor/keluar"><button type="submit">Keluar</button></form></nav></header>
<main>{status_note}<h1>{esc(title)}</h1>
{body}
</main></body></html>"""


def message_page(title: str, message: str) -> str:
    return page(
        title,
        f'<p class="pesan" role="alert">{esc(message)}</p><p><a href="/dasbor">Kembali ke beranda dasbor</a></p>',
    )


# --- charts -------------------------------------------------------------------------------------

_COLOURS = ("#1f6f8b", "#e07a1f", "#5b8c2a", "#8b1f5f")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        top = float(magnitude * step)
        if top >= value:
            return top
    return value


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str = "") -> str:
    """A trend chart: one line per series over the period labels, with points that name their value."""
    width, height, left, right, top, bottom = 760, 240, 56, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    top_value = _nice_max(max(values, default=0.0))
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / top_value

    parts = [
        f'<svg class="grafik" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
    ]
    for frac in (0, 0.5, 1):
        gy = top + plot_h - plot_h * frac
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{gy:.1f}" y2="{gy:.1f}" class="kisi"/>')
        parts.append(
            f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">{esc(number(top_value * frac))}</text>'
        )
    every = max(1, (len(labels) + 11) // 12)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">{esc(label)}</text>'
            )
    for k, s in enumerate(series):
        colour = _COLOURS[k % len(_COLOURS)]
        points = [(x(i), y(v), v, labels[i]) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, py, v, label in points:
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                f"<title>{esc(s.name)} {esc(label)}: {esc(number(v))}{esc(unit)}</title></circle>"
            )
        parts.append(
            f'<rect x="{left + 160 * k}" y="6" width="12" height="12" fill="{colour}"/>'
            f'<text x="{left + 160 * k + 16}" y="16">{esc(s.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, fmt: str = "int") -> str:
    """Grouped bars, one group per label (e.g. the hours of the day)."""
    width, height, left, right, top, bottom = 760, 240, 64, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    top_value = _nice_max(max(values, default=0.0))
    n, k = max(len(labels), 1), max(len(series), 1)
    slot = plot_w / n
    bar = slot * 0.8 / k
    parts = [
        f'<svg class="grafik" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
    ]
    for frac in (0, 0.5, 1):
        gy = top + plot_h - plot_h * frac
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{gy:.1f}" y2="{gy:.1f}" class="kisi"/>')
        parts.append(
            f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">{esc(shown(top_value * frac, fmt))}</text>'
        )
    for i, label in enumerate(labels):
        parts.append(
            f'<text x="{left + slot * (i + 0.5):.1f}" y="{height - bottom + 16}" text-anchor="middle">{esc(label)}</text>'
        )
        for j, s in enumerate(series):
            v = s.values[i]
            if v is None:
                continue
            h = plot_h * v / top_value
            bx = left + slot * i + slot * 0.1 + bar * j
            parts.append(
                f'<rect x="{bx:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{_COLOURS[j % len(_COLOURS)]}"><title>{esc(s.name)} {esc(label)}: {esc(shown(v, fmt))}</title></rect>'
            )
    for j, s in enumerate(series):
        parts.append(
            f'<rect x="{left + 160 * j}" y="6" width="12" height="12" fill="{_COLOURS[j % len(_COLOURS)]}"/>'
            f'<text x="{left + 160 * j + 16}" y="16">{esc(s.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def table(
    headers: Iterable[str], rows: Iterable[str], *, foot: str = "", cls: str = "urut", attrs: str = ""
) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(rows)
    tfoot = f"<tfoot>{foot}</tfoot>" if foot else ""
    return (
        f'<div class="lebar"><table class="{cls}"{attrs}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody>{tfoot}</table></div>"
    )
