"""`CallPage`: one headless Chromium tab on the video-call page (www/index.html).

It names what a person would check: the share link, the status line, the remote
video actually moving, the chat log. Every wait has a deadline and polls the page
(`wait_for_function`); nothing here sleeps. The page exposes its RoomClient as
`window.rtc` and the current RTCPeerConnection as `window.rtc.pc` (see www/app.js).
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import BrowserContext, Page

from tests.browser.mediaflow import wait_flowing

# Deadlines, in milliseconds: generous for a loaded two-core CI machine, but a
# broken call fails in seconds, not minutes.
CONNECT_MS = 20_000
MEDIA_MS = 20_000
UI_MS = 10_000
POLL_MS = 200

# Every ICE candidate the page sends or accepts must be on loopback (rtclib.js).
LOOPBACK_ONLY = "window.RTCSERVER_CANDIDATE_FILTER = ['127.0.0.1'];"

# The call's peer connection, for the getStats() sampler (mediaflow.py).
CALL_PC = "() => [['peer', window.rtc?.pc ?? null]]"
REMOTE_VIDEO_SIZED = "() => document.getElementById('remoteVideo').videoWidth > 0"

# Shapes (width / height) of the fake sources: the camera is 640x480, the fake screen
# that getDisplayMedia gives 1280x720 (docs/BROWSER-TESTS.md). WebRTC may scale a
# picture down under load, never reshape it, so the receiver tells them apart by shape.
CAMERA, SCREEN = 4 / 3, 16 / 9

# The shape of the remote video, once it has been that shape on two successive
# frames (a frame in between sources may be either).
REMOTE_SHAPE = """() => {
  const v = document.getElementById('remoteVideo');
  return v.videoHeight > 0 ? v.videoWidth / v.videoHeight : 0;
}"""

# The addresses of the candidate pair the connection is using, or null.
SELECTED_PAIR = """
async () => {
  const pc = window.rtc && window.rtc.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId);
    }
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
  return {
    local: local.address || local.ip || null,
    remote: remote.address || remote.ip || null,
    localType: local.candidateType,
    remoteType: remote.candidateType,
  };
}
"""


# Every CSP violation is reported on the console, where the fixture collects it.
REPORT_CSP_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline'));
});
"""


class CallPage:
    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []  # uncaught exceptions in the page
        self.console: list[str] = []  # the page's console, shown when a test fails
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.add_init_script(REPORT_CSP_VIOLATIONS)

    @property
    def csp_violations(self) -> list[str]:
        """What the Content-Security-Policy blocked: the page's own report (an init
        script listens for `securitypolicyviolation`) and Chromium's console notes."""
        return [
            line
            for line in self.console
            if "CSP violation" in line or "Content Security Policy" in line
        ]

    @property
    def console_errors(self) -> list[str]:
        """Console errors, less the network failures some tests cause on purpose (a
        server or proxy cut: Chromium logs the failed socket or request itself)."""
        expected = ("WebSocket connection to", "Failed to load resource", "net::ERR_")
        return [
            line
            for line in self.console
            if line.startswith("error:") and not any(e in line for e in expected)
        ]

    def goto(self, url: str) -> CallPage:
        self.page.goto(url)
        return self

    def close(self) -> None:
        self.context.close()

    # -------------------------------------------------------------- reading

    def share_link(self) -> str:
        """The room link in #share-link, once the page has one."""
        handle = self.page.wait_for_function(
            """() => {
              const a = document.getElementById('share-link');
              return a && a.href.includes('room=') && a.offsetParent !== null ? a.href : null;
            }""",
            timeout=UI_MS,
            polling=POLL_MS,
        )
        link = handle.json_value()
        assert isinstance(link, str)
        return link

    def status(self) -> str:
        return self.page.inner_text("#status-text")

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    # -------------------------------------------------------------- waiting

    def wait_connected(self) -> None:
        self.page.wait_for_function(
            "() => window.rtc?.pc?.connectionState === 'connected'",
            timeout=CONNECT_MS,
            polling=POLL_MS,
        )

    def wait_media_flowing(self) -> None:
        """The remote video has a size, its frames are being decoded (two getStats()
        samples taken during this wait) and audio packets arrived."""
        self.page.wait_for_function(REMOTE_VIDEO_SIZED, timeout=MEDIA_MS, polling=POLL_MS)
        wait_flowing(self.page, CALL_PC, timeout_ms=MEDIA_MS)

    def selected_pair(self) -> dict[str, Any]:
        pair = self.page.evaluate(SELECTED_PAIR)
        assert pair is not None, "no selected ICE candidate pair"
        return dict(pair)

    def wait_status(self, fragment: str) -> None:
        self.page.wait_for_function(
            "f => document.getElementById('status-text').textContent.includes(f)",
            arg=fragment,
            timeout=UI_MS,
            polling=POLL_MS,
        )

    def wait_wrong_room(self) -> None:
        self.page.wait_for_selector("#wrong-room", state="visible", timeout=UI_MS)

    # ----------------------------------------------------------------- chat

    def send_chat(self, text: str) -> None:
        self.page.wait_for_selector("#chat-input:enabled", timeout=UI_MS)
        self.page.fill("#chat-input", text)
        self.page.press("#chat-input", "Enter")

    def wait_chat_from_peer(self, text: str) -> None:
        self.page.wait_for_function(
            """t => [...document.querySelectorAll('#chat-log li.theirs .text')]
                      .some((e) => e.textContent === t)""",
            arg=text,
            timeout=UI_MS,
            polling=POLL_MS,
        )


def wait_shape(page: CallPage, ratio: float, timeout: int = MEDIA_MS) -> None:
    """The remote video has had this aspect ratio (within 5%) on two successive polls."""
    page.page.wait_for_function(
        f"""ratio => {{
          const now = ({REMOTE_SHAPE})();
          const ok = Math.abs(now - ratio) / ratio < 0.05;
          const twice = ok && window.__shapeOk === ratio;
          window.__shapeOk = ok ? ratio : null;
          return twice;
        }}""",
        arg=ratio,
        timeout=timeout,
        polling=POLL_MS,
    )
