"""The phone page's in-call extras: the peer's mute and camera state, files, call info.

Two people on www/phone.html in a real call (headless Chromium, fake camera and
microphone, a real rtcserver). The pages talk over the call's "control" data
channel (docs/PROTOCOL.md, "Between the peers"), beside the "text" chat channel:
media-state for the indicators, file-offer / accept / cancel / received for files,
whose bytes go over "file:<id>" channels. Files are compared by SHA-256 in both
pages and in Python.
"""

from __future__ import annotations

from pathlib import Path

from tests.browser import test_file_transfer as transfers
from tests.browser.callpage import CONNECT_MS, POLL_MS, UI_MS
from tests.browser.phonepage import PhonePage
from tests.browser.test_file_transfer import MB, SHA256_HEX, TRANSFER_MS, make_file, row
from tests.browser.test_phone_call import OpenPhone, open_phone, ring, server

__all__ = ["open_phone", "server"]  # fixtures, used by name

# Every progress value each page reports, per transfer, and each sent File (to hash).
RECORD_PROGRESS = """() => {
  window.__progress = {};
  window.__sentFiles = {};
  window.phoneFiles.addEventListener('update', (e) => {
    const t = e.detail;
    (window.__progress[t.id] = window.__progress[t.id] || []).push(t.bytes);
    if (t.file) window.__sentFiles[t.id] = t.file;
  });
}"""


def in_call(open_phone: OpenPhone, media: str) -> tuple[PhonePage, PhonePage]:
    """alice calls bob with `media`, bob accepts; both connected, control channels open."""
    alice, bob = open_phone("alice"), open_phone("bob")
    alice.wait_user("bob")
    ring(alice, bob, "bob", media=media)
    bob.page.click("#accept")
    for phone in (alice, bob):
        phone.wait_connected()
        phone.page.wait_for_function(
            "() => window.phone.controlChannel?.readyState === 'open'"
            " && window.phone.dc?.readyState === 'open'",
            timeout=CONNECT_MS,
            polling=POLL_MS,
        )
        phone.page.wait_for_selector("#file-input:enabled", timeout=UI_MS)
        phone.evaluate(RECORD_PROGRESS)
    return alice, bob


def visible(phone: PhonePage, selector: str, shown: bool = True) -> None:
    phone.page.wait_for_selector(selector, state="visible" if shown else "hidden", timeout=UI_MS)


def wait_call_info(phone: PhonePage) -> None:
    """The call timer counts (it changes) and the quality indicator names a level."""
    visible(phone, "#call-timer")
    first = phone.page.inner_text("#call-timer")
    phone.page.wait_for_function(
        "t => document.getElementById('call-timer').textContent !== t",
        arg=first,
        timeout=UI_MS,
        polling=POLL_MS,
    )
    visible(phone, "#quality")
    level = phone.evaluate("document.getElementById('quality').dataset.level")
    assert level in ("good", "fair", "poor")
    assert phone.page.inner_text("#quality").endswith("connection")


# ----------------------------------------------------------- mute, camera off


def test_peer_mute_and_camera_off_show_and_clear_in_a_video_call(open_phone: OpenPhone) -> None:
    alice, bob = in_call(open_phone, "video")
    for selector in ("#peer-muted", "#peer-camera-off", "#peer-sharing"):
        assert bob.page.is_hidden(selector)
        assert alice.page.is_hidden(selector)

    alice.page.click("#mute-mic")
    visible(bob, "#peer-muted")
    assert bob.page.inner_text("#peer-muted") == "Peer muted"
    assert bob.page.is_hidden("#peer-camera-off")
    assert alice.page.is_hidden("#peer-muted")  # only the peer is told
    alice.page.click("#mute-mic")
    visible(bob, "#peer-muted", shown=False)

    alice.page.click("#camera-off")
    visible(bob, "#peer-camera-off")
    assert bob.page.is_hidden("#peer-muted")
    alice.page.click("#camera-off")
    visible(bob, "#peer-camera-off", shown=False)

    # The other way, and a shared screen is named too.
    bob.page.click("#mute-mic")
    visible(alice, "#peer-muted")
    alice.page.click("#share-screen")
    visible(bob, "#peer-sharing")
    assert bob.page.inner_text("#peer-sharing") == "Peer is sharing their screen"
    alice.page.click("#share-screen")
    visible(bob, "#peer-sharing", shown=False)

    for phone in (alice, bob):
        wait_call_info(phone)

    # Chat still goes over its own channel, as plain text.
    alice.send_text("still talking")
    bob.wait_text_from("alice", "still talking")

    # Hanging up clears the indicators and the call info.
    alice.page.click("#hang-up")
    for phone in (alice, bob):
        phone.wait_directory()
        for selector in ("#peer-muted", "#call-timer", "#quality"):
            assert phone.page.is_hidden(selector)


def test_peer_mute_shows_in_a_voice_call(open_phone: OpenPhone) -> None:
    alice, bob = in_call(open_phone, "audio")
    bob.page.click("#mute-mic")
    visible(alice, "#peer-muted")
    assert alice.page.is_hidden("#peer-camera-off")  # a voice call has no camera to be off
    bob.page.click("#mute-mic")
    visible(alice, "#peer-muted", shown=False)
    for phone in (alice, bob):
        wait_call_info(phone)


