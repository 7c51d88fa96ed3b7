"""End to end: closing the phone page's tab looks like a reload (docs/PROTOCOL.md,
"Sessions and resume"): the name and the call wait for the grace, then end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.callpage import CONNECT_MS, POLL_MS
from tests.browser.phonepage import peer_events, record_peer_events
from tests.browser.test_phone_call import OpenPhone, open_phone, ring  # noqa: F401
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser

GRACE_S = 3  # short, so that the test sees it end; the reload tests keep the default


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("--stun", "", "--resume-grace", str(GRACE_S)) as srv:
        yield srv


def test_closing_the_tab_mid_call_holds_the_name_and_the_call_for_the_grace(
    open_phone: OpenPhone,  # noqa: F811
) -> None:
    alice, bob = open_phone("alice"), open_phone("bob")
    alice.wait_user("bob")
    ring(alice, bob, "bob")
    bob.page.click("#accept")
    bob.wait_connected()
    record_peer_events(bob)
    alice.call_page.close()
    # At once: alice is away, the call is still on, her name still listed.
    bob.page.wait_for_function(
        "() => window.peerEvents.includes('away')", timeout=CONNECT_MS, polling=POLL_MS
    )
    assert "alice's connection was lost" in bob.page.inner_text("#status-text")
    assert bob.evaluate("window.phone.call !== null && window.phone.users.has('alice')")
    # When the grace is over: the call ends and the name is free.
    bob.wait_note("alice hung up", timeout=CONNECT_MS)
    assert peer_events(bob) == ["away", "ended:hangup"]
    bob.wait_directory()
    bob.wait_user_gone("alice")
    open_phone("alice")
    bob.wait_user("alice")
