"""End to end: a phone call survives the loss of one page's signaling connection."""

from __future__ import annotations

import pytest

from tests.browser.conftest import LoopbackNamespace
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
