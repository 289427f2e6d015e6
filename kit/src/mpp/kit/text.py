"""Validators for free text received at the HTTP edge.

Control characters have no place in a name, a place or a note: they break displays, CSV exports and
printed documents, and PostgreSQL cannot store a NUL at all. Compose with ``StringConstraints``::

    Name = Annotated[str, StringConstraints(min_length=1, max_length=400), SINGLE_LINE]
"""

from __future__ import annotations

import re

from pydantic import AfterValidator

__all__ = ["MULTI_LINE", "SINGLE_LINE"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("tidak boleh berisi karakter kontrol atau baris baru")
    return value


def _multi_line(value: str) -> str:
    if _CONTROL_BUT_LINES.search(value):
        raise ValueError("tidak boleh berisi karakter kontrol")
    return value


SINGLE_LINE = AfterValidator(_single_line)
"""Refuses control characters, line breaks and tabs included."""

MULTI_LINE = AfterValidator(_multi_line)
"""Refuses control characters but line breaks and tabs."""
