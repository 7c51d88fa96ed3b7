"""End to end: a phone call survives the loss of one page's signaling connection, and
of its media path (an ICE restart)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import LoopbackNamespace
from tests.browser.mediapath import ufrag_of, wait_ice_restart_while_cut
from tests.browser.test_phone_call import OpenPhone, open_phone, ring, server  # noqa: F401
from tests.browser.test_room_resume import wait_signaling

pytestmark = pytest.mark.browser


def test_cut_signaling_mid_call_reconnects_and_the_call_goes_on(
    open_phone: OpenPhone,  # noqa: F811
    loopback_namespace: LoopbackNamespace,
) -> None:
    bridge = loopback_namespace.bridge
    mark = len(bridge.upstreams)
    alice = open_phone("alice")
    alice.wait_directory()
    alice_connections = bridge.upstreams[mark:]
    bob = open_phone("bob")
    alice.wait_user("bob")
    ring(alice, bob, "bob")
    bob.page.click("#accept")
    for phone in (alice, bob):
        phone.wait_connected()
    alice.evaluate("window.callBeforeCut = window.phone.pc")
    try:
        bridge.refusing = True
        bridge.sever(alice_connections)
        wait_signaling(alice.call_page, "reconnecting")
        bob.wait_video_flowing()  # the media path never needed the server
        alice.wait_video_flowing()
        bridge.refusing = False
    finally:
        bridge.refusing = False
    wait_signaling(alice.call_page, "connected")
    assert alice.evaluate("window.phone.pc === window.callBeforeCut")
    alice.send_text("after the cut")
    bob.wait_text_from("alice", "after the cut")
    bob.send_text("welcome back")
    alice.wait_text_from("bob", "welcome back")
    alice.wait_video_flowing()
    # Signaling works again: the hang-up reaches bob through the server.
    alice.page.click("#hang-up")
    bob.wait_note("alice hung up")
    alice.wait_user("bob", "available")


UFRAG = ufrag_of("window.phone.pc")


def test_media_path_lost_mid_call_restarts_ice_on_the_same_connection(
    open_phone: OpenPhone,  # noqa: F811
    loopback_namespace: LoopbackNamespace,
) -> None:
    alice = open_phone("alice")
    bob = open_phone("bob")
    alice.wait_user("bob")
    ring(alice, bob, "bob")  # alice offers: she restarts ICE
    bob.page.click("#accept")
    for phone in (alice, bob):
        phone.wait_connected()
        phone.wait_video_flowing()
        phone.evaluate("window.pcBefore = window.phone.pc")
    alice.evaluate(
        "() => { window.states = [];"
        " window.phone.addEventListener('callstate', (e) => window.states.push(e.detail)); }"
    )
    alice_ufrag = alice.evaluate(UFRAG, "localDescription")
    bob_sees = bob.evaluate(UFRAG, "remoteDescription")
    assert alice_ufrag is not None and bob_sees == alice_ufrag
    wait_ice_restart_while_cut(loopback_namespace, alice.page, "window.phone.pc")
    for phone in (alice, bob):
        phone.wait_connected()
        assert phone.evaluate("window.phone.pc === window.pcBefore")  # the same call
    restarted = alice.evaluate(UFRAG, "localDescription")
    assert restarted != alice_ufrag
    assert bob.evaluate(UFRAG, "remoteDescription") == restarted
    for phone in (alice, bob):
        phone.wait_video_flowing()
    alice.send_text("after the restart")
    bob.wait_text_from("alice", "after the restart")
    bob.send_text("heard you")
    alice.wait_text_from("bob", "heard you")
    assert alice.page.is_visible("#in-call") and bob.page.is_visible("#in-call")
    assert "closed" not in alice.evaluate("window.states")  # never a new connection
