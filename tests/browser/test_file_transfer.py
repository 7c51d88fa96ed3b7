"""Files between the two room pages, over RTCDataChannels (WebRTC Blueprints ch. 2).

A real file on disk goes in through the page's own file picker; the receiver
accepts it after seeing its name, size and type; the bytes are compared by
SHA-256 on both pages and in Python. Cancel from either side, mid-transfer,
leaves both pages able to send again.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from playwright.sync_api import Page

from tests.browser.callpage import POLL_MS, UI_MS, CallPage
from tests.browser.conftest import OpenPage
from tests.browser.test_room_call import start_call

pytestmark = pytest.mark.browser

MB = 1024 * 1024
TRANSFER_MS = 120_000  # 50 MB over loopback takes seconds; a stalled transfer fails here

# Every progress value each page reports, per transfer, and each sent File (to hash).
RECORD_PROGRESS = """() => {
  window.__progress = {};
  window.__sentFiles = {};
  window.files.addEventListener('update', (e) => {
    const t = e.detail;
    (window.__progress[t.id] = window.__progress[t.id] || []).push(t.bytes);
    if (t.file) window.__sentFiles[t.id] = t.file;
  });
}"""

SHA256_HEX = """async (blob) => {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}"""


@pytest.fixture
def call(open_page: OpenPage, site_url: str) -> Iterator[tuple[CallPage, CallPage]]:
    a, b, _ = start_call(open_page, site_url)
    for page in (a, b):
        page.page.wait_for_selector("#file-input:enabled", timeout=UI_MS)
        page.evaluate(RECORD_PROGRESS)
    yield a, b


def make_file(path: Path, size: int, seed: int) -> str:
    """A file of `size` pseudo-random bytes; returns its SHA-256."""
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class FilesPage(Protocol):
    """A page with the shared file-transfer list: the call page, or the phone page."""

    @property
    def page(self) -> Page: ...

    def evaluate(self, expression: str, arg: Any = None) -> Any: ...


def offer(sender: FilesPage, receiver: FilesPage, path: Path, files: str = "files") -> str:
    """Pick `path` on the sender; wait until the receiver is offered it. Returns its id.
    `files` names the page's transfer list (`window.files`; the phone's `phoneFiles`)."""
    before = receiver.evaluate(f"window.{files}.transfers.size")
    sender.page.set_input_files("#file-input", str(path))
    handle = receiver.page.wait_for_function(
        f"""n => {{
          const ts = [...window.{files}.transfers.values()], last = ts[ts.length - 1];
          return ts.length > n && last.state === 'offered' ? last.id : null;
        }}""",
        arg=before,
        timeout=UI_MS,
        polling=POLL_MS,
    )
    transfer_id = handle.json_value()
    assert isinstance(transfer_id, str)
    return transfer_id


def row(transfer_id: str) -> str:
    return f'#transfers li[data-id="{transfer_id}"]'


def wait_state(
    page: FilesPage, transfer_id: str, state: str, timeout: int = UI_MS, files: str = "files"
) -> None:
    page.page.wait_for_function(
        f"([id, s]) => window.{files}.transfers.get(id)?.state === s",
        arg=[transfer_id, state],
        timeout=timeout,
        polling=POLL_MS,
    )


def progress(page: CallPage, transfer_id: str) -> list[int]:
    return list(page.evaluate("id => window.__progress[id] || []", transfer_id))


def test_fifty_megabyte_file_arrives_byte_identical(
    call: tuple[CallPage, CallPage], tmp_path: Path
) -> None:
    a, b = call
    size = 50 * MB
    path = tmp_path / "blueprints chapter 2.txt"
    expected = make_file(path, size, seed=2)
    tid = offer(a, b, path)

    # Before accepting, the receiver sees what is offered: name, size, type.
    assert b.page.inner_text(f"{row(tid)} .name") == path.name
    assert b.page.inner_text(f"{row(tid)} .meta") == "52.4 MB, text/plain"
    assert b.page.is_visible(f"{row(tid)} button.accept")
    assert b.page.is_visible(f"{row(tid)} button.decline")
    assert a.evaluate("id => window.files.transfers.get(id).state", tid) == "offered"

    b.page.click(f"{row(tid)} button.accept")
    wait_state(b, tid, "done", TRANSFER_MS)
    wait_state(a, tid, "done", UI_MS)

    # The same bytes: SHA-256 of the sent File (page A), of the received Blob
    # (page B), and of the file on disk.
    sent = a.evaluate(f"async id => ({SHA256_HEX})(window.__sentFiles[id])", tid)
    received = b.evaluate(f"async id => ({SHA256_HEX})(window.files.transfers.get(id).blob)", tid)
    assert sent == received == expected
    assert b.evaluate("id => window.files.transfers.get(id).blob.size", tid) == size

    # Progress on both sides: many steps strictly between nothing and everything.
    for page in (a, b):
        steps = [n for n in progress(page, tid) if 0 < n < size]
        assert len(set(steps)) >= 10, (page.page.url, steps[:20])
        assert steps == sorted(steps)
        assert page.evaluate(f"document.querySelector('{row(tid)} progress').value") == size
    # The receiver saves it under its name, from a link to the received Blob.
    link = b.page.locator(f"{row(tid)} a.download")
    assert link.is_visible()
    assert link.get_attribute("download") == path.name
    assert (link.get_attribute("href") or "").startswith("blob:")


def cancel_midway(canceller: FilesPage, transfer_id: str, files: str = "files") -> int:
    """Click Cancel on `canceller` once some, but not all, of the bytes moved. Returns them."""
    handle = canceller.page.wait_for_function(
        f"""id => {{
          const t = window.{files}.transfers.get(id);
          if (t.state !== 'sending' || t.bytes === 0) return null;
          if (t.bytes >= t.size) return -1;
          document.querySelector(`#transfers li[data-id="${{id}}"] button.cancel`).click();
          return t.bytes;
        }}""",
        arg=transfer_id,
        timeout=TRANSFER_MS,
        polling="raf",
    )
    moved = handle.json_value()
    assert isinstance(moved, int) and moved > 0, "the transfer ended before it could be cancelled"
    return moved


def test_cancel_mid_transfer_from_either_side_leaves_both_pages_usable(
    call: tuple[CallPage, CallPage], tmp_path: Path
) -> None:
    a, b = call
    big = tmp_path / "big.bin"
    make_file(big, 50 * MB, seed=3)

    # The receiver cancels.
    first = offer(a, b, big)
    b.page.click(f"{row(first)} button.accept")
    cancel_midway(b, first)
    wait_state(b, first, "cancelled")
    wait_state(a, first, "cancelled")
    assert "peer cancelled" in a.page.inner_text(f"{row(first)} .state")

    # The sender cancels.
    second = offer(a, b, big)
    b.page.click(f"{row(second)} button.accept")
    cancel_midway(a, second)
    wait_state(a, second, "cancelled")
    wait_state(b, second, "cancelled")
    assert not b.page.is_visible(f"{row(second)} a.download")

    # A declined offer ends on both sides too.
    third = offer(b, a, big)
    a.page.click(f"{row(third)} button.decline")
    wait_state(b, third, "declined")

    # Both pages still work: a file each way, and chat.
    small = tmp_path / "note.txt"
    digest = make_file(small, 300_000, seed=4)
    for sender, receiver in ((a, b), (b, a)):
        tid = offer(sender, receiver, small)
        receiver.page.click(f"{row(tid)} button.accept")
        wait_state(receiver, tid, "done", TRANSFER_MS)
        wait_state(sender, tid, "done")
        got = receiver.evaluate(
            f"async id => ({SHA256_HEX})(window.files.transfers.get(id).blob)", tid
        )
        assert got == digest
    a.send_chat("still here")
    b.wait_chat_from_peer("still here")


def test_several_files_picked_or_dropped_each_get_an_offer(
    call: tuple[CallPage, CallPage], tmp_path: Path
) -> None:
    a, b = call
    paths = [tmp_path / "one.txt", tmp_path / "two.txt"]
    digests = [make_file(path, 1000 * (n + 1), seed=10 + n) for n, path in enumerate(paths)]
    a.page.set_input_files("#file-input", [str(p) for p in paths])
    # Two files dropped on the call area, as a person would drag them from a file manager.
    dropped = a.page.evaluate_handle(
        """() => { const dt = new DataTransfer();
                   dt.items.add(new File(['dropped one'], 'drop1.txt', { type: 'text/plain' }));
                   dt.items.add(new File(['dropped two'], 'drop2.txt', { type: 'text/plain' }));
                   return dt; }"""
    )
    a.page.dispatch_event("main.call", "dragover", {"dataTransfer": dropped})
    a.page.dispatch_event("main.call", "drop", {"dataTransfer": dropped})
    b.page.wait_for_function(
        "() => window.files.transfers.size === 4", timeout=UI_MS, polling=POLL_MS
    )
    offers = b.evaluate(
        "() => [...window.files.transfers.values()].map((t) => [t.id, t.name, t.size, t.state])"
    )
    assert [o[1:] for o in offers] == [
        ["one.txt", 1000, "offered"],
        ["two.txt", 2000, "offered"],
        ["drop1.txt", 11, "offered"],
        ["drop2.txt", 11, "offered"],
    ]
    for tid, *_ in offers:
        b.page.click(f"{row(tid)} button.accept")
    for tid, *_ in offers:
        wait_state(b, tid, "done", TRANSFER_MS)
        wait_state(a, tid, "done")
    got = [
        b.evaluate(f"async id => ({SHA256_HEX})(window.files.transfers.get(id).blob)", tid)
        for tid, *_ in offers[:2]
    ]
    assert got == digests
    text = "async id => await window.files.transfers.get(id).blob.text()"
    assert b.evaluate(text, offers[3][0]) == "dropped two"
