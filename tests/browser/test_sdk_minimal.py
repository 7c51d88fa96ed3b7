"""End to end: the SDK's ten-line example page (www/examples/minimal.html), not the
built-in pages, in a room of two. Two headless Chromium contexts see each other's
video, exchange room.send() messages, a join to the full room rejects with
RoomFullError, and the call survives a cut of one page's signaling connection."""

from __future__ import annotations

import socket

import pytest

from tests.browser import loopback_gate
from tests.browser.callpage import CONNECT_MS, POLL_MS, CallPage
from tests.browser.conftest import OpenPage
from tests.browser.sdkpage import (
    PAGE,
    ROOM_EVENTS,
    assert_in_order,
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

pytestmark = pytest.mark.browser


def open_call(
    open_page: OpenPage, site_url: str, bridge: loopback_gate.Bridge
) -> tuple[CallPage, CallPage, list[socket.socket]]:
    """A creates a room on the example page, B opens its link; both see video.
    Returns A, B and the connections A opened (its page, its scripts, its WebSocket)."""
    mark = len(bridge.upstreams)
    a = open_page(site_url + PAGE, ROOM_EVENTS)
    link = link_of(a)
    a_connections = bridge.upstreams[mark:]
    assert f"{PAGE}?room=" in link
    b = open_page(link, ROOM_EVENTS)
    for page in (a, b):
        wait_remote_videos(page, 1)
        wait_status_starts(page, "In room ")
    return a, b, a_connections


def test_two_pages_see_each_other_message_and_a_third_gets_room_full(
    open_page: OpenPage, site_url: str, bridge: loopback_gate.Bridge
) -> None:
    a, b, _ = open_call(open_page, site_url, bridge)
    send(a, "hello from A")
    wait_message(b, "hello from A")
    send(b, "hello from B")
    wait_message(a, "hello from B")
    c = open_page(link_of(a), ROOM_EVENTS)
    wait_status_starts(c, "RoomFullError")
    assert room_events(c) == []  # refused: no Room, so no events
    b.page.click("#leave")
    wait_video_count(a, 1)  # B's video went with B's peerleft
    wait_event(b, "closed")
    for page in (a, b):
        events = room_events(page)
        assert_in_order(events)
        assert len(real_peers(events)) == 1
        assert [e["type"] for e in events].count("peerleft") == 1
    assert room_events(b)[-1]["reason"] == "left"


def test_cut_signaling_the_call_goes_on_and_the_sdk_resumes(
    open_page: OpenPage, site_url: str, bridge: loopback_gate.Bridge
) -> None:
    a, b, a_connections = open_call(open_page, site_url, bridge)
    a.evaluate("window.callBeforeCut = window.__room.client.pc")
    bridge.refusing = True  # a network that is down: no reconnection yet
    bridge.sever(a_connections)
    wait_event(a, "reconnecting")
    for page in (a, b):  # the media path never needed the server
        wait_remote_videos(page, 1)
    bridge.refusing = False
    wait_event(a, "reconnected")
    # Resumed (SESSION/RESUME), not re-entered: the same call, its media still going.
    reconnected = [e for e in room_events(a) if e["type"] == "reconnected"]
    assert [e["resumed"] for e in reconnected] == [True]
    assert a.evaluate("window.__room.client.pc === window.callBeforeCut")
    a.page.wait_for_function(
        "() => window.__room.client.pc.connectionState === 'connected'",
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )
    for page in (a, b):
        wait_remote_videos(page, 1)
    send(a, "after the cut, from A")
    wait_message(b, "after the cut, from A")
    send(b, "after the cut, from B")
    wait_message(a, "after the cut, from B")
    for page in (a, b):
        events = room_events(page)
        assert_in_order(events)
        assert not any(e["type"] in {"peerleft", "closed"} for e in events), events
    assert not any(e["type"].startswith("reconnect") for e in room_events(b))