# ---------------------------------------------------------------------- files


FILES = "phoneFiles"  # the phone page's transfer list (window.phoneFiles)


def offer(sender: PhonePage, receiver: PhonePage, path: Path) -> str:
    return transfers.offer(sender, receiver, path, files=FILES)


def wait_state(phone: PhonePage, transfer_id: str, state: str, timeout: int = UI_MS) -> None:
    transfers.wait_state(phone, transfer_id, state, timeout, files=FILES)


def sha256_of_received(phone: PhonePage, transfer_id: str) -> str:
    return str(
        phone.evaluate(
            f"async id => ({SHA256_HEX})(window.phoneFiles.transfers.get(id).blob)", transfer_id
        )
    )


def send_and_check(
    sender: PhonePage, receiver: PhonePage, path: Path, expected: str, progress: bool = True
) -> str:
    """Offer, accept, wait for the end; the same SHA-256 on both pages; with `progress`,
    steps of progress on both (a file of a few chunks may move in one step)."""
    size = path.stat().st_size
    tid = offer(sender, receiver, path)
    assert receiver.page.inner_text(f"{row(tid)} .name") == path.name
    assert receiver.page.is_visible(f"{row(tid)} button.accept")
    assert receiver.page.is_visible(f"{row(tid)} button.decline")
    receiver.page.click(f"{row(tid)} button.accept")
    wait_state(receiver, tid, "done", TRANSFER_MS)
    wait_state(sender, tid, "done")
    sent = sender.evaluate(f"async id => ({SHA256_HEX})(window.__sentFiles[id])", tid)
    assert sent == sha256_of_received(receiver, tid) == expected
    assert receiver.evaluate("id => window.phoneFiles.transfers.get(id).blob.size", tid) == size
    for phone in (sender, receiver):
        steps = [n for n in phone.evaluate("id => window.__progress[id]", tid) if 0 < n < size]
        assert steps == sorted(steps)
        if progress:
            assert len(set(steps)) >= 2, steps[:20]
            assert phone.evaluate(f"document.querySelector('{row(tid)} progress').max") == size
        assert phone.evaluate(f"document.querySelector('{row(tid)} progress').value") == size
    assert sender.page.inner_text(f"{row(tid)} .state") == "Sent"
    assert receiver.page.inner_text(f"{row(tid)} .state") == "Received"
    link = receiver.page.locator(f"{row(tid)} a.download")
    assert link.is_visible()
    assert link.get_attribute("download") == path.name
    assert (link.get_attribute("href") or "").startswith("blob:")
    return tid


def cancel_midway(canceller: PhonePage, transfer_id: str) -> None:
    transfers.cancel_midway(canceller, transfer_id, files=FILES)


def test_files_in_a_text_call_arrive_whole_and_cancel_leaves_both_usable(
    open_phone: OpenPhone, tmp_path: Path
) -> None:
    alice, bob = in_call(open_phone, "data")
    # A text call sends no media state: nothing shows as muted.
    assert alice.page.is_hidden("#peer-muted") and bob.page.is_hidden("#peer-muted")
    path = tmp_path / "phone chapter 2.bin"
    send_and_check(alice, bob, path, make_file(path, 5 * MB, seed=21))

    # Cancel mid-transfer, from the receiver, then from the sender.
    big = tmp_path / "big.bin"
    make_file(big, 50 * MB, seed=22)
    first = offer(alice, bob, big)
    bob.page.click(f"{row(first)} button.accept")
    cancel_midway(bob, first)
    wait_state(bob, first, "cancelled")
    wait_state(alice, first, "cancelled")
    assert "peer cancelled" in alice.page.inner_text(f"{row(first)} .state")
    second = offer(bob, alice, big)
    alice.page.click(f"{row(second)} button.accept")
    cancel_midway(bob, second)
    wait_state(bob, second, "cancelled")
    wait_state(alice, second, "cancelled")
    assert not alice.page.is_visible(f"{row(second)} a.download")

    # Both pages still work: chat both ways, and a file the other way.
    alice.send_text("after the cancel")
    bob.wait_text_from("alice", "after the cancel")
    bob.send_text("still here")
    alice.wait_text_from("bob", "still here")
    small = tmp_path / "note.txt"
    send_and_check(bob, alice, small, make_file(small, 300_000, seed=23), progress=False)
    for phone in (alice, bob):
        assert phone.evaluate("window.phone.controlChannel.readyState") == "open"
        assert phone.evaluate("[window.phone.dc.label, window.phone.dc.readyState]") == [
            "text",
            "open",
        ]
        wait_call_info(phone)


def test_file_in_a_video_call_arrives_whole(open_phone: OpenPhone, tmp_path: Path) -> None:
    alice, bob = in_call(open_phone, "video")
    path = tmp_path / "holiday.bin"
    send_and_check(bob, alice, path, make_file(path, 5 * MB, seed=31))
    alice.wait_video_flowing()
    bob.wait_video_flowing()
    # Hanging up mid-offer ends it on both sides, and the picker is off between calls.
    tid = offer(alice, bob, path)
    bob.page.click("#hang-up")
    for phone in (alice, bob):
        phone.wait_directory()
        wait_state(phone, tid, "failed")
        assert phone.page.is_disabled("#file-input")
