"""The CSV and XLSX writers, read back with ``csv`` and openpyxl."""

from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest

from mpp.reporting.export.csvfile import to_csv
from mpp.reporting.export.html import css_string
from mpp.reporting.export.sheet import Column, Kind, Table, kind_of, neutralise
from mpp.reporting.export.xlsx import column_letter, sheet_names, to_xlsx
from tests.support.exports import read_csv, read_xlsx

pytestmark = pytest.mark.unit


def _table(title: str = "Uji") -> Table:
    table = Table(
        title,
        [
            Column("code", "Kode"),
            Column("n", "Jumlah", Kind.INTEGER),
            Column("pct", "Persen (%)", Kind.DECIMAL),
        ],
    )
    table.add(["dpmptsp.pbg", 12, 84.38])
    table.add(['koma, "kutip"\nbaris', 0, None])
    table.add(["Ñusantara ✓", 1_000_000, 0.1])
    table.add([None, None, True])
    return table


@pytest.mark.parametrize("text", ["=1+2", "+62812", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_like_text_is_neutralised(text: str) -> None:
    assert neutralise(text) == "'" + text
    assert neutralise("a" + text) == "a" + text
    assert neutralise(-1) == -1


def test_csv_round_trips_with_bom_crlf_and_rfc_4180_quoting() -> None:
    body = to_csv(_table())

    assert body.startswith(b"\xef\xbb\xbfKode,Jumlah,Persen (%)\r\n")
    assert b";" not in body
    assert read_csv(body) == [
        ["Kode", "Jumlah", "Persen (%)"],
        ["dpmptsp.pbg", "12", "84.38"],
        ['koma, "kutip"\nbaris', "0", ""],
        ["Ñusantara ✓", "1000000", "0.1"],
        ["", "", "Ya"],
    ]


def test_xlsx_round_trips_numbers_as_numbers_with_a_styled_frozen_header() -> None:
    body = to_xlsx([_table(), _table("Lain")], title="Uji")
    sheets = read_xlsx(body)

    assert list(sheets) == ["Uji", "Lain"]
    assert sheets["Uji"] == [
        ["Kode", "Jumlah", "Persen (%)"],
        ["dpmptsp.pbg", 12, 84.38],
        ['koma, "kutip"\nbaris', 0, None],
        ["Ñusantara ✓", 1_000_000, 0.1],
        [None, None, "Ya"],
    ]

    ws = openpyxl.load_workbook(io.BytesIO(body))["Uji"]
    assert ws.freeze_panes == "A2"
    assert ws["A1"].font.b
    assert ws["C2"].number_format == "0.00"
    assert ws.column_dimensions["A"].width >= len('koma, "kutip"\nbaris')
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        assert "xl/sharedStrings.xml" in z.namelist()
        assert z.testzip() is None


def test_control_characters_and_formulas_never_reach_the_workbook() -> None:
    table = Table("Kotor", [Column("x", "=Header")])
    table.add(["a\x00b\x1fc"])
    table.add(["=cmd|' /C calc'!A0"])

    sheets = read_xlsx(to_xlsx([table]))

    assert sheets["Kotor"] == [["'=Header"], ["abc"], ["'=cmd|' /C calc'!A0"]]


def test_sheet_names_are_valid_and_distinct() -> None:
    names = sheet_names(
        [Table("a/b:c*?[d]", []), Table("A/B:C*?[D]", []), Table("x" * 40, []), Table("", [])]
    )

    assert names == ["a b c   d", "A B C   D (2)", "x" * 31, "Lembar 4"]


def test_column_letters_and_kinds() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]
    assert kind_of([1, None, 2]) is Kind.INTEGER
    assert kind_of([1, 2.5]) is Kind.DECIMAL
    assert kind_of([1, "A"]) is Kind.TEXT
    assert kind_of([None]) is Kind.TEXT


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="cells for"):
        _table().add(["only one"])


def test_css_strings_cannot_close_the_string_or_the_style() -> None:
    quoted = css_string('Kota "A" </style><script>x</script> Ñ')

    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    assert '"' not in inner and "<" not in inner and ">" not in inner
    assert "\\000022 A\\000022  " in inner  # each escape ends in a space the parser consumes
