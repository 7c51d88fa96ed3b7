"""End to end: a group call of four headless Chromium pages in one room (a full mesh).

The first page creates a room for four on conference.html; the others open its share
link (the call page's `/?room=N`, which hands a group room over to conference.html).
Every page must decode frames from the three others (12 receivers), chat reaches
everyone, a fifth page gets `room-full`, and a page that leaves loses its tile at once.
"""

from __future__ import annotations

import pytest

from tests.browser.callpage import CONNECT_MS, MEDIA_MS, POLL_MS, UI_MS, CallPage
from tests.browser.conftest import OpenPage
from tests.browser.mediaflow import wait_flowing

pytestmark = pytest.mark.browser

# The mesh's peer connections, by member id, for the getStats() sampler (mediaflow.py).
MESH_PCS = "() => window.mesh ? [...window.mesh.peers.values()].map((p) => [p.id, p.pc]) : []"


def wait_all_peers_flowing(page: CallPage, peers: int) -> None:
    """The page has `peers` peer connections, each connected, decoding video frames
    from its member (two getStats() samples during this wait) and receiving audio."""
    wait_flowing(page.page, MESH_PCS, peers=peers, timeout_ms=MEDIA_MS)


TILES = "() => [...document.querySelectorAll('#tiles .tile')].map((t) => t.dataset.member)"


def wait_tiles(page: CallPage, count: int) -> None:
    page.page.wait_for_function(
        "n => document.querySelectorAll('#tiles .tile').length === n",
        arg=count,
        timeout=UI_MS,
        polling=POLL_MS,
    )


def test_four_pages_mesh_chat_room_full_and_leaving(open_page: OpenPage, site_url: str) -> None:
    first = open_page(site_url + "/conference.html?size=4&name=ada")
    link = first.share_link()
    assert link.startswith(site_url + "/?room=")
    others = [open_page(link) for _ in range(3)]
    pages = [first, *others]
    for page in others:  # the call page saw a group room and handed over
        page.page.wait_for_url("**/conference.html?room=*", timeout=UI_MS)
    for page in pages:
        page.page.wait_for_function(
            "() => window.mesh?.peers.size === 3", timeout=CONNECT_MS, polling=POLL_MS
        )
    for page in pages:  # 4 pages x 3 peers: 12 receivers, all decoding
        wait_all_peers_flowing(page, 3)
        wait_tiles(page, 4)
    # Tiles carry names: the creator logged in as ada; the others are guests.
    for page in others:
        names = page.page.eval_on_selector_all(
            "#tiles .tile .tile-name", "es => es.map((e) => e.textContent)"
        )
        assert sorted(names) == ["Guest", "Guest", "You", "ada"]

    # The fake microphone beeps: its audio level lights the speaking indicator.
    first.page.wait_for_function(
        "() => document.querySelectorAll('#tiles .tile.speaking:not([data-member=self])').length",
        timeout=MEDIA_MS,
        polling=POLL_MS,
    )

    # Chat goes to everyone.
    others[1].send_chat("hello all")
    for page in (first, others[0], others[2]):
        page.wait_chat_from_peer("hello all")

    # Muting shows on the other tiles.
    muter_id = others[2].evaluate("window.mesh.id")
    others[2].page.click("#mute-mic")
    first.page.wait_for_function(
        "id => !document.querySelector(`#tiles .tile[data-member='${id}'] .tile-muted`).hidden",
        arg=muter_id,
        timeout=UI_MS,
        polling=POLL_MS,
    )

    # A fifth person: the room holds four.
    fifth = open_page(link.replace("/?room=", "/conference.html?room="))
    fifth.page.wait_for_function(
        "() => document.body.dataset.wrongroom === 'room-full'", timeout=UI_MS, polling=POLL_MS
    )
    fifth.wait_wrong_room()

    # Leaving removes the tile everywhere, at once (PEERLEFT), and the mesh holds.
    leaver_id = others[0].evaluate("window.mesh.id")
    others[0].page.click("#hang-up")
    wait_tiles(others[0], 1)
    for page in (first, others[1], others[2]):
        wait_tiles(page, 3)
        assert leaver_id not in page.evaluate(TILES)
        wait_all_peers_flowing(page, 2)


# How many columns the tile grid has with `n` tiles (tiles added the way the page does).
COLUMNS_FOR = """
(n) => {
  const tiles = document.getElementById('tiles');
  const template = document.getElementById('tile-template');
  const tile = template.content.firstElementChild;
  while (tiles.children.length < n) tiles.appendChild(tile.cloneNode(true));
  while (tiles.children.length > n) tiles.lastElementChild.remove();
  tiles.dataset.count = String(n);
  const box = tiles.getBoundingClientRect();
  const fits = [...tiles.children].every((t) => t.getBoundingClientRect().right <= box.right + 1);
  return fits ? getComputedStyle(tiles).gridTemplateColumns.split(' ').length : -1;
}
"""


@pytest.mark.parametrize(
    ("viewport", "columns"),
    [
        ({"width": 1280, "height": 800}, [1, 2, 2, 2, 3, 3, 4, 4]),
        ({"width": 390, "height": 844}, [1, 1, 2, 2, 2, 2, 2, 2]),
    ],
)
def test_tiles_reflow_from_one_to_eight_on_desktop_and_phone(
    open_page: OpenPage, site_url: str, viewport: dict[str, int], columns: list[int]
) -> None:
    page = open_page(site_url + "/conference.html")
    page.page.set_viewport_size(viewport)
    page.share_link()  # the room exists; now lay out one to eight tiles
    assert [page.evaluate(COLUMNS_FOR, n) for n in range(1, 9)] == columns
