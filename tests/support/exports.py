"""Reading exported files back with independent readers (``csv`` and openpyxl), and the expected cells
of a JSON figure row, for comparisons cell by cell."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

import openpyxl

BOM = "\ufeff"


def read_csv(body: bytes) -> list[list[str]]:
    text = body.decode("utf-8")
    assert text.startswith(BOM), "CSV without a UTF-8 byte order mark"
    assert "\r\n" in text, "CSV rows must end in CRLF"
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def read_xlsx(body: bytes) -> dict[str, list[list[Any]]]:
    workbook = openpyxl.load_workbook(io.BytesIO(body))
    return {ws.title: [list(row) for row in ws.iter_rows(values_only=True)] for ws in workbook.worksheets}


def walk(figures: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every scalar of a JSON figures object with its path (dicts one level deep, IKM unsur lists)."""
    for key, value in figures.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                yield f"{key}.{sub}", inner
        elif isinstance(value, list):
            for element in value:
                yield f"{key}.{element['element']}.answers", element["answers"]
                yield f"{key}.{element['element']}.index", element["index"]
        else:
            yield key, value


def as_csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Ya" if value else "Tidak"
    return str(value)


def as_xlsx_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "Ya" if value else "Tidak"
    return value
