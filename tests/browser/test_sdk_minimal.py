"""End to end: the SDK's ten-line example page (www/examples/minimal.html), not the
built-in pages. Two headless Chromium contexts see each other's video, exchange
room.send() messages, and a join to the full room rejects with RoomFullError."""

from __future__ import annotations

import pytest

from tests.browser.callpage import CONNECT_MS, MEDIA_MS, POLL_MS, UI_MS, CallPage
from tests.browser.conftest import OpenPage

pytestmark = pytest.mark.browser

# True once `n` remote videos (all but the muted local one) have a size and their
# presented frame counts grew since this function's previous call.
REMOTE_VIDEOS_PLAYING = """
(n) => {
  const remote = [...document.querySelectorAll('#videos video')].slice(1);
  if (remote.length !== n) return false;
  window.__seen = window.__seen || new WeakMap();
  let growing = 0;
  for (const v of remote) {
    const frames = v.getVideoPlaybackQuality().totalVideoFrames;
    const before = window.__seen.get(v);
    window.__seen.set(v, frames);
    if (v.videoWidth > 0 && before !== undefined && frames > before) growing++;
  }
  return growing === n;
}
"""


def link_of(page: CallPage) -> str:
    handle = page.page.wait_for_function(
        "() => { const h = document.getElementById('link').href; return h.includes('room=') && h }",
        timeout=UI_MS,
        polling=POLL_MS,
    )
    return str(handle.json_value())


def wait_remote_videos(page: CallPage, n: int) -> None:
    page.page.wait_for_function(REMOTE_VIDEOS_PLAYING, arg=n, timeout=MEDIA_MS, polling=500)


def send(page: CallPage, text: str) -> None:
    page.page.fill("#text", text)
    page.page.click("#chat button")


def wait_message(page: CallPage, text: str) -> None:
    page.page.wait_for_function(
        "t => document.getElementById('log').textContent.includes(': ' + t)",
        arg=text,
        timeout=UI_MS,
        polling=POLL_MS,
    )


def test_two_pages_see_each_other_message_and_a_third_gets_room_full(
    open_page: OpenPage, site_url: str
) -> None:
    a = open_page(site_url + "/examples/minimal.html")
    link = link_of(a)
    assert "/examples/minimal.html?room=" in link
    b = open_page(link)
    for page in (a, b):
        wait_remote_videos(page, 1)
    send(a, "hello from A")
    wait_message(b, "hello from A")
    send(b, "hello from B")
    wait_message(a, "hello from B")
    c = open_page(link)
    c.page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('RoomFullError')",
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )
    b.page.click("#leave")
    a.page.wait_for_function(
        "() => document.querySelectorAll('#videos video').length === 1",
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )
