"""End to end: two people on the video-call page, through a real rtcserver.

Headless Chromium with a fake camera and microphone. Each test starts from an
empty page A (which creates a room) and a page B that opens A's share link.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.callpage import CallPage
from tests.browser.conftest import OpenPage

pytestmark = pytest.mark.browser

# Installed before the page's scripts: the camera and microphone are refused.
CAMERA_DENIED = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
"""


def start_call(open_page: OpenPage, site_url: str) -> tuple[CallPage, CallPage, str]:
    """A creates a room, B opens A's link; returns (A, B, link) once both are connected."""
    a = open_page(site_url + "/")
    link = a.share_link()
    b = open_page(link)
    a.wait_connected()
    b.wait_connected()
    return a, b, link


@pytest.fixture
def call(open_page: OpenPage, site_url: str) -> Iterator[tuple[CallPage, CallPage, str]]:
    yield start_call(open_page, site_url)


def test_share_link_names_the_room_on_this_server(
    call: tuple[CallPage, CallPage, str], site_url: str
) -> None:
    a, b, link = call
    assert link.startswith(site_url + "/?room=")
    room = link.split("room=", 1)[1]
    assert room.isdigit()
    # The exact digits, never rounded: both pages hold the same number.
    assert str(a.evaluate("window.rtc.room")) == room
    assert str(b.evaluate("window.rtc.room")) == room
    assert a.status() == "Connected"
    assert b.status() == "Connected"


def test_media_flows_both_ways_over_loopback(call: tuple[CallPage, CallPage, str]) -> None:
    a, b, _ = call
    for page in (a, b):
        page.wait_media_flowing()
    # Each end sends from 127.0.0.1, so the path is 127.0.0.1 <-> 127.0.0.1. (The
    # remote address may be hidden: a peer-reflexive candidate's address is not
    # reported, but then it is the other page's local one, checked here too.)
    for page in (a, b):
        pair = page.selected_pair()
        assert pair["local"] == "127.0.0.1", pair
        assert pair["remote"] in ("127.0.0.1", None), pair


def test_chat_goes_both_ways_as_plain_text(call: tuple[CallPage, CallPage, str]) -> None:
    a, b, _ = call
    hello = 'hello from A <b>not bold</b> & "quoted"'
    a.send_chat(hello)
    b.wait_chat_from_peer(hello)
    reply = "<img src=x onerror=alert(1)> reply from B"
    b.send_chat(reply)
    a.wait_chat_from_peer(reply)
    # Text from the network is never parsed as HTML.
    for page in (a, b):
        assert page.evaluate("document.querySelectorAll('#chat-log b, #chat-log img').length") == 0
    # Each side also shows its own line.
    assert a.evaluate("document.querySelector('#chat-log li.mine .text').textContent") == hello


def test_third_person_on_the_link_gets_wrong_room(
    call: tuple[CallPage, CallPage, str], open_page: OpenPage, site_url: str
) -> None:
    a, _, link = call
    c = open_page(link)
    c.wait_wrong_room()
    assert c.status() == "Wrong room"
    assert "full" in c.page.inner_text("#wrong-room-message")
    # The call in the room is untouched.
    assert a.evaluate("window.rtc.pc.connectionState") == "connected"
    # The button starts a fresh room of C's own.
    c.page.click("#new-room")
    new_link = c.share_link()
    assert new_link.startswith(site_url + "/?room=")
    assert new_link != link


def test_link_stays_valid_after_the_peer_leaves(
    call: tuple[CallPage, CallPage, str], open_page: OpenPage
) -> None:
    a, b, link = call
    # Leaving is hanging up (close 1000). Closing the tab instead looks like a refresh
    # to the server (1001): the peer is away for the resume grace first.
    b.page.click("#hang-up")
    b.close()
    a.wait_status("peer left")
    assert a.evaluate("window.rtc.pc") is None
    assert a.share_link() == link
    # Someone new opens the same link and gets a working call with A.
    d = open_page(link)
    d.wait_connected()
    a.wait_connected()
    for page in (a, d):
        page.wait_media_flowing()
    assert a.status() == "Connected"


