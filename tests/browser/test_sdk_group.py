"""End to end: the SDK's ten-line example page (www/examples/minimal.html) in a group
room. The server's rooms hold three by default (--room-capacity 3), so the page's
plain Room.create() makes a group room (a mesh): three headless Chromium contexts see
each other's video and messages, a fourth is refused with RoomFullError, and when
one leaves the other two get its peerleft and go on. A cut of one member's signaling
connection is survived: the mesh's media goes on and the SDK resumes its session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import loopback_gate
from tests.browser.callpage import CONNECT_MS, POLL_MS
from tests.browser.conftest import OpenPage
from tests.browser.sdkpage import (
    PAGE,
    ROOM_EVENTS,
    assert_in_order,
    describe,
    link_of,
    real_peers,
    room_events,
    send,
    wait_event,
    wait_message,
    wait_remote_videos,
    wait_status_starts,
    wait_video_count,
)
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("--stun", "", "--room-capacity", "3") as srv:
        yield srv


def test_three_pages_see_and_message_each_other_a_fourth_is_refused_one_leaves(
    open_page: OpenPage, site_url: str
) -> None:
    a = open_page(site_url + PAGE, ROOM_EVENTS)
    link = link_of(a)
    b = open_page(link, ROOM_EVENTS)
    c = open_page(link, ROOM_EVENTS)
    pages = {"A": a, "B": b, "C": c}
    try:
        for page in pages.values():
            wait_remote_videos(page, 2)
            wait_status_starts(page, "In room ")
    except AssertionError:
        for name, page in pages.items():
            print(name, describe(page))
        raise
    assert a.page.inner_text("#status") == b.page.inner_text("#status")
    for name, page in pages.items():
        send(page, f"hello from {name}")
    for name, page in pages.items():
        for other in pages:
            if other != name:
                wait_message(page, f"hello from {other}")

    d = open_page(link, ROOM_EVENTS)
    wait_status_starts(d, "RoomFullError")
    assert room_events(d) == []  # refused: no Room, so no events

    # Who is C, as A and B know it: the one of their two media peers C does not know.
    c_peers = set(real_peers(room_events(c)))
    (c_in_a,) = set(real_peers(room_events(a))) - c_peers
    (c_in_b,) = set(real_peers(room_events(b))) - c_peers
    c.page.click("#leave")
    wait_status_starts(c, "In room ")
    wait_event(c, "closed")
    for page, c_id in ((a, c_in_a), (b, c_in_b)):
        page.page.wait_for_function(
            "id => window.__roomEvents.some((e) => e.type === 'peerleft' && e.id === id)",
            arg=c_id,
            timeout=20_000,
        )
        wait_video_count(page, 2)  # its own and the one peer left
        wait_remote_videos(page, 1)  # which still plays
    send(a, "after C left, from A")
    wait_message(b, "after C left, from A")
    send(b, "after C left, from B")
    wait_message(a, "after C left, from B")

    leaver = room_events(c)
    assert leaver[-1] == {**leaver[-1], "type": "closed", "reason": "left"}
    assert sorted(e["id"] for e in leaver if e["type"] == "peerleft") == sorted(c_peers)
    for page in pages.values():
        events = room_events(page)
        assert_in_order(events)
        assert len(real_peers(events)) == 2, events
        assert not any(e["type"] in {"reconnecting", "reconnected"} for e in events), events


# The peer connections of the page's mesh, oldest peer first.
PCS = "() => [...window.__room.client.peers.values()].map((p) => p.pc)"


def test_cut_signaling_in_a_group_room_the_mesh_goes_on_and_the_sdk_resumes(
    open_page: OpenPage, site_url: str, bridge: loopback_gate.Bridge
) -> None:
    a = open_page(site_url + PAGE, ROOM_EVENTS)
    link = link_of(a)
    mark = len(bridge.upstreams)
    b = open_page(link, ROOM_EVENTS)
    for page in (a, b):
        wait_remote_videos(page, 1)
        wait_status_starts(page, "In room ")
    b_connections = bridge.upstreams[mark:]
    b.evaluate(f"window.pcsBeforeCut = ({PCS})()")
    bridge.refusing = True
    bridge.sever(b_connections)
    wait_event(b, "reconnecting")
    for page in (a, b):
        wait_remote_videos(page, 1)
    bridge.refusing = False
    wait_event(b, "reconnected")
    assert [e["resumed"] for e in room_events(b) if e["type"] == "reconnected"] == [True]
    assert b.evaluate(f"({PCS})().every((pc, i) => pc === window.pcsBeforeCut[i])")
    b.page.wait_for_function(
        f"() => ({PCS})().every((pc) => pc.connectionState === 'connected')",
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )
    send(b, "after the cut, from B")
    wait_message(a, "after the cut, from B")
    send(a, "after the cut, from A")
    wait_message(b, "after the cut, from A")
    for page in (a, b):
        wait_remote_videos(page, 1)
        events = room_events(page)
        assert_in_order(events)
        assert len(real_peers(events)) == 1
        assert not any(e["type"] == "closed" for e in events), events
    # A saw only B's first probe leave, never B itself: the server parked B's session.
    (b_in_a,) = real_peers(room_events(a))
    assert not any(e["type"] == "peerleft" and e["id"] == b_in_a for e in room_events(a))
