"""What the SDK tests read on the ten-line example page (www/examples/minimal.html):
its link, its remote videos moving, its message log, its status line, and the
Room's events in the order they were dispatched.

The page keeps its Room to itself, so ROOM_EVENTS (an init script) records every
CustomEvent a Room dispatches, by wrapping EventTarget.prototype.dispatchEvent: the
test sees exactly what an app's listeners see, without a hook in the page.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.callpage import CONNECT_MS, MEDIA_MS, POLL_MS, UI_MS, CallPage

PAGE = "/examples/minimal.html"

ROOM_EVENTS = """
(() => {
  const dispatch = EventTarget.prototype.dispatchEvent;
  window.__roomEvents = [];
  EventTarget.prototype.dispatchEvent = function (event) {
    if (this.constructor?.name === "Room" && event instanceof CustomEvent) {
      window.__room = this; // for the diagnostics of a failing wait
      const d = event.detail || {};
      window.__roomEvents.push({
        type: event.type,
        id: d.id ?? d.from ?? null,
        data: event.type === "message" ? d.data : null,
        resumed: d.resumed ?? null,
        reason: d.reason ?? null,
      });
    }
    return dispatch.call(this, event);
  };
})();
"""

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


VIDEOS = """() => [...document.querySelectorAll('#videos video')].map((v) => ({
  width: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames,
  tracks: v.srcObject ? v.srcObject.getTracks().map((t) => t.kind + ':' + t.readyState) : null,
}))"""

# What each of the Room's peer connections is doing (group rooms: one per peer).
CONNECTIONS = """async () => {
  const client = window.__room?.client;
  if (!client) return null;
  const pcs = client.peers
    ? [...client.peers.values()].map((p) => [p.id, p.pc])
    : [["pair", client.pc]];
  const out = [];
  for (const [id, pc] of pcs) {
    if (!pc) { out.push({ id, pc: null }); continue; }
    let frames = null;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded;
    });
    out.push({ id, state: pc.connectionState, signaling: pc.signalingState, frames });
  }
  return out;
}"""


def wait_remote_videos(page: CallPage, n: int) -> None:
    """`n` remote videos, each with new frames between two looks."""
    try:
        page.page.wait_for_function(REMOTE_VIDEOS_PLAYING, arg=n, timeout=MEDIA_MS, polling=500)
    except PlaywrightTimeoutError:
        raise AssertionError(f"not {n} remote videos playing: {describe(page)}") from None


def describe(page: CallPage) -> str:
    """A page's videos, peer connections and Room events: what a failing wait reports."""
    videos = page.evaluate(VIDEOS)
    connections = page.evaluate(CONNECTIONS)
    events = page.evaluate("() => window.__roomEvents || null")
    return f"{page.page.url}: videos {videos}; connections {connections}; events {events}"


def wait_video_count(page: CallPage, n: int) -> None:
    """`n` videos on the page, the local one included."""
    page.page.wait_for_function(
        "n => document.querySelectorAll('#videos video').length === n",
        arg=n,
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )


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


def wait_status_starts(page: CallPage, prefix: str, timeout: int = CONNECT_MS) -> None:
    page.page.wait_for_function(
        "p => document.getElementById('status').textContent.startsWith(p)",
        arg=prefix,
        timeout=timeout,
        polling=POLL_MS,
    )


def room_events(page: CallPage) -> list[dict[str, Any]]:
    """Every event the page's Room dispatched so far, oldest first (needs ROOM_EVENTS)."""
    events = page.evaluate("() => window.__roomEvents")
    assert isinstance(events, list), "ROOM_EVENTS was not installed on this page"
    return events


def wait_event(page: CallPage, type_: str, timeout: int = CONNECT_MS) -> None:
    page.page.wait_for_function(
        "t => (window.__roomEvents || []).some((e) => e.type === t)",
        arg=type_,
        timeout=timeout,
        polling=POLL_MS,
    )


def real_peers(events: list[dict[str, Any]]) -> list[str]:
    """The peers that sent media, in the order their first track came (a group room's
    members also see a joiner's first probe come and go, with no media)."""
    seen: list[str] = []
    for event in events:
        if event["type"] == "track" and event["id"] not in seen:
            seen.append(event["id"])
    return seen


def assert_in_order(events: list[dict[str, Any]]) -> None:
    """docs/SDK.md's order: per peer peerjoined, then its tracks and messages, then
    peerleft; "closed" (if any) last."""
    state: dict[str, str] = {}
    for number, event in enumerate(events):
        where = f"event {number} of {events}"
        if event["type"] == "closed":
            assert number == len(events) - 1, f"closed is not last: {where}"
            assert all(s == "left" for s in state.values()), f"a peer still there: {where}"
            continue
        if event["type"] not in {"peerjoined", "track", "message", "peerleft"}:
            continue
        peer = event["id"]
        if event["type"] == "peerjoined":
            assert state.get(peer) in {None, "left"}, where
            state[peer] = "in"
        else:
            assert state.get(peer) == "in", f"{event['type']} outside the peer's stay: {where}"
            if event["type"] == "peerleft":
                state[peer] = "left"
