"""End to end: a closed tab frees its seat soon, a reload still comes back.

Both close with 1001. The server keeps the seat for the reload grace (its default,
measured here: a reload resumes well within it); a newcomer who opens the link
meanwhile sees "Waiting for a seat…", not an error, and enters as the seat frees.
"""

from __future__ import annotations

import time

import pytest

from rtcserver.settings import Settings
from tests.browser.callpage import CONNECT_MS, POLL_MS, CallPage
from tests.browser.conftest import OpenPage

pytestmark = pytest.mark.browser

RELOAD_GRACE_S = Settings().reload_grace  # the default: what people get

# Remote video frames keep being decoded on `window.rtc.pc` (two stats samples, taken
# by successive polls: wait_for_function does not await a promise).
VIDEO_FLOWING = """() => {
  const pc = window.rtc && window.rtc.pc;
  const video = document.getElementById('remoteVideo');
  if (!pc || pc.connectionState !== 'connected' || video.videoWidth === 0) return false;
  window.__samples = window.__samples || new WeakMap();
  if (!window.__samples.has(pc)) window.__samples.set(pc, []);
  const samples = window.__samples.get(pc);
  pc.getStats().then((stats) => {
    let frames = 0;
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        frames = Math.max(frames, r.framesDecoded || 0);
      }
    });
    samples.push(frames);
  });
  const n = samples.length;
  return n >= 2 && samples[n - 2] > 0 && samples[n - 1] > samples[n - 2];
}"""

RECORD_SEAT_TIMES = """() => {
  window.awayAt = 0;
  window.seatTakenAt = 0;
  window.rtc.addEventListener('peeraway', () => { window.awayAt = Date.now(); });
  window.rtc.addEventListener('peerjoined', () => { window.seatTakenAt = Date.now(); });
}"""

COUNT_PEER_LEFT = """() => {
  window.peerLeft = 0;
  window.rtc.addEventListener('peerleft', () => { window.peerLeft += 1; });
}"""


def wait_video(page: CallPage) -> None:
    page.page.wait_for_function(VIDEO_FLOWING, timeout=CONNECT_MS, polling=250)


def open_call(open_page: OpenPage, site_url: str) -> tuple[CallPage, CallPage, str]:
    a = open_page(site_url + "/")
    link = a.share_link()
    b = open_page(link)
    a.wait_connected()
    b.wait_connected()
    return a, b, link


def test_a_closed_tab_seat_is_taken_by_a_newcomer_within_the_reload_grace(
    open_page: OpenPage, site_url: str
) -> None:
    a, b, link = open_call(open_page, site_url)
    a.evaluate(RECORD_SEAT_TIMES)
    b.close()  # the tab is closed: 1001, as a reload
    c = open_page(link)
    c.wait_status("Waiting for a seat")
    assert c.page.is_hidden("#wrong-room")  # waiting, not refused
    # On A's clock: from B's PEERAWAY (the grace began just before) to the newcomer's
    # PEERJOINED (the seat is taken).
    a.page.wait_for_function("() => window.seatTakenAt > 0", timeout=CONNECT_MS, polling=POLL_MS)
    waited = a.evaluate("(window.seatTakenAt - window.awayAt) / 1000")
    print(f"seat taken {waited:.2f}s after the tab's session went away")
    assert waited <= RELOAD_GRACE_S + 1.0
    c.wait_connected()
    a.wait_connected()
    wait_video(c)
    wait_video(a)
    c.send_chat("the seat is mine")
    a.wait_chat_from_peer("the seat is mine")


def test_a_reload_still_resumes_the_call(open_page: OpenPage, site_url: str) -> None:
    a, b, _ = open_call(open_page, site_url)
    room = a.evaluate("window.rtc.room")
    b.evaluate(COUNT_PEER_LEFT)
    started = time.monotonic()
    a.page.reload()
    a.page.wait_for_function(
        "r => window.rtc?.room === r && window.rtc.resumable !== null"
        " && window.rtc.peerPresent === true",
        arg=room,
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )
    took = time.monotonic() - started
    print(f"the reload resumed its session {took:.2f}s after it began")
    assert took < RELOAD_GRACE_S, "a reload must come back within the reload grace"
    a.wait_connected()
    b.wait_connected()
    wait_video(a)
    wait_video(b)
    assert b.evaluate("window.peerLeft") == 0  # the session was resumed, never ended
    a.send_chat("after the reload, from A")
    b.wait_chat_from_peer("after the reload, from A")
