"""Numbers in Indonesian words and the spoken call-out of a ticket."""

from __future__ import annotations

import pytest

from mpp.queue.board.words import (
    announcement,
    counter_words,
    digits_words,
    number_words,
    ticket_words,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "nol"),
        (1, "satu"),
        (9, "sembilan"),
        (10, "sepuluh"),
        (11, "sebelas"),
        (12, "dua belas"),
        (19, "sembilan belas"),
        (20, "dua puluh"),
        (21, "dua puluh satu"),
        (99, "sembilan puluh sembilan"),
        (100, "seratus"),
        (101, "seratus satu"),
        (110, "seratus sepuluh"),
        (111, "seratus sebelas"),
        (200, "dua ratus"),
        (345, "tiga ratus empat puluh lima"),
        (999, "sembilan ratus sembilan puluh sembilan"),
        (1000, "seribu"),
        (1001, "seribu satu"),
        (1100, "seribu seratus"),
        (1999, "seribu sembilan ratus sembilan puluh sembilan"),
        (2000, "dua ribu"),
        (11_000, "sebelas ribu"),
        (100_000, "seratus ribu"),
        (101_000, "seratus satu ribu"),
        (1_000_000, "satu juta"),
        (2_500_000, "dua juta lima ratus ribu"),
        (1_000_000_000, "satu miliar"),
        (7_000_000_000_000, "tujuh triliun"),
        (2026, "dua ribu dua puluh enam"),
    ],
)
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


@pytest.mark.parametrize("n", [-1, 10**15])
def test_numbers_out_of_range_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        number_words(n)


def test_every_number_below_ten_thousand_has_words_without_doubled_spaces() -> None:
    seen = set()
    for n in range(10_000):
        words = number_words(n)
        assert words == " ".join(words.split())
        seen.add(words)
    assert len(seen) == 10_000  # no two numbers read the same


@pytest.mark.parametrize(
    ("digits", "words"),
    [
        ("012", "nol dua belas"),
        ("007", "nol nol tujuh"),
        ("100", "seratus"),
        ("0100", "nol seratus"),
        ("000", "nol nol nol"),
        ("5", "lima"),
    ],
)
def test_printed_digits_read_their_leading_zeros(digits: str, words: str) -> None:
    assert digits_words(digits) == words


@pytest.mark.parametrize("bad", ["", "1a", "١٢"])
def test_non_digits_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a digit string"):
        digits_words(bad)


def test_ticket_numbers_spell_the_prefix_letters() -> None:
    assert ticket_words("A-012") == "A nol dua belas"
    assert ticket_words("AB-105") == "A B seratus lima"
    assert ticket_words("c-0020") == "C nol nol dua puluh"
    with pytest.raises(ValueError, match="not a ticket number"):
        ticket_words("012")


def test_counter_labels_read_their_numbers() -> None:
    assert counter_words("Loket 3") == "loket tiga"
    assert counter_words("Loket 12A") == "loket dua belas A"
    assert counter_words("Meja Prioritas") == "meja Prioritas"


def test_the_announcement_reads_the_number_and_the_counter() -> None:
    assert announcement("A-012", "Loket 3") == "Nomor antrean A nol dua belas, silakan ke loket tiga"
    assert announcement("B-120", "Loket 11") == (
        "Nomor antrean B seratus dua puluh, silakan ke loket sebelas"
    )
