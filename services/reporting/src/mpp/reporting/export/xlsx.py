"""A small XLSX (SpreadsheetML) writer: one sheet per table, a styled and frozen header row, column
widths from the content, numbers as numbers and text through the shared strings table.

Only what the exports need is written: no formulas, no dates (dates are ISO text), no merged cells.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from mpp.reporting.export.sheet import Cell, Kind, Table, neutralise

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# Characters XML 1.0 cannot carry at all.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")

STYLE_HEADER = 1
STYLE_DECIMAL = 2
_MIN_WIDTH, _MAX_WIDTH = 8, 60


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def sheet_names(tables: Sequence[Table]) -> list[str]:
    """Valid, distinct sheet names (at most 31 characters, none of ``[]:*?/\\``)."""
    names: list[str] = []
    for i, table in enumerate(tables, start=1):
        base = _SHEET_FORBIDDEN.sub(" ", table.title).strip("' ")[:31] or f"Lembar {i}"
        name, n = base, 2
        while name.lower() in {x.lower() for x in names}:
            suffix = f" ({n})"
            name, n = base[: 31 - len(suffix)] + suffix, n + 1
        names.append(name)
    return names


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.count = 0

    def __call__(self, text: str) -> int:
        self.count += 1
        return self.index.setdefault(_ILLEGAL.sub("", text), len(self.index))

    def xml(self) -> str:
        items = "".join(f'<si><t xml:space="preserve">{escape(s)}</t></si>' for s in self.index)
        return f'{_DECL}<sst xmlns="{_NS}" count="{self.count}" uniqueCount="{len(self.index)}">{items}</sst>'


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _cell(ref: str, value: Cell, kind: Kind, strings: _Strings, style: int = 0) -> str:
    s = f' s="{style}"' if style else ""
    if value is None:
        return f'<c r="{ref}"{s}/>' if style else ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if kind is Kind.DECIMAL and not style:
            s = f' s="{STYLE_DECIMAL}"'
        return f'<c r="{ref}"{s}><v>{_number(value)}</v></c>'
    return f'<c r="{ref}"{s} t="s"><v>{strings(str(neutralise(value)))}</v></c>'


def _width(table: Table, column: int) -> float:
    longest = len(table.columns[column].header)
    for row in table.rows:
        value = row[column]
        if value is not None:
            longest = max(longest, len(f"{value:.2f}" if isinstance(value, float) else str(value)))
    return float(min(_MAX_WIDTH, max(_MIN_WIDTH, longest + 2)))


def _sheet(table: Table, strings: _Strings) -> str:
    cols = "".join(
        f'<col min="{i + 1}" max="{i + 1}" width="{_width(table, i):.1f}" customWidth="1"/>'
        for i in range(len(table.columns))
    )
    rows = []
    header = "".join(
        _cell(f"{column_letter(i)}1", c.header, Kind.TEXT, strings, STYLE_HEADER)
        for i, c in enumerate(table.columns)
    )
    rows.append(f'<row r="1">{header}</row>')
    for r, row in enumerate(table.rows, start=2):
        cells = "".join(
            _cell(f"{column_letter(i)}{r}", value, table.columns[i].kind, strings)
            for i, value in enumerate(row)
        )
        rows.append(f'<row r="{r}">{cells}</row>')
    last = f"{column_letter(max(len(table.columns), 1) - 1)}{len(table.rows) + 1}"
    view = (
        '<sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
        "</sheetView></sheetViews>"
    )
    return (
        f'{_DECL}<worksheet xmlns="{_NS}" xmlns:r="{_REL_NS}">'
        f'<dimension ref="A1:{last}"/>{view}<sheetFormatPr defaultRowHeight="15"/>'
        f"{f'<cols>{cols}</cols>' if cols else ''}<sheetData>{''.join(rows)}</sheetData></worksheet>"
    )


_STYLES = (
    f'{_DECL}<styleSheet xmlns="{_NS}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.00"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><color rgb="FFFFFFFF"/><name val="Calibri"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FF1F4E79"/><bgColor indexed="64"/></patternFill></fill>'
    "</fills>"
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def to_xlsx(tables: Sequence[Table], *, title: str = "") -> bytes:
    """A workbook with one sheet per table, in order."""
    if not tables:
        raise ValueError("a workbook needs at least one sheet")
    names = sheet_names(tables)
    strings = _Strings()
    sheets = [_sheet(t, strings) for t in tables]
    n = len(tables)
    content_types = (
        f'{_DECL}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        + "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, n + 1)
        )
        + '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>"
    )
    root_rels = (
        f'{_DECL}<Relationships xmlns="{_PKG_REL_NS}">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'officeDocument" Target="xl/workbook.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
        'core-properties" Target="docProps/core.xml"/>'
        "</Relationships>"
    )
    core = (
        f'{_DECL}<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
        'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<dc:title>{escape(_ILLEGAL.sub('', title))}</dc:title><dc:creator>MPP Reporting</dc:creator>"
        "</cp:coreProperties>"
    )
    workbook = (
        f'{_DECL}<workbook xmlns="{_NS}" xmlns:r="{_REL_NS}"><sheets>'
        + "".join(
            f'<sheet name={quoteattr(name)} sheetId="{i}" r:id="rId{i}"/>'
            for i, name in enumerate(names, start=1)
        )
        + "</sheets></workbook>"
    )
    workbook_rels = (
        f'{_DECL}<Relationships xmlns="{_PKG_REL_NS}">'
        + "".join(
            f'<Relationship Id="rId{i}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1)
        )
        + f'<Relationship Id="rId{n + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
        f'<Relationship Id="rId{n + 2}" Type="{_REL_NS}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr("_rels/.rels", root_rels)
        z.writestr("docProps/core.xml", core)
        z.writestr("xl/workbook.xml", workbook)
        z.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        z.writestr("xl/styles.xml", _STYLES)
        for i, sheet in enumerate(sheets, start=1):
            z.writestr(f"xl/worksheets/sheet{i}.xml", sheet)
        z.writestr("xl/sharedStrings.xml", strings.xml())
    return buffer.getvalue()
