"""Is media flowing? getStats() samples of a page's peer connections, polled from Python.

Why not `wait_for_function`: Playwright does not await a promise a predicate returns
(a Promise is truthy, so an `async` predicate "passes" at once and checks nothing),
and getStats() is asynchronous. So `wait_flowing` calls `page.evaluate` (which does
await) on one sampling function, every `interval_ms`, until a deadline, and decides
in Python (`not_flowing`, a pure function) whether the samples show media arriving.

"Video flowing" means two samples of the same peer connection, taken during this
wait, the later one with more decoded frames: frames are being decoded now, not at
some earlier time. Each RTCPeerConnection gets its own serial number in the page, so
a replaced connection starts its own comparison.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from playwright.sync_api import Page

INTERVAL_MS = 300


@attrs.frozen
class Inbound:
    """One peer connection's inbound media at one moment."""

    peer: str  # the name the page expression gave it
    serial: int  # which RTCPeerConnection (0: none yet)
    state: str  # its connectionState, or "none"
    frames: int  # video frames decoded (the most over its inbound video streams)
    audio: int  # audio packets received (likewise)


def sampler(pcs: str) -> str:
    """A page function that samples the peer connections `pcs` (a JavaScript function
    returning `[[name, pc or null], ...]`) and returns one `Inbound`-shaped object each."""
    return f"""async () => {{
  window.__pcSerials = window.__pcSerials || new WeakMap();
  const out = [];
  for (const [peer, pc] of ({pcs})()) {{
    if (!pc) {{
      out.push({{peer: String(peer), serial: 0, state: 'none', frames: 0, audio: 0}});
      continue;
    }}
    if (!window.__pcSerials.has(pc)) {{
      window.__pcSerial = (window.__pcSerial || 0) + 1;
      window.__pcSerials.set(pc, window.__pcSerial);
    }}
    let frames = 0, audio = 0;
    (await pc.getStats()).forEach((r) => {{
      if (r.type !== 'inbound-rtp') return;
      if (r.kind === 'video') frames = Math.max(frames, r.framesDecoded || 0);
      if (r.kind === 'audio') audio = Math.max(audio, r.packetsReceived || 0);
    }});
    out.push({{peer: String(peer), serial: window.__pcSerials.get(pc),
               state: pc.connectionState, frames, audio}});
  }}
  return out;
}}"""


def sample(page: Page, pcs: str) -> list[Inbound]:
    return [Inbound(**row) for row in page.evaluate(sampler(pcs))]


def not_flowing(
    first: Mapping[int, Inbound],
    now: Sequence[Inbound],
    *,
    peers: int,
    video: bool = True,
    audio: bool = True,
) -> str | None:
    """Why `now` does not show media flowing from each of `peers` peer connections
    (None: it does). `first` holds, per serial, this wait's first sample of that
    connection with decoded frames: the one later frame counts must exceed."""
    if len(now) != peers:
        return f"{len(now)} peer connections, not {peers}"
    for inbound in now:
        if inbound.state != "connected":
            return f"{inbound.peer}: connection {inbound.state}"
        if audio and inbound.audio <= 0:
            return f"{inbound.peer}: no audio packets"
        if video:
            before = first.get(inbound.serial)
            if inbound.frames <= 0:
                return f"{inbound.peer}: no video frames decoded"
            if before is None or inbound.frames <= before.frames:
                return f"{inbound.peer}: video frames not growing ({inbound.frames})"
    return None


def wait_flowing(
    page: Page,
    pcs: str,
    *,
    timeout_ms: int,
    peers: int = 1,
    video: bool = True,
    audio: bool = True,
    interval_ms: int = INTERVAL_MS,
) -> list[Inbound]:
    """Sample until media flows on `peers` peer connections of `pcs` (see `sampler`):
    video frames decoded and growing (if `video`), audio packets arrived (if `audio`).
    Returns the last sample; fails with the reason after `timeout_ms`."""
    deadline = time.monotonic() + timeout_ms / 1000
    first: dict[int, Inbound] = {}
    while True:
        now = sample(page, pcs)
        why = not_flowing(first, now, peers=peers, video=video, audio=audio)
        if why is None:
            return now
        for inbound in now:
            if inbound.frames > 0:
                first.setdefault(inbound.serial, inbound)
        if time.monotonic() >= deadline:
            raise AssertionError(f"media not flowing after {timeout_ms} ms: {why}; {now}")
        page.wait_for_timeout(interval_ms)
