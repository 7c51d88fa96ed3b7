"""A page of the operator's own `--www DIR` written with inline script and style (as the
book's chapter-1 page and the tutorials' are) runs: no strict policy is forced on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.callpage import POLL_MS, UI_MS
from tests.browser.conftest import OpenPage
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser

INLINE_PAGE = """<!doctype html>
<html><head><title>inline</title>
<style>#styled { color: rgb(0, 128, 0); }</style>
<script>
  window.addEventListener('DOMContentLoaded', () => {
    document.getElementById('out').textContent = 'inline script ran';
  });
</script></head>
<body><p id="out">not run</p><p id="styled" style="font-weight: 700">styled</p></body></html>
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    www = tmp_path_factory.mktemp("own-www")
    (www / "index.html").write_text(INLINE_PAGE)
    with running_server("--stun", "", "--www", str(www)) as srv:
        yield srv


def test_an_inline_script_page_under_www_runs(open_page: OpenPage, site_url: str) -> None:
    page = open_page(site_url + "/index.html")
    page.page.wait_for_function(
        "() => document.getElementById('out').textContent === 'inline script ran'",
        timeout=UI_MS,
        polling=POLL_MS,
    )
    styled = page.evaluate(
        """() => { const s = getComputedStyle(document.getElementById('styled'));
                   return [s.color, s.fontWeight]; }"""
    )
    assert styled == ["rgb(0, 128, 0)", "700"]  # the style element and the style attribute
    assert not page.csp_violations
