"""End to end: people calling each other by name on the soft phone (www/phone.html).

Headless Chromium with a fake camera and microphone, through a real rtcserver
whose ring timeout is short, so that "no answer" takes seconds. Each person is a
separate browser context that logs in with a name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser.callpage import CAMERA, SCREEN, wait_shape
from tests.browser.conftest import OpenPage
from tests.browser.phonepage import PhonePage
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser

RING_TIMEOUT_S = 6  # long enough to click Accept on a loaded machine, short enough to wait out


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # Overrides conftest's `server` for this module (site_url and open_page use it).
    with running_server("--stun", "", "--ring-timeout", str(RING_TIMEOUT_S)) as srv:
        yield srv


OpenPhone = Callable[..., PhonePage]


@pytest.fixture
def open_phone(open_page: OpenPage, site_url: str) -> Iterator[OpenPhone]:
    """`open_phone("alice")`: a new person on phone.html, logged in (no name: not yet).

    At teardown every phone logs out: a closed page keeps its name for the server's
    grace (it looks like a reload), and the next test of the module logs in with it.
    """
    phones: list[PhonePage] = []

    def open_(name: str | None = None) -> PhonePage:
        phone = PhonePage(open_page(site_url + "/phone.html"))
        phones.append(phone)
        if name is not None:
            phone.log_in(name)
        return phone

    yield open_
    for phone in phones:
        with contextlib.suppress(PlaywrightError):  # a page the test broke on purpose
            phone.evaluate("() => window.phone?.logout()")


def ring(caller: PhonePage, callee: PhonePage, callee_name: str, media: str = "video") -> None:
    """`caller` clicks the button for `media` beside `callee_name`; `callee` rings."""
    caller.call(callee_name, media)
    callee.wait_incoming(caller.evaluate("window.phone.name"))
    assert callee.ringing()
    assert callee.evaluate("window.phone.call.state") == "ringing"
    assert callee.evaluate("window.phone.call.media") == media


def test_video_call_rings_connects_chats_and_hangs_up(open_phone: OpenPhone) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    alice.wait_user("bob")
    bob.wait_user("alice")

    ring(alice, bob, "bob")
    assert bob.page.inner_text("#incoming-media") == "video call"
    alice.page.wait_for_function(
        "() => document.getElementById('outgoing-text').textContent.includes('Ringing bob')"
    )
    # Both are shown busy to each other from the first ring.
    alice.wait_user("bob", "busy")
    bob.wait_user("alice", "busy")

    bob.page.click("#accept")
    assert not bob.ringing()  # the ring tone stops at once
    for phone in (alice, bob):
        phone.wait_connected()
        # Same private room on both ends, named in CALLACCEPTED.
        assert isinstance(phone.evaluate("window.phone.call.room"), int)
    assert alice.evaluate("window.phone.call.room") == bob.evaluate("window.phone.call.room")
    for phone in (alice, bob):
        phone.wait_video_flowing()

    # Text goes over the RTCDataChannel (the caller opened it), both ways, as plain text.
    alice.send_text("hi bob <b>not bold</b>")
    bob.wait_text_from("alice", "hi bob <b>not bold</b>")
    bob.send_text("hi alice")
    alice.wait_text_from("bob", "hi alice")
    for phone in (alice, bob):
        assert phone.evaluate("[window.phone.dc.label, window.phone.dc.readyState]") == [
            "text",
            "open",
        ]
        assert phone.evaluate("document.querySelectorAll('#chat-log b').length") == 0

    alice.page.click("#hang-up")
    alice.wait_directory()
    bob.wait_directory()
    assert "bob" in alice.wait_note("ended")
    bob.wait_note("alice hung up")
    alice.wait_user("bob", "available")
    bob.wait_user("alice", "available")


def test_video_call_shares_a_screen_and_switches_camera(open_phone: OpenPhone) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    ring(alice, bob, "bob")
    bob.page.click("#accept")
    for phone in (alice, bob):
        phone.wait_connected()
    wait_shape(bob.call_page, CAMERA)
    alice.page.click("#share-screen")
    wait_shape(bob.call_page, SCREEN)  # replaceTrack: the same call, another picture
    bob.wait_video_flowing()
    alice.page.click("#share-screen")
    wait_shape(bob.call_page, CAMERA)
    # Another fake camera (the last: see conftest's CHROMIUM_ARGS), mid-call.
    alice.page.click(".devices summary")
    cameras = alice.evaluate(
        "() => [...document.getElementById('camera-select').options].map((o) => o.value)"
    )
    alice.page.select_option("#camera-select", cameras[-1])
    alice.page.wait_for_function(
        """id => window.phone.pc.getSenders().some((s) =>
             s.track?.kind === 'video' && s.track.getSettings().deviceId === id)""",
        arg=cameras[-1],
    )
    bob.wait_video_flowing()
    bob.wait_video_flowing()
    # Hanging up while sharing stops the screen capture too.
    alice.page.click("#share-screen")
    wait_shape(bob.call_page, SCREEN)
    alice.evaluate("() => { window.__screen = window.phoneMedia.preview.getVideoTracks()[0]; }")
    alice.page.click("#hang-up")
    alice.wait_directory()
    assert alice.evaluate("[window.phoneMedia.sharing, window.__screen.readyState]") == [
        False,
        "ended",
    ]


def test_voice_call_carries_audio_and_no_video(open_phone: OpenPhone) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    ring(alice, bob, "bob", media="audio")
    assert bob.page.inner_text("#incoming-media") == "voice call"
    bob.page.click("#accept")
    for phone in (alice, bob):
        phone.wait_connected()
        assert phone.wait_audio_packets() > 0
    for phone in (alice, bob):
        kinds = phone.media_kinds()
        assert kinds["transceivers"] == ["audio"], kinds
        assert kinds["senders"] == ["audio"], kinds
        assert kinds["localTracks"] == ["audio"], kinds  # getUserMedia asked for audio only
        assert "video" not in kinds["localSdp"] and "video" not in kinds["remoteSdp"], kinds
        assert phone.page.is_hidden("#videos")
    bob.page.click("#hang-up")
    alice.wait_note("bob hung up")
    alice.wait_directory()
    bob.wait_directory()


def test_text_call_has_only_a_data_channel(open_phone: OpenPhone) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    ring(alice, bob, "bob", media="data")
    bob.page.click("#accept")
    bob.send_text("text only")
    alice.wait_text_from("bob", "text only")
    for phone in (alice, bob):
        kinds = phone.media_kinds()
        assert kinds["transceivers"] == [] and kinds["localTracks"] == [], kinds
        assert kinds["localSdp"] == ["application"], kinds
    # The caller logging out ends the call for the callee at once (closing the page
    # waits for the grace: test_phone_close.py).
    alice.page.click("#logout")
    bob.wait_note("alice hung up")
    bob.wait_directory()
    bob.wait_user_gone("alice")


def test_rejected_call_says_rejected(open_phone: OpenPhone) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    ring(alice, bob, "bob")
    bob.page.click("#reject")
    assert not bob.ringing()
    assert "rejected" in alice.wait_note("rejected")
    bob.wait_note("You rejected the call from alice")
    for phone in (alice, bob):
        phone.wait_directory()
    alice.wait_user("bob", "available")


def test_incoming_call_dialog_takes_focus_and_escape_rejects(open_phone: OpenPhone) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    ring(alice, bob, "bob")
    # The ringing dialog has the keyboard: its Accept button is focused.
    assert bob.evaluate("document.activeElement && document.activeElement.id") == "accept"
    bob.page.keyboard.press("Escape")
    assert "rejected" in alice.wait_note("rejected")
    bob.wait_note("You rejected the call from alice")
    assert not bob.ringing()


def test_busy_and_no_answer(open_phone: OpenPhone) -> None:
    alice, bob, carol = open_phone("alice"), open_phone("bob"), open_phone("carol")
    ring(alice, bob, "bob")
    carol.wait_user("bob", "busy")
    carol.call("bob")
    carol.wait_note("bob is busy")
    carol.wait_directory()
    # Nobody answers: after the ring timeout the caller hears so and the callee's ring stops.
    ring_ms = (RING_TIMEOUT_S + 10) * 1000
    alice.wait_note("No answer from bob", timeout=ring_ms)
    bob.wait_note("Missed call from alice", timeout=ring_ms)
    assert not bob.ringing()
    for phone in (alice, bob):
        phone.wait_directory()


def test_caller_cancels_while_ringing(open_phone: OpenPhone) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    ring(alice, bob, "bob")
    alice.page.wait_for_function("() => window.phone.call?.state === 'ringing'")
    alice.page.click("#cancel-call")
    bob.wait_note("Missed call from alice")
    assert not bob.ringing()
    bob.wait_directory()
    alice.wait_directory()


def test_login_refusals_are_explained(open_phone: OpenPhone) -> None:
    open_phone("alice")
    second = open_phone()
    second.submit_login("alice")
    assert "taken" in second.login_error()
    second.submit_login("bad\u200dname")
    error = second.login_error()
    assert "not allowed" in error and "U+200D" in error, error
    second.log_in("alice2")  # the form still works after refusals


def test_lost_connection_offers_reconnect(open_phone: OpenPhone) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    # The socket goes away under the page (as when the server or network drops it).
    alice.evaluate("window.phone.channel.socket.close()")
    alice.page.wait_for_selector("#lost", state="visible")
    assert "lost" in alice.page.inner_text("#lost-message")
    assert alice.page.is_hidden("#directory")
    bob.wait_user_gone("alice")
    alice.page.click("#reconnect")
    alice.page.wait_for_selector("#directory", state="visible")
    alice.wait_user("bob")
    bob.wait_user("alice")
