"""Free-text validators refuse control characters."""

from __future__ import annotations

from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from mpp.kit.text import MULTI_LINE, SINGLE_LINE

pytestmark = pytest.mark.unit


class Form(BaseModel):
    name: Annotated[str, SINGLE_LINE]
    note: Annotated[str, MULTI_LINE] = ""


CONTROL = st.sampled_from([chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]])


@given(before=st.text(max_size=5), bad=CONTROL, after=st.text(max_size=5))
def test_a_name_with_any_control_character_is_refused(before: str, bad: str, after: str) -> None:
    with pytest.raises(ValidationError, match="karakter kontrol"):
        Form(name=before + bad + after)


@given(name=st.text(alphabet=st.characters(min_codepoint=0x20, codec="utf-8", exclude_categories=["Cc"])))
def test_a_name_without_control_characters_is_kept_as_is(name: str) -> None:
    assert Form(name=name).name == name


def test_a_note_may_have_lines_and_tabs_but_no_other_control_character() -> None:
    assert Form(name="x", note="baris satu\n\tbaris dua\r\n").note.count("\n") == 2
    with pytest.raises(ValidationError, match="karakter kontrol"):
        Form(name="x", note="bunyi\x07")
