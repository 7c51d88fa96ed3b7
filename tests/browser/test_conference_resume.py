"""End to end: a group call survives the loss of one page's signaling, and a refresh.

Three headless Chromium pages share a conference (a full mesh). Every page reaches the
server through the test's bridge (loopback_gate.Bridge), which can cut one page's
connections the way a network change does (the server sees a TCP reset, the page a
WebSocket 1006) and refuse new ones for a while. The media goes page to page, so it
must keep flowing while a page's signaling is away.
"""

from __future__ import annotations

import socket

import pytest

from tests.browser import loopback_gate
from tests.browser.callpage import CONNECT_MS, POLL_MS, UI_MS, CallPage
from tests.browser.conftest import OpenPage
from tests.browser.test_conference import TILES, wait_all_peers_flowing, wait_tiles
from tests.support.process import running_server

pytestmark = pytest.mark.browser

# The page's connections as the conference page reports them (conference.js).
SIGNALING = "() => document.body.dataset.signaling || ''"
# How many members the page shows as away (by tile, or by the room-wide notice).
AWAY = "() => document.body.dataset.away || '0'"
# Whether the page shows member `id` as away: on its tile when PEERAWAY names it, else
# in the room-wide notice (the server's PEERAWAY in a roster room names nobody yet).
AWAY_SHOWN = """id => document.querySelector(`#tiles .tile[data-member='${id}']`)
  .classList.contains('away') || !document.getElementById('away-notice').hidden"""
# The RTCPeerConnections of a page, to check that a resume kept them.
PCS = "() => [...window.mesh.peers.values()].map((p) => p.pc)"


def open_conference(
    open_page: OpenPage, site_url: str, bridge: loopback_gate.Bridge
) -> tuple[list[CallPage], list[socket.socket]]:
    """Three pages in a room for four, every pair connected and its media decoding.
    Returns the pages (creator first) and the connections the middle page opened."""
    first = open_page(site_url + "/conference.html?size=4")
    link = first.share_link()
    mark = len(bridge.upstreams)
    middle = open_page(link)
    middle.page.wait_for_url("**/conference.html?room=*", timeout=UI_MS)
    middle.page.wait_for_function(
        "() => window.mesh?.peers.size === 1", timeout=CONNECT_MS, polling=POLL_MS
    )
    middle_connections = bridge.upstreams[mark:]
    last = open_page(link)
    pages = [first, middle, last]
    for page in pages:
        wait_all_peers_flowing(page, 2)
        wait_tiles(page, 3)
    # The room is in every page's address bar at once (history.replaceState).
    room = first.evaluate("window.mesh.room")
    for page in pages:
        assert f"conference.html?room={room}" in page.page.url
    return pages, middle_connections


def wait_js(page: CallPage, expression: str, value: str, timeout: int = CONNECT_MS) -> None:
    page.page.wait_for_function(
        f"v => ({expression})() === v", arg=value, timeout=timeout, polling=POLL_MS
    )


def chat_goes_both_ways(speaker: CallPage, listeners: list[CallPage], text: str) -> None:
    speaker.send_chat(f"{text}, from the speaker")
    for page in listeners:
        page.wait_chat_from_peer(f"{text}, from the speaker")
    listeners[0].send_chat(f"{text}, to the speaker")
    speaker.wait_chat_from_peer(f"{text}, to the speaker")