def test_camera_denied_still_receives_and_chats(open_page: OpenPage, site_url: str) -> None:
    a = open_page(site_url + "/", CAMERA_DENIED)
    a.page.wait_for_selector("#media-notice", state="visible")
    assert "denied" in a.page.inner_text("#media-notice")
    b = open_page(a.share_link())
    a.wait_connected()
    b.wait_connected()
    a.wait_media_flowing()  # A sends nothing but still sees and hears B
    b.send_chat("can you see me?")
    a.wait_chat_from_peer("can you see me?")
    a.send_chat("yes, but my camera is off")
    b.wait_chat_from_peer("yes, but my camera is off")


@pytest.mark.parametrize(
    "query",
    [
        "?room=abc",  # not a number: the page says so without asking the server
        "?room=9007199254740993",  # beyond 2^53-1: a browser could not keep it exact
        "?room=",
    ],
)
def test_malformed_room_link_shows_wrong_room(
    query: str, open_page: OpenPage, site_url: str
) -> None:
    page = open_page(site_url + "/" + query)
    page.wait_wrong_room()
    assert page.status() == "Wrong room"
    assert page.page.is_visible("#new-room")
    assert not page.page.is_visible("#share")


def test_room_nobody_created_shows_wrong_room(open_page: OpenPage, site_url: str) -> None:
    page = open_page(site_url + "/?room=424242")
    page.wait_wrong_room()
    # This answer came from the server: the page did connect and ask.
    assert page.evaluate("window.rtc.finished") is True
    assert "does not exist" in page.page.inner_text("#wrong-room-message")
    assert page.page.is_visible("#new-room")


def test_candidate_filter_keeps_only_listed_addresses(open_page: OpenPage, site_url: str) -> None:
    page = open_page(site_url + "/")
    page.share_link()
    verdicts = page.evaluate(
        """async () => {
          const RtcLib = await import('/rtclib.js');
          const filter = window.RTCSERVER_CANDIDATE_FILTER;
          const ok = (c) => RtcLib.candidateAllowed(c, filter);
          const sdp = ['v=0',
            'a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host',
            'a=candidate:2 1 udp 2122260223 192.0.2.2 50001 typ host',
            'a=candidate:3 1 udp 2122262783 ::1 50002 typ host', ''].join('\\r\\n');
          return {
            loopback: ok('candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0'),
            lan: ok('candidate:2 1 udp 2122260223 192.0.2.2 50001 typ host generation 0'),
            mdns: ok('candidate:3 1 udp 2122260223 1f4712db.local 50002 typ host'),
            endOfCandidates: ok(''),
            sdp: RtcLib.filterSdp(sdp, filter),
            unfiltered: RtcLib.candidateAllowed('candidate:2 1 udp 1 192.0.2.2 1 typ host', null),
          };
        }"""
    )
    assert verdicts["loopback"] is True
    assert verdicts["lan"] is False
    assert verdicts["mdns"] is False
    assert verdicts["endOfCandidates"] is True
    assert verdicts["unfiltered"] is True  # production: no filter, nothing dropped
    assert "127.0.0.1 50000" in verdicts["sdp"]
    assert "192.0.2.2" not in verdicts["sdp"]
    assert "::1" not in verdicts["sdp"]


def test_controls_mute_and_hang_up(call: tuple[CallPage, CallPage, str]) -> None:
    a, b, _ = call
    tracks = (
        "kind => window.rtc.call.localStream.getTracks().filter(t => t.kind === kind)[0].enabled"
    )
    b.page.click("#mute-mic")
    assert b.evaluate(tracks, "audio") is False
    assert b.page.get_attribute("#mute-mic", "aria-pressed") == "true"
    b.page.click("#camera-off")
    assert b.evaluate(tracks, "video") is False
    b.page.click("#mute-mic")
    assert b.evaluate(tracks, "audio") is True
    # Hanging up ends B's call and tells A, whose link stays on show.
    b.page.click("#hang-up")
    b.wait_status("You left the call")
    assert b.evaluate("window.rtc.pc") is None
    assert b.page.is_visible("#rejoin")
    a.wait_status("peer left")
    assert a.page.is_visible("#share-link")
