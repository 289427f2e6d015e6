"""Indonesian mobile numbers: normalisation to E.164 (+62...) and masking for logs and API answers."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s().\-/]")
# National significant number of an Indonesian mobile line: 8, then 8 to 11 digits (e.g. 812 3456 7890).
_MOBILE_NSN = re.compile(r"^8[1-9][0-9]{7,10}$")


class InvalidPhone(ValueError):
    """The text is not an Indonesian mobile number. The message never repeats the number."""


def normalise_phone(raw: str) -> str:
    """``+62`` followed by the national number, from the usual ways of writing one.

    Accepted: ``0812-3456-7890``, ``62 812 3456 7890``, ``+62 (812) 3456.7890``, ``812345678901``.
    Raises :class:`InvalidPhone` for anything that is not an Indonesian mobile number.
    """
    text = _SEPARATORS.sub("", raw.strip())
    if text.startswith("+"):
        if not text.startswith("+62"):
            raise InvalidPhone("only Indonesian (+62) numbers are accepted")
        nsn = text[3:]
    elif text.startswith("0062"):
        nsn = text[4:]
    elif text.startswith("62"):
        nsn = text[2:]
    elif text.startswith("0"):
        nsn = text[1:]
    else:
        nsn = text
    if not nsn.isascii() or not nsn.isdigit():
        raise InvalidPhone("a phone number holds digits only")
    if not _MOBILE_NSN.match(nsn):
        raise InvalidPhone("not an Indonesian mobile number (08xx, 9 to 12 digits after the 0)")
    return "+62" + nsn


def is_valid_phone(e164: str) -> bool:
    """True for a number already in the normalised form."""
    try:
        return normalise_phone(e164) == e164
    except InvalidPhone:
        return False


def mask_phone(e164: str) -> str:
    """``+62812****7890``: enough for the citizen to recognise the number, useless to anyone else."""
    if len(e164) < 11:
        return "****"
    return e164[:6] + "****" + e164[-4:]


def mask_email(address: str) -> str:
    """``b***@example.id``."""
    local, _, domain = address.partition("@")
    return (local[:1] or "*") + "***@" + domain