def test_cut_signaling_mid_conference_resumes_and_the_mesh_goes_on(
    open_page: OpenPage, site_url: str, bridge: loopback_gate.Bridge
) -> None:
    pages, middle_connections = open_conference(open_page, site_url, bridge)
    first, middle, last = pages
    tiles_before = [sorted(page.evaluate(TILES)) for page in pages]
    middle.evaluate(f"window.pcsBeforeCut = ({PCS})()")

    bridge.refusing = True
    bridge.sever(middle_connections)
    wait_js(middle, SIGNALING, "reconnecting", UI_MS)
    middle.wait_status("Reconnecting")
    member = middle.evaluate("window.mesh.id")
    for page in (first, last):  # the server parked the session: PEERAWAY, not PEERLEFT
        wait_js(page, AWAY, "1", UI_MS)
        assert page.evaluate(AWAY_SHOWN, member)
    for page in pages:  # the mesh's media never needed the server
        wait_all_peers_flowing(page, 2)
    assert [sorted(page.evaluate(TILES)) for page in pages] == tiles_before

    bridge.refusing = False
    wait_js(middle, SIGNALING, "connected")
    for page in (first, last):  # PEERBACK
        wait_js(page, AWAY, "0", UI_MS)
        assert not page.evaluate(AWAY_SHOWN, member)
    # Resumed, not re-entered: the same member, the same connections, the same tiles.
    assert middle.evaluate(f"({PCS})().every((pc, i) => pc === window.pcsBeforeCut[i])")
    assert [sorted(page.evaluate(TILES)) for page in pages] == tiles_before
    chat_goes_both_ways(middle, [first, last], "after the cut")
    for page in pages:
        wait_all_peers_flowing(page, 2)


def test_refresh_mid_conference_comes_back_to_the_same_room(
    open_page: OpenPage, site_url: str, bridge: loopback_gate.Bridge
) -> None:
    pages, _ = open_conference(open_page, site_url, bridge)
    first, middle, last = pages
    room, member = middle.evaluate("[window.mesh.room, window.mesh.id]")
    tiles_before = [sorted(page.evaluate(TILES)) for page in pages]
    for page in (first, last):
        page.evaluate("id => { window.pcToMiddle = window.mesh.peers.get(id).pc; }", member)

    middle.page.reload()
    # The session resumed (same room, same member id) and a new connection was
    # negotiated with everyone.
    middle.page.wait_for_function(
        """([room, member]) => window.mesh?.room === room && window.mesh.id === member
             && window.mesh.peers.size === 2""",
        arg=[room, member],
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )
    for page in (first, last):
        # The others replace their connection to the reloaded page with a new one
        # (whose decoded frames the sampler counts afresh: a new connection, a new serial).
        page.page.wait_for_function(
            "id => window.mesh.peers.get(id).pc !== window.pcToMiddle",
            arg=member,
            timeout=CONNECT_MS,
            polling=POLL_MS,
        )
    for page in pages:
        wait_all_peers_flowing(page, 2)
        wait_tiles(page, 3)
    for page in (first, last):
        wait_js(page, AWAY, "0", UI_MS)
        assert page.evaluate("id => window.mesh.peers.get(id).pc !== window.pcToMiddle", member)
    assert [sorted(page.evaluate(TILES)) for page in pages] == tiles_before
    assert f"conference.html?room={room}" in middle.page.url
    chat_goes_both_ways(middle, [first, last], "after the refresh")


def test_refused_resume_reenters_as_a_new_member(
    open_page: OpenPage, site_url: str, bridge: loopback_gate.Bridge
) -> None:
    """The page stays cut off past the grace: its RESUME is refused, so it enters the
    same room again as a newcomer (a new member id) and the mesh is rebuilt."""
    saved = bridge.target
    try:
        with running_server("--stun", "", "--resume-grace", "1") as short_grace:
            bridge.target = (short_grace.host, short_grace.port)
            pages, middle_connections = open_conference(open_page, site_url, bridge)
            first, middle, last = pages
            old_member = middle.evaluate("window.mesh.id")
            bridge.refusing = True
            bridge.sever(middle_connections)
            wait_js(middle, SIGNALING, "reconnecting", UI_MS)
            for page in (first, last):  # the grace ended: PEERLEFT, the tile goes
                wait_tiles(page, 2)
                wait_js(page, AWAY, "0", UI_MS)
            bridge.refusing = False
            wait_js(middle, SIGNALING, "connected")
            new_member = middle.evaluate("window.mesh.id")
            assert new_member != old_member
            for page in pages:
                wait_all_peers_flowing(page, 2)
                wait_tiles(page, 3)
            for page in (first, last):
                assert new_member in page.evaluate(TILES)
                assert old_member not in page.evaluate(TILES)
            chat_goes_both_ways(middle, [first, last], "after re-entering")
    finally:
        bridge.target = saved
