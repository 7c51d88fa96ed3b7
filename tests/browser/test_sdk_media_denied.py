"""End to end: when the browser refuses the camera and microphone, the SDK rejects
with the documented MediaPermissionError (docs/SDK.md) before it talks to the server.

This module's Chromium denies every getUserMedia (`--use-fake-ui-for-media-stream=deny`
instead of the suite's auto-accept): a real refusal, the one a person's "Block" gives.
"""

from __future__ import annotations

import pytest

from tests.browser import conftest
from tests.browser.conftest import OpenPage
from tests.browser.sdkpage import PAGE, ROOM_EVENTS, room_events, wait_status_starts
from tests.support.process import ServerProcess

pytestmark = pytest.mark.browser

# Read by the `browser` fixture (tests/browser/conftest.py).
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream=deny" if arg == "--use-fake-ui-for-media-stream" else arg
    for arg in conftest.CHROMIUM_ARGS
]

# Room.create() as an app calls it, and what its rejection is.
CREATE = """async (options) => {
  const sdk = await import('/sdk/rtcserver.js');
  try {
    const room = await sdk.Room.create(options);
    const number = room.number;
    room.leave();
    return { resolved: true, number: number, local: room.localStream };
  } catch (err) {
    return {
      resolved: false,
      name: err.name,
      typed: err instanceof sdk.MediaPermissionError && err instanceof Error,
      cause: err.cause ? err.cause.name : null,
    };
  }
}"""


def test_a_refused_camera_rejects_with_media_permission_error(
    open_page: OpenPage, site_url: str, server: ServerProcess
) -> None:
    assert "--use-fake-ui-for-media-stream=deny" in CHROMIUM_ARGS
    page = open_page(site_url + PAGE, ROOM_EVENTS)
    wait_status_starts(page, "MediaPermissionError: ")
    assert room_events(page) == []
    assert page.evaluate(CREATE, {"media": {"video": True, "audio": True}}) == {
        "resolved": False,
        "name": "MediaPermissionError",
        "typed": True,
        "cause": "NotAllowedError",  # what getUserMedia itself said
    }
    # Refused before the SDK opened a WebSocket: the server never saw these pages.
    assert b"event=open" not in server.read_output()
    # Without media (to watch and listen only) the same browser still gets a room.
    joined = page.evaluate(CREATE, {"media": False})
    assert joined["resolved"] is True
    assert isinstance(joined["number"], int) and joined["number"] > 0
    assert joined["local"] is None
    server.wait_for_output(rb"event=room-created", timeout=10)  # and the server saw this one
