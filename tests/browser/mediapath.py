"""Breaking a call's media path while its signaling still flows, for ICE-restart tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser.callpage import CONNECT_MS, POLL_MS
from tests.browser.conftest import LoopbackNamespace


def ufrag_of(pc: str) -> str:
    """A page function of one argument ("localDescription" or "remoteDescription"): the
    ICE username fragment of that description of the peer connection `pc` (a JavaScript
    expression). An ICE restart changes it."""
    return f"""(which) => {{
  const d = ({pc})[which];
  const m = d && d.sdp.match(/^a=ice-ufrag:(\\S+)/m);
  return m ? m[1] : null;
}}"""


@contextlib.contextmanager
def udp_dropped(namespace: LoopbackNamespace) -> Iterator[None]:
    """Every UDP packet inside the browsers' namespace is dropped (TCP, the signaling,
    still flows): the media path breaks as on a network change, the server stays
    reachable. tc: UDP goes to an HTB class whose queue holds nothing."""
    # tools/install-system-deps.sh installs iproute2: its absence is a failure.
    assert shutil.which("tc") is not None, "tc (iproute2) is needed to break the media path"

    def tc(*args: str) -> None:
        subprocess.run([*namespace.enter, "tc", *args], check=True, capture_output=True)

    try:
        tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10")
    except subprocess.CalledProcessError as err:
        pytest.fail(f"no HTB qdisc here: {err.stderr.decode(errors='replace').strip()}")
    try:
        tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit")
        tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit")
        tc("qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "pfifo", "limit", "0")
        tc(
            "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
            "u32", "match", "ip", "protocol", "17", "0xff", "classid", "1:20",
        )  # fmt: skip
        yield
    finally:
        tc("qdisc", "del", "dev", "lo", "root")


def wait_ice_restart_while_cut(namespace: LoopbackNamespace, caller: Page, pc: str) -> None:
    """Cut the media path; wait until `caller`'s peer connection `pc` (a JavaScript
    expression) goes disconnected or failed, then until its ICE-restart offer went
    through the server and was answered, the path still down; then mend the path."""
    ufrag = ufrag_of(pc)
    before = caller.evaluate(ufrag, "localDescription")
    with udp_dropped(namespace):
        caller.wait_for_function(
            f"s => s.includes(({pc}).connectionState)",
            arg=["disconnected", "failed"],
            timeout=CONNECT_MS,
            polling=POLL_MS,
        )
        caller.wait_for_function(
            f"u => ({ufrag})('localDescription') !== u && ({pc}).signalingState === 'stable'",
            arg=before,
            timeout=CONNECT_MS,
            polling=POLL_MS,
        )
