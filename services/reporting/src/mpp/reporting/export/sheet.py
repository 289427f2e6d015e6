"""A table as files are written from it: typed columns with Indonesian headers and rows of cells.

Cells are text, whole numbers, decimals or empty; yes/no figures become ``Ya``/``Tidak``. Text from data
that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return) is neutralised with a leading apostrophe before any file is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

Cell = str | int | float | None

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class Kind(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    """A stable name of what the column holds (``M3.visitors``, ``by_channel.sp4n_lapor``)."""
    header: str
    """The header in Bahasa Indonesia."""
    kind: Kind = Kind.TEXT


@dataclass(slots=True)
class Table:
    title: str
    """The sheet name and the heading of the section (Bahasa Indonesia)."""
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str | None = None

    def add(self, cells: Sequence[object]) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([cell(v) for v in cells])


def cell(value: object) -> Cell:
    """A JSON figure as a cell: booleans as Ya/Tidak, numbers as they are, anything else as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "Ya" if value else "Tidak"
    if isinstance(value, int | float):
        return value
    return str(value)


def neutralise(value: Cell) -> Cell:
    """Text that a spreadsheet would evaluate as a formula, prefixed with an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def kind_of(values: Sequence[object]) -> Kind:
    """The column kind that holds every one of ``values``."""
    kinds = {type(v) for v in values if v is not None and not isinstance(v, bool)}
    if kinds and kinds <= {int}:
        return Kind.INTEGER
    if kinds and kinds <= {int, float}:
        return Kind.DECIMAL
    return Kind.TEXT
