"""End to end: the phone page survives a reload (docs/PROTOCOL.md, "Sessions and resume").

A reload keeps the session in sessionStorage; the next page sends RESUME within the
server's grace and comes back under the same name, and an accepted call goes on with a
new RTCPeerConnection that the reloaded side offers. Log out ends the session at once.
"""

from __future__ import annotations

import pytest

from tests.browser.callpage import CONNECT_MS, POLL_MS, UI_MS
from tests.browser.phonepage import PhonePage, peer_events, record_peer_events
from tests.browser.test_phone_call import OpenPhone, open_phone, ring, server  # noqa: F401

pytestmark = pytest.mark.browser

# The page is logged in as `name` again, by itself (no login form), with or without a call.
BACK_AS = """
(name) => window.phone?.name === name && window.phone.connected
  && document.getElementById('me-name').textContent === name
  && document.getElementById('login').hidden
"""


def reload_phone(phone: PhonePage, name: str) -> None:
    phone.page.reload()
    phone.page.wait_for_function(BACK_AS, arg=name, timeout=CONNECT_MS, polling=POLL_MS)


@pytest.mark.parametrize("who_reloads", ["caller", "callee"])
def test_reload_mid_call_comes_back_as_the_same_name_and_the_call_resumes(
    open_phone: OpenPhone,  # noqa: F811
    who_reloads: str,
) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    alice.wait_user("bob")
    ring(alice, bob, "bob")
    bob.page.click("#accept")
    for phone in (alice, bob):
        phone.wait_connected()
        phone.wait_video_flowing()
    room = alice.evaluate("window.phone.call.room")
    # The caller made the first offer; either side may reload.
    reloader, reloader_name, other, other_name = (
        (alice, "alice", bob, "bob") if who_reloads == "caller" else (bob, "bob", alice, "alice")
    )
    record_peer_events(other)
    other.evaluate("window.pcBeforeReload = window.phone.pc")

    reload_phone(reloader, reloader_name)
    assert reloader.evaluate("window.phone.call.room") == room  # the same call
    assert reloader.evaluate("window.phone.call.peer") == other_name
    for phone in (reloader, other):
        phone.wait_connected()
    # The peer saw the reloader away and back, with a new connection, and no end.
    other.page.wait_for_function(
        "() => window.peerEvents.includes('back')", timeout=UI_MS, polling=POLL_MS
    )
    assert peer_events(other) == ["away", "back"]
    assert other.evaluate("window.phone.pc !== window.pcBeforeReload")
    assert other.page.is_visible("#in-call")
    assert "hung up" not in other.page.inner_text("#note")
    for phone in (reloader, other):
        phone.wait_video_flowing()
    # The reloaded page kept the directory it had (the peer is busy, in the call).
    assert reloader.evaluate(f"window.phone.users.get({other_name!r})") == "in-call"

    reloader.send_text(f"after the reload, from {reloader_name}")
    other.wait_text_from(reloader_name, f"after the reload, from {reloader_name}")
    other.send_text(f"welcome back, from {other_name}")
    reloader.wait_text_from(other_name, f"welcome back, from {other_name}")

    # Hang-up still goes through the server, from the page that reloaded.
    reloader.page.click("#hang-up")
    other.wait_note(f"{reloader_name} hung up")
    for phone in (reloader, other):
        phone.wait_directory()
    reloader.wait_user(other_name, "available")
    other.wait_user(reloader_name, "available")
    assert peer_events(other) == ["away", "back", "ended:hangup"]


def test_reload_without_a_call_comes_back_logged_in(open_phone: OpenPhone) -> None:  # noqa: F811
    alice, bob = open_phone("alice"), open_phone("bob")
    bob.wait_user("alice")
    # Bob's directory never loses alice: her name waits for her through the reload.
    bob.evaluate(
        """() => {
          window.aliceGone = false;
          window.phone.addEventListener('users', () => {
            if (!window.phone.users.has('alice')) window.aliceGone = true;
          });
        }"""
    )
    reload_phone(alice, "alice")
    alice.page.wait_for_selector("#directory", state="visible", timeout=UI_MS)
    alice.wait_user("bob")
    # The name really is alice's on the server: bob's call rings her.
    ring(bob, alice, "alice")
    alice.page.click("#reject")
    bob.wait_note("alice rejected the call")
    assert not bob.evaluate("window.aliceGone")


def test_log_out_frees_the_name_at_once(open_phone: OpenPhone) -> None:  # noqa: F811
    alice, bob = open_phone("alice"), open_phone("bob")
    alice.wait_user("bob")
    ring(alice, bob, "bob")
    bob.page.click("#accept")
    alice.wait_connected()
    alice.page.click("#logout")
    # Well within the grace (30 s): a close 1000, not a lost socket.
    bob.wait_note("alice hung up")
    bob.wait_user_gone("alice")
    alice.page.wait_for_selector("#login-form", state="visible", timeout=UI_MS)
    assert alice.page.is_hidden("#logout")
    # The name is free: another page takes it, and a reload there does not resume the old one.
    again = open_phone("alice")
    bob.wait_user("alice")
    again.wait_user("bob")
    reload_phone(again, "alice")
