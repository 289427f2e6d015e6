"""Indonesian mobile numbers: normalisation to +62 E.164, validation and masking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp.notification.domain.phone import (
    InvalidPhone,
    is_valid_phone,
    mask_email,
    mask_phone,
    normalise_phone,
)

CONTRACT_PATTERN = re.compile(r"^\+62[0-9]{8,13}$")


@pytest.mark.parametrize(
    "raw",
    [
        "081234567890",
        "0812-3456-7890",
        "62 812 3456 7890",
        "+62 (812) 3456.7890",
        "+6281234567890",
        "81234567890",
        "0062812 3456 7890",
        " 0812 3456 7890 ",
    ],
)
def test_usual_ways_of_writing_a_number_normalise_to_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+6281234567890"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "0812",
        "021-5551234",
        "+6221555123",
        "+1 415 555 0100",
        "0812345678901234",
        "08123456789a",
        "০৮১২৩৪৫৬৭৮৯০",
        "+62 800 0000 000",
    ],
)
def test_what_is_not_an_indonesian_mobile_number_is_refused(raw: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(raw)
    digits = re.sub(r"\D", "", raw)
    assert not digits or digits not in str(caught.value)


national = st.builds(
    lambda second, rest: "8" + second + rest,
    st.sampled_from("123456789"),
    st.text(alphabet="0123456789", min_size=7, max_size=10),
)


@given(
    national,
    st.sampled_from(["0{}", "62{}", "+62{}", "{}", "+62 {}", "0062{}"]),
    st.sampled_from(["", " ", "-"]),
)
def test_any_written_form_of_a_mobile_number_gives_the_same_e164(nsn: str, form: str, sep: str) -> None:
    spaced = sep.join(nsn[i : i + 4] for i in range(0, len(nsn), 4))
    normalised = normalise_phone(form.format(spaced))
    assert normalised == "+62" + nsn
    assert CONTRACT_PATTERN.match(normalised)
    assert normalise_phone(normalised) == normalised
    assert is_valid_phone(normalised)


@given(st.text(max_size=20))
def test_normalisation_either_refuses_or_gives_a_valid_number(raw: str) -> None:
    try:
        normalised = normalise_phone(raw)
    except InvalidPhone:
        return
    assert CONTRACT_PATTERN.match(normalised) and is_valid_phone(normalised)


@given(national)
def test_masking_hides_the_middle_digits(nsn: str) -> None:
    e164 = "+62" + nsn
    masked = mask_phone(e164)
    assert masked.startswith(e164[:6]) and masked.endswith(e164[-4:])
    assert e164 not in masked and "****" in masked


def test_email_masking_keeps_only_the_first_letter_and_the_domain() -> None:
    assert mask_email("budi.santoso@example.id") == "b***@example.id"
