"""What the room page sends, switched mid-call without renegotiation, and what
the peer is told about it: screen share, a video file (WebRTC Blueprints ch. 3),
another camera, mute; the call's timer and quality; a clean console under the
page's Content-Security-Policy.

The receiver's decoded video tells the sources apart by shape: the fake camera
is 4:3 (640x480), the fake screen 16:9 (1280x720, see docs/BROWSER-TESTS.md) and
the test's video file 2:1. WebRTC may scale a picture down, never reshape it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.callpage import (
    CALL_PC,
    CAMERA,
    MEDIA_MS,
    POLL_MS,
    SCREEN,
    UI_MS,
    CallPage,
    wait_shape,
)
from tests.browser.conftest import OpenPage
from tests.browser.mediaflow import sample
from tests.browser.test_room_call import start_call

pytestmark = pytest.mark.browser

CLIP = 2.0  # the shape of the test's video file
CLIP_SECONDS = 4

# What page A sends now: the tracks on its senders, and whether it renegotiated.
SENDING = """() => {
  const pc = window.rtc.pc, cam = window.outgoing.camera;
  const sent = (kind) =>
    pc.getTransceivers().find((t) => t.receiver.track.kind === kind).sender.track;
  return {
    videoIsCamera: cam.getVideoTracks().includes(sent('video')),
    audioIsMicrophone: cam.getAudioTracks().includes(sent('audio')),
    videoDevice: sent('video').getSettings().deviceId || null,
    sdp: pc.localDescription.sdp,
    source: window.outgoing.source,
  };
}"""

# A CLIP_SECONDS webm, made in the page: a moving 320x160 canvas and a 440 Hz tone,
# recorded with MediaRecorder. Resolves with its bytes in base64.
MAKE_CLIP = """async (seconds) => {
  const canvas = document.createElement('canvas');
  canvas.width = 320; canvas.height = 160;
  const g = canvas.getContext('2d');
  const audio = new AudioContext();
  const tone = audio.createOscillator();
  const sink = audio.createMediaStreamDestination();
  tone.frequency.value = 440; tone.connect(sink); tone.start();
  const stream = new MediaStream([...canvas.captureStream(30).getVideoTracks(),
                                  ...sink.stream.getAudioTracks()]);
  const recorder = new MediaRecorder(stream, { mimeType: 'video/webm;codecs=vp8,opus' });
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((r) => { recorder.onstop = r; });
  let frame = 0;
  const draw = setInterval(() => {
    frame++;
    g.fillStyle = `hsl(${(frame * 7) % 360}, 80%, 50%)`; g.fillRect(0, 0, 320, 160);
    g.fillStyle = '#fff'; g.fillRect((frame * 5) % 320, 40, 40, 80);
  }, 33);
  recorder.start(250);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  recorder.stop(); await stopped;
  clearInterval(draw); tone.stop(); audio.close();
  stream.getTracks().forEach((t) => t.stop());
  const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}"""

# Installed before the page's scripts: every CSP violation, kept.
RECORD_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def call(open_page: OpenPage, site_url: str) -> Iterator[tuple[CallPage, CallPage]]:
    a, b, _ = start_call(open_page, site_url)
    b.wait_media_flowing()
    yield a, b


def test_screen_share_replaces_the_camera_then_it_comes_back(
    call: tuple[CallPage, CallPage],
) -> None:
    a, b = call
    wait_shape(b, CAMERA)
    before = a.evaluate(SENDING)

    a.page.click("#share-screen")
    wait_shape(b, SCREEN)
    b.wait_media_flowing()
    assert a.page.get_attribute("#share-screen", "aria-pressed") == "true"
    # The label stays; aria-pressed says it is on.
    assert a.page.inner_text("#share-screen") == "Share screen"
    b.page.wait_for_selector("#peer-sharing", state="visible", timeout=UI_MS)
    assert "screen" in b.page.inner_text("#peer-sharing")
    during = a.evaluate(SENDING)
    assert during["videoIsCamera"] is False and during["source"] == "screen"
    assert during["audioIsMicrophone"] is True
    assert during["sdp"] == before["sdp"]  # replaceTrack: no renegotiation

    a.page.click("#share-screen")  # stop
    wait_shape(b, CAMERA)
    b.wait_media_flowing()
    after = a.evaluate(SENDING)
    assert after["videoIsCamera"] is True and after["sdp"] == before["sdp"]
    b.page.wait_for_selector("#peer-sharing", state="hidden", timeout=UI_MS)

    # The browser's own "Stop sharing" bar ends the screen's track ("ended");
    # headless Chromium has no such bar, so the test delivers that event.
    a.page.click("#share-screen")
    wait_shape(b, SCREEN)
    a.evaluate(
        """() => window.rtc.pc.getTransceivers()
             .find((t) => t.receiver.track.kind === 'video')
             .sender.track.dispatchEvent(new Event('ended'))"""
    )
    wait_shape(b, CAMERA)
    assert a.evaluate(SENDING)["videoIsCamera"] is True
    assert a.page.get_attribute("#share-screen", "aria-pressed") == "false"


def test_video_file_plays_and_streams_with_sound_then_camera_returns(
    call: tuple[CallPage, CallPage], tmp_path: Path
) -> None:
    a, b = call
    clip = tmp_path / "clip.webm"
    clip.write_bytes(base64.b64decode(a.evaluate(MAKE_CLIP, CLIP_SECONDS)))
    (before,) = sample(b.page, CALL_PC)

    a.page.set_input_files("#video-file", str(clip))
    a.page.wait_for_function(  # the source, then the senders' tracks swapped
        f"() => {{ const s = ({SENDING})();"
        " return s.source === 'file' && !s.videoIsCamera && !s.audioIsMicrophone; }",
        timeout=UI_MS,
        polling=POLL_MS,
    )
    during = a.evaluate(SENDING)
    # The clip's own picture and sound go out, not the camera's or the microphone's.
    assert during["videoIsCamera"] is False and during["audioIsMicrophone"] is False
    assert a.page.is_visible("#fileVideo")
    assert a.evaluate("!document.getElementById('fileVideo').paused") is True
    wait_shape(b, CLIP)
    b.wait_media_flowing()  # frames decoded from the clip, and audio packets
    (after,) = sample(b.page, CALL_PC)
    assert after.audio > before.audio
    assert "video" in b.page.inner_text("#peer-sharing")

    # At the clip's end the camera and microphone come back by themselves (the page
    # says "camera" first, then swaps the senders' tracks: wait for the tracks).
    a.page.wait_for_function(
        f"() => {{ const s = ({SENDING})();"
        " return s.source === 'camera' && s.videoIsCamera && s.audioIsMicrophone; }",
        timeout=CLIP_SECONDS * 1000 + MEDIA_MS,
        polling=POLL_MS,
    )
    after = a.evaluate(SENDING)
    assert after["videoIsCamera"] is True and after["audioIsMicrophone"] is True
    assert after["sdp"] == during["sdp"]
    wait_shape(b, CAMERA)
    b.wait_media_flowing()


def test_camera_switch_mid_call_keeps_frames_flowing(call: tuple[CallPage, CallPage]) -> None:
    a, b = call
    options = a.evaluate(
        "() => [...document.getElementById('camera-select').options].map((o) => o.value)"
    )
    assert len(options) == 3, options  # conftest: three fake cameras, the last sendable
    current = a.evaluate(SENDING)["videoDevice"]
    other = options[-1]
    assert other != current
    a.page.click(".devices summary")  # the pickers are folded away until asked for
    a.page.select_option("#camera-select", other)
    a.page.wait_for_function(
        f"id => ({SENDING})().videoDevice === id", arg=other, timeout=UI_MS, polling=POLL_MS
    )
    assert a.evaluate(SENDING)["videoIsCamera"] is True
    for _ in range(3):
        b.wait_media_flowing()  # each call: more frames decoded since the previous one
    # The microphone too.
    mics = a.evaluate(
        "() => [...document.getElementById('mic-select').options].map((o) => o.value)"
    )
    assert len(mics) >= 2, mics
    a.page.select_option("#mic-select", mics[-1])
    a.page.wait_for_function(
        """id => window.outgoing.camera.getAudioTracks()[0].getSettings().deviceId === id""",
        arg=mics[-1],
        timeout=UI_MS,
        polling=POLL_MS,
    )
    assert a.evaluate(SENDING)["audioIsMicrophone"] is True
    b.wait_media_flowing()


def test_remote_mute_and_camera_off_show_on_the_peer(call: tuple[CallPage, CallPage]) -> None:
    a, b = call
    assert b.page.is_hidden("#peer-muted")
    a.page.click("#mute-mic")
    b.page.wait_for_selector("#peer-muted", state="visible", timeout=UI_MS)
    # A toggle keeps its label; aria-pressed says it is on.
    assert a.page.inner_text("#mute-mic") == "Mute mic"
    assert a.page.get_attribute("#mute-mic", "aria-pressed") == "true"
    a.page.click("#camera-off")
    b.page.wait_for_selector("#peer-camera-off", state="visible", timeout=UI_MS)
    a.page.click("#mute-mic")
    b.page.wait_for_selector("#peer-muted", state="hidden", timeout=UI_MS)
    assert b.page.is_visible("#peer-camera-off")


def test_fullscreen_and_picture_in_picture_of_the_peer(call: tuple[CallPage, CallPage]) -> None:
    a, _ = call
    a.page.click("#fullscreen")  # the figure, so the captions and indicators come along
    a.page.wait_for_function(
        "() => document.fullscreenElement?.id === 'remote-figure'", timeout=UI_MS
    )
    a.page.click("#exit-fullscreen")  # the page's own buttons are under the fullscreen video
    a.page.wait_for_function("() => document.fullscreenElement === null", timeout=UI_MS)
    # The button is hidden on `fullscreenchange`, which may come just after: wait for it.
    a.page.wait_for_selector("#exit-fullscreen", state="hidden", timeout=UI_MS)
    a.page.click("#pip")
    a.page.wait_for_function(
        "() => document.pictureInPictureElement?.id === 'remoteVideo'", timeout=UI_MS
    )
    a.page.click("#pip")
    a.page.wait_for_function("() => document.pictureInPictureElement === null", timeout=UI_MS)


def test_normal_call_is_clean_under_the_pages_content_security_policy(
    open_page: OpenPage, site_url: str
) -> None:
    a = open_page(site_url + "/", RECORD_CSP)
    # The policy is on: an inline script is refused and reported.
    with (
        a.page.expect_console_message(lambda m: "CSP violation" in m.text),
        a.page.expect_console_message(lambda m: "Content Security Policy" in m.text),
    ):
        a.evaluate(
            """() => { const s = document.createElement('script');
                       s.textContent = 'window.__inlineRan = true'; document.body.append(s); }"""
        )
    a.page.wait_for_function("() => window.__csp.length > 0", timeout=UI_MS, polling=POLL_MS)
    assert a.evaluate("window.__inlineRan === undefined") is True
    a.evaluate("window.__csp = []")
    a.console.clear()  # seen and expected: the fixture's own check must not fail this test
    # The favicon is the page's own (no 404 for /favicon.ico in the console).
    icon = a.evaluate(
        """async () => { const link = document.querySelector('link[rel=icon]');
                         const r = await fetch(link.href);
                         return [r.status, r.headers.get('content-type')]; }"""
    )
    assert icon == [200, "image/svg+xml"]
    checked_from = {id(a): len(a.console)}  # the console from here on must stay clean

    b = open_page(a.share_link(), RECORD_CSP)
    for page in (a, b):
        page.wait_connected()
    for page in (a, b):
        page.wait_media_flowing()
        # The call's timer runs, and the connection's quality is shown.
        page.page.wait_for_function(
            """() => { const t = document.getElementById('call-timer');
                       return !t.hidden && t.textContent !== '0:00'; }""",
            timeout=UI_MS,
            polling=POLL_MS,
        )
        page.page.wait_for_selector("#quality:not([hidden])", timeout=UI_MS)
        assert page.page.get_attribute("#quality", "data-level") in ("good", "fair", "poor")
    a.send_chat("hello")
    b.wait_chat_from_peer("hello")
    b.page.click("#hang-up")
    a.wait_status("peer left")
    b.wait_status("You left the call")
    for page in (a, b):
        assert page.evaluate("window.__csp") == []
        console = page.console[checked_from.get(id(page), 0) :]
        errors = [line for line in console if line.startswith("error:")]
        assert errors == [], errors


# Fully inside the viewport, with the page scrolled to the top.
ON_SCREEN = """ids => ids.filter((id) => {
  const r = document.getElementById(id).getBoundingClientRect();
  return !(r.width > 0 && r.top >= 0 && r.left >= 0
           && r.bottom <= window.innerHeight && r.right <= window.innerWidth);
})"""


@pytest.mark.parametrize(
    ("width", "height"), [(740, 360), (844, 390), (1280, 560), (1024, 480), (390, 844)]
)
def test_call_controls_stay_on_screen(
    open_page: OpenPage, site_url: str, width: int, height: int
) -> None:
    """Phone landscape, short windows, and a phone upright (where the page scrolls, but
    the buttons still fit in the first screenful)."""
    a = open_page(site_url + "/")
    a.share_link()
    a.page.set_viewport_size({"width": width, "height": height})
    a.page.wait_for_selector("#mute-mic:enabled", timeout=UI_MS)
    a.evaluate("window.scrollTo(0, 0)")
    controls = ["mute-mic", "camera-off", "share-screen", "send-video", "hang-up"]
    assert a.evaluate(ON_SCREEN, controls) == []


def test_dark_mode_follows_the_system(open_page: OpenPage, site_url: str) -> None:
    a = open_page(site_url + "/")
    a.share_link()
    background = "() => getComputedStyle(document.body).backgroundColor"
    light = a.evaluate(background)
    a.page.emulate_media(color_scheme="dark")
    a.page.wait_for_function(f"b => ({background})() !== b", arg=light, timeout=UI_MS)
    r, g, b = (int(x) for x in a.evaluate(background).strip("rgb()").split(",")[:3])
    assert r + g + b < 3 * 64, a.evaluate(background)  # a dark background
