"""`PhonePage`: one person on the soft phone (www/phone.html), in headless Chromium.

Built on `CallPage` (one browser context, its console and uncaught errors). Names
what a person does and sees: log in, the list of people, ringing, Accept / Reject,
the call's media and chat, the note that says how a call ended. The page exposes
its PhoneClient as `window.phone` (`.call`, `.pc`, `.dc`) and its ring tone as
`window.phoneRing` (see www/phone.js). Every wait has a deadline; nothing sleeps.
"""

from __future__ import annotations

from typing import Any

from tests.browser.callpage import (
    CONNECT_MS,
    MEDIA_MS,
    POLL_MS,
    REMOTE_VIDEO_SIZED,
    UI_MS,
    CallPage,
)
from tests.browser.mediaflow import wait_flowing

# The phone call's peer connection, for the getStats() sampler (mediaflow.py).
PHONE_PC = "() => [['peer', window.phone?.pc ?? null]]"

# What kinds of media the call's RTCPeerConnection negotiated and carries.
MEDIA_KINDS = """
() => {
  const phone = window.phone, pc = phone.pc;
  const sdpKinds = (d) => d ? [...d.sdp.matchAll(/^m=(\\w+)/gm)].map((m) => m[1]) : null;
  return {
    transceivers: pc.getTransceivers().map((t) => t.receiver.track.kind),
    senders: pc.getSenders().filter((s) => s.track).map((s) => s.track.kind),
    localTracks: phone.localStream ? phone.localStream.getTracks().map((t) => t.kind) : [],
    localSdp: sdpKinds(pc.localDescription),
    remoteSdp: sdpKinds(pc.remoteDescription),
  };
}
"""


class PhonePage:
    def __init__(self, page: CallPage) -> None:
        self.call_page = page
        self.page = page.page

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def _wait(self, expression: str, arg: Any = None, timeout: int = UI_MS) -> Any:
        return self.page.wait_for_function(expression, arg=arg, timeout=timeout, polling=POLL_MS)

    # ---------------------------------------------------------------- login

    def log_in(self, name: str, password: str | None = None) -> PhonePage:
        """Log in and wait until the directory shows."""
        self.submit_login(name, password)
        self.page.wait_for_selector("#directory", state="visible", timeout=UI_MS)
        assert self.page.inner_text("#me-name") == name
        return self

    def submit_login(self, name: str, password: str | None = None) -> None:
        self.page.wait_for_selector("#login-form", state="visible", timeout=UI_MS)
        self.page.fill("#login-name", name)
        if password is not None:
            self.page.fill("#login-password", password)
        self.page.click("#login-submit")

    def login_error(self) -> str:
        self.page.wait_for_selector("#login-error", state="visible", timeout=UI_MS)
        return self.page.inner_text("#login-error")

    # ------------------------------------------------------------ directory

    def user(self, name: str) -> str:
        return f'#users li[data-name="{name}"]'

    def wait_user(self, name: str, status: str = "available") -> None:
        """Wait until `name` is listed with `status` ("available" or "busy")."""
        self.page.wait_for_selector(f"{self.user(name)}.{status}", timeout=UI_MS)

    def wait_user_gone(self, name: str) -> None:
        self.page.wait_for_selector(self.user(name), state="detached", timeout=UI_MS)

    def call(self, name: str, media: str = "video") -> None:
        """Click Call (video), Voice (audio) or Text (data) beside `name`."""
        self.page.wait_for_selector(self.user(name), timeout=UI_MS)
        self.page.click(f"{self.user(name)} button.call-{media}")

    # ----------------------------------------------------------------- calls

    def wait_incoming(self, caller: str) -> None:
        self.page.wait_for_selector("#incoming", state="visible", timeout=UI_MS)
        assert self.page.inner_text("#incoming-from") == caller

    def ringing(self) -> bool:
        return bool(self.evaluate("window.phoneRing.playing"))

    def wait_note(self, fragment: str, timeout: int = UI_MS) -> str:
        """Wait until the note (how the last call ended) contains `fragment`."""
        self._wait(
            "f => !document.getElementById('note').hidden"
            " && document.getElementById('note').textContent.includes(f)",
            fragment,
            timeout,
        )
        return self.page.inner_text("#note")

    def wait_connected(self) -> None:
        self._wait("() => window.phone?.pc?.connectionState === 'connected'", timeout=CONNECT_MS)

    def wait_video_flowing(self) -> None:
        """The remote video has a size and its frames are being decoded (two getStats()
        samples taken during this wait)."""
        self._wait(REMOTE_VIDEO_SIZED, timeout=MEDIA_MS)
        wait_flowing(self.page, PHONE_PC, timeout_ms=MEDIA_MS, audio=False)

    def wait_audio_packets(self) -> int:
        """Audio packets arrived on the call: how many."""
        (inbound,) = wait_flowing(self.page, PHONE_PC, timeout_ms=MEDIA_MS, video=False)
        return inbound.audio

    def media_kinds(self) -> dict[str, Any]:
        return dict(self.evaluate(MEDIA_KINDS))

    def wait_directory(self) -> None:
        """Back on the list of people: no call, the call screen hidden."""
        self.page.wait_for_selector("#directory", state="visible", timeout=UI_MS)
        self._wait("() => window.phone.call === null && window.phone.pc === null")
        assert self.page.is_hidden("#in-call")
        assert self.page.is_hidden("#incoming")
        assert self.page.is_hidden("#outgoing")

    # ------------------------------------------------------------------ chat

    def send_text(self, text: str) -> None:
        self.page.wait_for_selector("#chat-input:enabled", timeout=CONNECT_MS)
        self.page.fill("#chat-input", text)
        self.page.press("#chat-input", "Enter")

    def wait_text_from(self, sender: str, text: str) -> None:
        self._wait(
            """([who, t]) => [...document.querySelectorAll('#chat-log li.theirs')].some(
                 (li) => li.querySelector('strong').textContent === who + ': '
                      && li.querySelector('.text').textContent === t)""",
            [sender, text],
        )


# What the page heard about its peer and its call, in order, from the moment
# `record_peer_events` ran: "away", "back", "ended:<reason>".
RECORD_PEER_EVENTS = """
() => {
  window.peerEvents = [];
  for (const type of ['peeraway', 'peerback']) {
    window.phone.addEventListener(type, () => window.peerEvents.push(type.slice(4)));
  }
  window.phone.addEventListener('ended', (e) => window.peerEvents.push('ended:' + e.detail.reason));
}
"""


def record_peer_events(phone: PhonePage) -> None:
    phone.evaluate(RECORD_PEER_EVENTS)


def peer_events(phone: PhonePage) -> list[str]:
    return list(phone.evaluate("window.peerEvents"))
