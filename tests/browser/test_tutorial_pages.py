"""End to end: the tutorial dialect's own pages (www/tutorial/) in two headless Chromiums.

The pages connect to `ws://localhost:9090`, as the tutorials' clients do. Here the
browsers reach the server through the loopback namespace's gate on another port, so
the test does what an operator on another port would: it copies the pages into a
`--www` directory with that one address changed (on `--port 9090` they run as they are).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.callpage import CONNECT_MS, MEDIA_MS, POLL_MS, UI_MS, CallPage
from tests.browser.conftest import LoopbackNamespace, OpenPage
from tests.browser.phonepage import PhonePage
from tests.support.process import ROOT, ServerProcess, running_server

pytestmark = pytest.mark.browser

ORIGINAL_SERVER = 'const SERVER = "ws://localhost:9090";'

# Remote video frames keep being decoded on the page's own connection
# (`window.tutorial.pc`): the decoded-frame count grew between two stats samples.
# Synchronous on purpose: wait_for_function does not await a promise (an async
# predicate's promise is truthy at once), so each poll starts a getStats and
# judges the samples earlier polls collected.
VIDEO_FLOWING = """() => {
  const pc = window.tutorial.pc;
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


def tutorial_www(root: Path, port: int) -> Path:
    """rtcserver's pages (the phone page among them), with the tutorial pages pointed
    at `ws://localhost:<port>` instead of 9090."""
    www = root / "www"
    shutil.copytree(ROOT / "www", www)
    client = www / "tutorial" / "client.js"
    text = client.read_text()
    assert ORIGINAL_SERVER in text, "the page must connect where the tutorials do"
    client.write_text(text.replace(ORIGINAL_SERVER, f'const SERVER = "ws://localhost:{port}";'))
    return www


@pytest.fixture(scope="module")
def gate_port(loopback_namespace: LoopbackNamespace) -> int:
    port = urlsplit(loopback_namespace.gate_url).port
    assert port is not None
    return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gate_port: int) -> Iterator[ServerProcess]:
    www = tutorial_www(tmp_path_factory.mktemp("tutorial"), gate_port)
    with running_server("--stun", "", "--www", str(www)) as srv:
        yield srv


@pytest.fixture
def page_url(site_url: str, gate_port: int) -> str:
    # localhost, as the page's WebSocket: the same origin (the Origin check, CSP 'self').
    del site_url  # it points the gate at this module's server
    return f"http://localhost:{gate_port}/tutorial/index.html"


def wait_connected(person: CallPage) -> None:
    """Until the page's WebSocket is open, as its console says. The tutorial's page
    sends LOGIN on the click without checking (a person never types that fast; a test
    does: "Still in CONNECTING state")."""
    said = "Connected to the signaling server"
    deadline = time.monotonic() + UI_MS / 1000
    while not any(said in line for line in person.console):
        assert time.monotonic() < deadline, f"the page never said {said!r}: {person.console}"
        person.page.wait_for_timeout(POLL_MS)


def sign_in(open_page: OpenPage, url: str, name: str) -> CallPage:
    person = open_page(url)
    wait_connected(person)
    person.page.fill("#usernameInput", name)
    person.page.click("#loginBtn")
    person.page.wait_for_selector("#callPage", state="visible", timeout=UI_MS)
    person.page.wait_for_function(
        "() => document.getElementById('localVideo').videoWidth > 0",
        timeout=MEDIA_MS,
        polling=POLL_MS,
    )
    return person


def call(caller: CallPage, callee_name: str) -> None:
    caller.page.fill("#callToUsernameInput", callee_name)
    caller.page.click("#callBtn")


def wait_video(person: CallPage) -> None:
    person.page.wait_for_function(VIDEO_FLOWING, timeout=MEDIA_MS, polling=250)


def wait_status(person: CallPage, text: str) -> None:
    person.page.wait_for_function(
        "t => document.getElementById('callStatus').textContent.includes(t)",
        arg=text,
        timeout=CONNECT_MS,
        polling=POLL_MS,
    )


def chat(sender: CallPage, receiver: CallPage, text: str, sender_name: str) -> None:
    sender.page.wait_for_selector("#msgInput:enabled", timeout=CONNECT_MS)
    sender.page.fill("#msgInput", text)
    sender.page.press("#msgInput", "Enter")
    receiver.page.wait_for_function(
        """t => [...document.querySelectorAll('#chatArea li.theirs')]
                  .some((e) => e.textContent === t)""",
        arg=f"{sender_name}: {text}",
        timeout=UI_MS,
        polling=POLL_MS,
    )


def test_two_tutorial_pages_call_by_name_see_each_other_chat_and_hang_up(
    open_page: OpenPage, page_url: str
) -> None:
    alice, bob = sign_in(open_page, page_url, "alice"), sign_in(open_page, page_url, "bob")
    call(alice, "bob")
    wait_video(alice)
    wait_video(bob)
    wait_status(bob, "In a call with alice")
    chat(alice, bob, "hello bob", "alice")
    chat(bob, alice, "hi alice <b>", "bob")  # text, never markup
    bob.page.click("#hangUpBtn")
    wait_status(bob, "You hung up")
    wait_status(alice, "bob left")
    assert alice.evaluate("window.tutorial.pc === null && window.tutorial.connectedUser === null")
    # The same two call again, the other way round.
    call(bob, "alice")
    wait_video(alice)
    wait_video(bob)


def test_a_closed_tab_gives_its_partner_leave(open_page: OpenPage, page_url: str) -> None:
    carol, dave = sign_in(open_page, page_url, "carol"), sign_in(open_page, page_url, "dave")
    call(carol, "dave")
    wait_video(dave)
    carol.close()
    wait_status(dave, "carol left")
    assert dave.evaluate("window.tutorial.pc === null")
    # carol's name is free again at once: no session waited for her.
    carol_again = sign_in(open_page, page_url, "carol")
    call(dave, "carol")
    wait_video(carol_again)


def test_a_taken_name_and_an_unknown_callee_are_told(open_page: OpenPage, page_url: str) -> None:
    sign_in(open_page, page_url, "erin")
    second = open_page(page_url)
    second.page.fill("#usernameInput", "erin")
    second.page.click("#loginBtn")
    second.page.wait_for_function(
        "() => document.getElementById('loginError').textContent.includes('different username')",
        timeout=UI_MS,
        polling=POLL_MS,
    )
    frank = sign_in(open_page, page_url, "frank")
    call(frank, "nobody")
    wait_status(frank, "no user named 'nobody' is logged in")


def test_the_phone_page_lists_tutorial_users_and_their_calls(
    open_page: OpenPage, page_url: str, site_url: str
) -> None:
    phone = PhonePage(open_page(site_url + "/phone.html")).log_in("paula")
    gina, hank = sign_in(open_page, page_url, "gina"), sign_in(open_page, page_url, "hank")
    phone.wait_user("gina")
    phone.wait_user("hank")
    call(gina, "hank")
    wait_video(hank)
    phone.wait_user("gina", "busy")
    phone.wait_user("hank", "busy")
    hank.page.click("#hangUpBtn")
    phone.wait_user("gina")
    phone.wait_user("hank")
    gina.close()
    phone.wait_user_gone("gina")
    phone.evaluate("() => window.phone.logout()")
