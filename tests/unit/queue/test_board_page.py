"""The board page is self-contained and cannot be broken out of by the names it shows."""

from __future__ import annotations

import json
import re

import pytest

from mpp.queue.board.page import render_page

pytestmark = pytest.mark.unit


def test_names_are_escaped_and_the_config_cannot_close_its_script() -> None:
    html = render_page(
        title="<b>Dinas</b> & Co",
        subtitle='"MPP"',
        config={"site": "s", "agency": "</script><script>alert(1)</script>", "speak": False},
    )

    assert "&lt;b&gt;Dinas&lt;/b&gt; &amp; Co" in html
    assert "&quot;MPP&quot;" in html
    assert html.count("</script>") == 1
    config = re.search(r"var CFG = (\{.*?\});", html)
    assert config is not None
    assert json.loads(config.group(1))["agency"] == "</script><script>alert(1)</script>"


def test_the_page_loads_nothing_from_elsewhere_and_speaks_indonesian() -> None:
    html = render_page(title="t", subtitle="s", config={})

    assert not re.search(r"https?://|<link|\bsrc=|@import|url\(", html)
    assert '<html lang="id">' in html
    assert "menghubungkan ulang" in html
    assert 'u.lang = "id-ID"' in html
