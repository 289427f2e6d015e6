"""Numbers in Indonesian words, and the spoken call-out of a ticket ("Nomor antrean A nol dua belas...")."""

from __future__ import annotations

import re

_UNITS = ("nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan")
_SCALES = ((10**12, "triliun"), (10**9, "miliar"), (10**6, "juta"), (10**3, "ribu"))
MAX = 10**15 - 1


def number_words(n: int) -> str:
    """``n`` (0 to 999 triliun) in Indonesian words: 12 -> "dua belas", 1100 -> "seribu seratus"."""
    if n < 0 or n > MAX:
        raise ValueError(f"out of range: {n}")
    if n == 0:
        return "nol"
    parts: list[str] = []
    rest = n
    for scale, name in _SCALES:
        count, rest = divmod(rest, scale)
        if count == 0:
            continue
        # 1000 is "seribu"; one million and above keep "satu" ("satu juta").
        parts.append("seribu" if scale == 1000 and count == 1 else f"{_below_thousand(count)} {name}")
    if rest:
        parts.append(_below_thousand(rest))
    return " ".join(parts)


def _below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts: list[str] = []
    if hundreds == 1:
        parts.append("seratus")
    elif hundreds > 1:
        parts.append(f"{_UNITS[hundreds]} ratus")
    if rest:
        parts.append(_below_hundred(rest))
    return " ".join(parts)


def _below_hundred(n: int) -> str:
    if n < 10:
        return _UNITS[n]
    if n == 10:
        return "sepuluh"
    if n == 11:
        return "sebelas"
    if n < 20:
        return f"{_UNITS[n - 10]} belas"
    tens, unit = divmod(n, 10)
    return f"{_UNITS[tens]} puluh" + (f" {_UNITS[unit]}" if unit else "")


def digits_words(digits: str) -> str:
    """A number as printed on a ticket: each leading zero is read out ("012" -> "nol dua belas")."""
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"not a digit string: {digits!r}")
    significant = digits.lstrip("0")
    zeros = ["nol"] * (len(digits) - len(significant))
    return " ".join([*zeros, number_words(int(significant))] if significant else zeros)


_TICKET = re.compile(r"^([A-Z]{1,3})-?([0-9]{1,6})$")
_DIGITS = re.compile(r"[0-9]+")


def ticket_words(number: str) -> str:
    """``A-012`` -> "A nol dua belas" (letters spelled one by one)."""
    match = _TICKET.fullmatch(number.strip().upper())
    if match is None:
        raise ValueError(f"not a ticket number: {number!r}")
    letters, digits = match.groups()
    return f"{' '.join(letters)} {digits_words(digits)}"


def counter_words(label: str) -> str:
    """A counter's display label read out: "Loket 3" -> "loket tiga", "Loket 12A" -> "loket dua belas A"."""
    spoken = _DIGITS.sub(lambda m: f" {number_words(int(m.group()))} ", label)
    words = " ".join(spoken.split())
    return words[:1].lower() + words[1:] if words else words


def announcement(number: str, counter_label: str) -> str:
    """The call-out text: "Nomor antrean A nol dua belas, silakan ke loket tiga"."""
    return f"Nomor antrean {ticket_words(number)}, silakan ke {counter_words(counter_label)}"
