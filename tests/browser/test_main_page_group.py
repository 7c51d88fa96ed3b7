"""End to end: with `--room-capacity 4` a room made on the main page is a group call,
and everyone in it sees everyone: the creator is taken to the group page
(conference.html) before the room is made, and the joiners' links (the main page's
`/?room=N`) hand over to it too. Four pages, each with a tile for every member.
(Media between the members is test_conference.py's subject.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.callpage import CONNECT_MS, POLL_MS, UI_MS
from tests.browser.conftest import OpenPage
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("--stun", "", "--room-capacity", "4") as srv:
        yield srv


def test_the_main_page_makes_a_room_for_four_that_shows_everyone(
    open_page: OpenPage, site_url: str
) -> None:
    creator = open_page(site_url + "/")
    creator.page.wait_for_url("**/conference.html?*", timeout=UI_MS)  # before any room
    link = creator.share_link()
    assert link.startswith(site_url + "/?room=")
    assert creator.evaluate("window.mesh.capacity") == 4
    others = [open_page(link) for _ in range(3)]
    for page in others:
        page.page.wait_for_url("**/conference.html?room=*", timeout=UI_MS)
    pages = [creator, *others]
    for page in pages:
        page.page.wait_for_function(
            "() => window.mesh?.peers.size === 3", timeout=CONNECT_MS, polling=POLL_MS
        )
    ids = [page.evaluate("window.mesh.id") for page in pages]
    assert len(set(ids)) == 4
    for page, own in zip(pages, ids, strict=True):  # the creator sees all three others too
        page.page.wait_for_function(
            "() => document.querySelectorAll('#tiles .tile').length === 4",
            timeout=UI_MS,
            polling=POLL_MS,
        )
        assert sorted(page.evaluate("[...window.mesh.peers.keys()]")) == sorted(
            i for i in ids if i != own
        )
