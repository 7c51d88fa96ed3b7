"""End to end: a call survives the loss of a page's signaling connection, and a refresh.

The pages reach the server through the test's bridge (loopback_gate.Bridge), which can
cut a page's connections the way a network change does (the server sees a TCP reset,
the page a WebSocket 1006, nobody a close frame) and refuse new ones for a while.
"""

from __future__ import annotations

import signal
import socket

import pytest

from tests.browser.callpage import CONNECT_MS, POLL_MS, CallPage
from tests.browser.conftest import LoopbackNamespace, OpenPage
from tests.browser.mediapath import ufrag_of, wait_ice_restart_while_cut
from tests.support.process import running_server

pytestmark = pytest.mark.browser

SIGNALING = "() => document.body.dataset.signaling || ''"
UFRAG = ufrag_of("window.rtc.pc")


def open_call(
    open_page: OpenPage, site_url: str, bridge: object
) -> tuple[CallPage, CallPage, list[socket.socket]]:
    """A creates a room, B joins; returns A, B and the connections A opened."""
    upstreams: list[socket.socket] = bridge.upstreams  # type: ignore[attr-defined]
    mark = len(upstreams)
    a = open_page(site_url + "/")
    link = a.share_link()
    a_connections = upstreams[mark:]
    b = open_page(link)
    a.wait_connected()
    b.wait_connected()
    return a, b, a_connections


def wait_signaling(page: CallPage, state: str) -> None:
    page.page.wait_for_function(
        f"() => ({SIGNALING})() === {state!r}", timeout=CONNECT_MS, polling=POLL_MS
    )


def test_cut_signaling_reconnects_and_the_call_goes_on(
    open_page: OpenPage, site_url: str, bridge: object
) -> None:
    a, b, a_connections = open_call(open_page, site_url, bridge)
    a.evaluate("window.callBeforeCut = window.rtc.pc")
    a.page.wait_for_url("**/?room=*")  # the room is in the address bar
    bridge.refusing = True  # type: ignore[attr-defined]
    bridge.sever(a_connections)  # type: ignore[attr-defined]
    wait_signaling(a, "reconnecting")
    a.wait_status("Reconnecting")
    b.wait_status("Your peer lost its connection")
    b.wait_media_flowing()  # the media path never needed the server
    a.wait_media_flowing()
    bridge.refusing = False  # type: ignore[attr-defined]
    wait_signaling(a, "connected")
    assert a.evaluate("window.rtc.pc === window.callBeforeCut")  # the same call, not a new one
    a.wait_connected()
    a.send_chat("after the cut, from A")
    b.wait_chat_from_peer("after the cut, from A")
    b.send_chat("after the cut, from B")
    a.wait_chat_from_peer("after the cut, from B")
    a.wait_media_flowing()
    b.wait_media_flowing()


def test_refresh_mid_call_comes_back_to_the_same_room(
    open_page: OpenPage, site_url: str, bridge: object
) -> None:
    a, b, _ = open_call(open_page, site_url, bridge)
    room = a.evaluate("window.rtc.room")
    a.page.reload()
    a.page.wait_for_function(
        "r => window.rtc?.room === r && window.rtc.pc?.connectionState === 'connected'",
        arg=room,
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )
    b.wait_connected()
    a.wait_media_flowing()
    b.wait_media_flowing()
    a.send_chat("after the refresh, from A")
    b.wait_chat_from_peer("after the refresh, from A")
    b.send_chat("after the refresh, from B")
    a.wait_chat_from_peer("after the refresh, from B")


def test_server_restart_pages_say_the_room_is_gone(
    open_page: OpenPage, site_url: str, bridge: object
) -> None:
    """SIGTERM, then a new server behind the same address: sessions and rooms ended
    with the old process, so the pages reconnect, cannot resume, find the room number
    free, and say so (docs/PROTOCOL.md, "Server restart")."""
    saved = bridge.target  # type: ignore[attr-defined]
    try:
        with running_server("--stun", "") as first:
            bridge.target = (first.host, first.port)  # type: ignore[attr-defined]
            a, b, _ = open_call(open_page, site_url, bridge)
            with running_server("--stun", "") as second:
                bridge.refusing = True  # type: ignore[attr-defined]
                first.stop(signal.SIGTERM)
                bridge.target = (second.host, second.port)  # type: ignore[attr-defined]
                bridge.refusing = False  # type: ignore[attr-defined]
                for page in (a, b):
                    page.page.wait_for_selector("#ended", state="visible", timeout=CONNECT_MS)
                    assert "room is gone" in page.page.inner_text("#ended-message")
                    assert page.page.is_hidden("#rejoin")  # nothing to rejoin
    finally:
        bridge.target = saved  # type: ignore[attr-defined]


def test_media_path_lost_mid_call_restarts_ice_on_the_same_connection(
    open_page: OpenPage, site_url: str, bridge: object, loopback_namespace: LoopbackNamespace
) -> None:
    """The media path breaks (all UDP dropped) while signaling flows: the side that made
    the offer restarts ICE through the server and the same call carries on."""
    a, b, _ = open_call(open_page, site_url, bridge)
    for page in (a, b):
        page.wait_media_flowing()
        page.evaluate("window.pcBefore = window.rtc.pc")
    callers = [page for page in (a, b) if page.evaluate("window.rtc._asCaller")]
    assert len(callers) == 1, "exactly one side made the offer"
    caller = callers[0]
    callee = b if caller is a else a
    before = caller.evaluate(UFRAG, "localDescription")
    assert before is not None and callee.evaluate(UFRAG, "remoteDescription") == before
    wait_ice_restart_while_cut(loopback_namespace, caller.page, "window.rtc.pc")
    for page in (a, b):
        page.wait_connected()
        assert page.evaluate("window.rtc.pc === window.pcBefore")  # the same call
    restarted = caller.evaluate(UFRAG, "localDescription")
    assert restarted != before and callee.evaluate(UFRAG, "remoteDescription") == restarted
    for page in (a, b):
        page.wait_media_flowing()
    a.send_chat("after the restart, from A")
    b.wait_chat_from_peer("after the restart, from A")
    b.send_chat("after the restart, from B")
    a.wait_chat_from_peer("after the restart, from B")
