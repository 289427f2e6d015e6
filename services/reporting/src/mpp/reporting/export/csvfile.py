"""CSV files for spreadsheets: UTF-8 with a byte order mark (so Excel reads it as UTF-8), commas,
RFC 4180 quoting and CRLF line ends, formula-like text neutralised."""

from __future__ import annotations

import csv
import io

from mpp.reporting.export.sheet import Table, neutralise

BOM = "\ufeff"


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([neutralise(c.header) for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if v is None else neutralise(v) for v in row])
    return (BOM + out.getvalue()).encode("utf-8")
