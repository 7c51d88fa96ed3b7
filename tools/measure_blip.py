"""How long a call takes to recover from a signaling blip, end to end (not a test).

Two room pages in a call (real headless Chromium, the real server, through the browser
tests' bridge). Page A's connections to the server are cut (a TCP reset to the server,
a 1006 to the page) and new ones refused for BLIP seconds; then the bridge lets them
through again. Recovery is the time from the cut until the page says "connected" again
and a chat message has gone each way over the call. A blip longer than the server's
`resume_grace` (30 s by default) ends the session: the page re-enters as a newcomer and
a new call is made.

    .venv/bin/python -m pytest tools/measure_blip.py -s -p no:randomly
    RTCSERVER_BLIPS=2,10,40 (the default) chooses the blip lengths in seconds.

It prints one line per blip and asserts only that the call came back.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.browser.callpage import CallPage
from tests.browser.conftest import OpenPage
from tests.browser.test_room_resume import open_call

pytest_plugins = ["tests.conftest", "tests.browser.conftest"]

BLIPS = [float(s) for s in os.environ.get("RTCSERVER_BLIPS", "2,10,40").split(",")]
RECOVER_MS = 120_000


def wait_chat(page: CallPage, text: str) -> None:
    page.page.wait_for_function(
        "t => [...document.querySelectorAll('#chat-log li.theirs .text')]"
        ".some((e) => e.textContent === t)",
        arg=text,
        timeout=RECOVER_MS,
        polling=50,
    )


@pytest.mark.parametrize("blip", BLIPS)
def test_blip_recovery(open_page: OpenPage, site_url: str, bridge: object, blip: float) -> None:
    a, b, a_connections = open_call(open_page, site_url, bridge)
    a.evaluate("window.callBeforeCut = window.rtc.pc")
    bridge.refusing = True  # type: ignore[attr-defined]
    cut = time.monotonic()
    bridge.sever(a_connections)  # type: ignore[attr-defined]
    time.sleep(blip)  # the blip itself: this is what is being measured around
    bridge.refusing = False  # type: ignore[attr-defined]
    restored = time.monotonic()
    a.page.wait_for_function(
        "() => document.body.dataset.signaling === 'connected'"
        " && window.rtc?.pc?.connectionState === 'connected'",
        timeout=RECOVER_MS,
        polling=50,
    )
    signaling = time.monotonic()
    a.send_chat("from A after the blip")
    wait_chat(b, "from A after the blip")
    b.send_chat("from B after the blip")
    wait_chat(a, "from B after the blip")
    done = time.monotonic()
    resumed = a.evaluate("window.rtc.pc === window.callBeforeCut")
    print(
        f"\nblip {blip:g} s: signaling back {signaling - cut:.1f} s after the cut"
        f" ({signaling - restored:.1f} s after the network came back);"
        f" chat both ways {done - cut:.1f} s after the cut"
        f" ({'the same call' if resumed else 'a new call'})"
    )
