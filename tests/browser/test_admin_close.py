"""End to end: the admin API closes a room, and the pages in it say so."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from tests.browser.callpage import CONNECT_MS, POLL_MS
from tests.browser.conftest import OpenPage
from tests.browser.test_room_call import start_call
from tests.browser.test_sdk_minimal import link_of
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser

TOKEN = "b" * 32


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("--stun", "", "--admin-token", TOKEN) as srv:
        yield srv


def admin(server: ServerProcess, method: str, path: str) -> object:
    request = urllib.request.Request(
        server.http_url + path, method=method, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def test_pages_show_the_room_was_closed_after_delete(
    open_page: OpenPage, site_url: str, server: ServerProcess
) -> None:
    a, b, link = start_call(open_page, site_url)
    room = int(link.split("room=", 1)[1])
    assert admin(server, "DELETE", f"/api/v1/rooms/{room}") == {"closed": room}
    for page in (a, b):
        page.page.wait_for_function(
            """() => !document.getElementById('ended').hidden
                  && document.getElementById('ended-message').textContent
                     === 'The room was closed'""",
            timeout=CONNECT_MS,
            polling=POLL_MS,
        )
        assert page.status() == "Disconnected from the server"
    # Final: neither page reconnected into the room (it is gone, its number free).
    assert admin(server, "GET", "/api/v1/rooms") == {"rooms": [], "next_cursor": None}


def test_the_sdk_reports_room_closed(
    open_page: OpenPage, site_url: str, server: ServerProcess
) -> None:
    page = open_page(site_url + "/examples/minimal.html")
    room = int(link_of(page).split("room=", 1)[1])
    assert admin(server, "DELETE", f"/api/v1/rooms/{room}") == {"closed": room}
    page.page.wait_for_function(
        "() => document.getElementById('status').textContent.endsWith('(ended: room-closed)')",
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )
