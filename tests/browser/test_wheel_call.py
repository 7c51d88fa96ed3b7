"""End to end from the artifact users get: the wheel installed in a fresh venv, its
`rtcserver` script started from an empty directory, and two browsers on the page it
serves from inside the package, in a call with media flowing both ways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.conftest import OpenPage
from tests.support.artifacts import Artifacts
from tests.support.process import ServerProcess, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(
    artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # Overrides the browser suite's server: this one is the installed wheel's.
    elsewhere = tmp_path_factory.mktemp("not-a-checkout")
    with running_server("--stun", "", program=[str(artifacts.script)], cwd=elsewhere) as srv:
        yield srv


def test_a_call_on_the_page_the_wheel_serves(open_page: OpenPage, site_url: str) -> None:
    a = open_page(site_url + "/")
    b = open_page(a.share_link())
    a.wait_connected()
    b.wait_connected()
    for page in (a, b):
        page.wait_media_flowing()
    assert (a.status(), b.status()) == ("Connected", "Connected")
