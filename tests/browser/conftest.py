"""Fixtures for the browser tests: Debian's Chromium driven by Playwright (sync API).

One browser per session; every page gets its own browser context (a separate
profile: its own cookies, permissions and media devices), so two pages are two
independent people. The server is a real `python -m rtcserver` subprocess on an
ephemeral port (tests/support/process.py).

Media stays on 127.0.0.1, twice over: Chromium runs in a network namespace that
has only `lo` (loopback_gate.py explains why and how the pages still reach the
server), and the pages only signal 127.0.0.1 candidates (LOOPBACK_ONLY).
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser import loopback_gate
from tests.browser.callpage import LOOPBACK_ONLY, UI_MS, CallPage
from tests.support.process import ServerProcess, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    # Grants getUserMedia and getDisplayMedia (a fake 1280x720 screen, no picker) and
    # reports raw host IPs. See docs/BROWSER-TESTS.md.
    "--use-fake-ui-for-media-stream",
    # Test-pattern cameras, beeping microphones. Three cameras, as fake_device_1 is no
    # use: a <video> plays it, but a peer connection sends none of its frames (seen on
    # Chromium 156; likely its pixel format, Y16, a depth camera's). Tests use 0 and 2.
    "--use-fake-device-for-media-stream=device-count=3",
    "--allow-loopback-in-peer-connection",  # without it, no candidates on a lo-only path
    "--disable-gpu",
    "--disable-quic",
]
GATE_STARTUP_S = 10.0

OpenPage = Callable[..., CallPage]


@attrs.frozen
class LoopbackNamespace:
    gate_url: str  # where, inside the namespace, the server is reached
    chromium: Path  # a wrapper that starts Chromium inside the namespace
    bridge: loopback_gate.Bridge
    # A command prefix that runs a program inside the namespace (nsenter ... --): a TURN
    # server the browsers must reach, say. It execs, so the pid is the program's own.
    enter: tuple[str, ...]


def _namespace_commands(pid_placeholder: str) -> tuple[list[str], str]:
    """(command that creates the namespace, nsenter arguments that join it)."""
    if os.geteuid() == 0:
        return ["unshare", "--net", "--"], f"--net=/proc/{pid_placeholder}/ns/net"
    # Without root, a user namespace grants the right to make a network namespace.
    return (
        ["unshare", "--user", "--map-root-user", "--net", "--"],
        f"--target={pid_placeholder} --user --net --preserve-credentials",
    )


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                break
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
    return line


@pytest.fixture(scope="session")
def loopback_namespace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackNamespace]:
    root = tmp_path_factory.mktemp("netns")
    bridge = loopback_gate.Bridge(str(root / "bridge.sock"))
    create, join = _namespace_commands("{pid}")
    gate = subprocess.Popen(
        [*create, sys.executable, loopback_gate.__file__, bridge.path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        line = _read_line(gate, GATE_STARTUP_S)
        assert line.startswith(b"gate listening on 127.0.0.1:"), (
            f"could not start the loopback-only namespace (needs unshare/nsenter from "
            f"util-linux, and root or user namespaces): {line!r}"
        )
        port = int(line.rsplit(b":", 1)[1])
        enter = ("nsenter", *join.format(pid=gate.pid).split(), "--")
        wrapper = root / "chromium-in-namespace"
        wrapper.write_text(f'#!/bin/sh\nexec {" ".join(enter)} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        yield LoopbackNamespace(f"http://127.0.0.1:{port}", wrapper, bridge, enter)
    finally:
        assert gate.stdin is not None
        gate.stdin.close()
        try:
            gate.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gate.kill()
            gate.wait()
        if gate.stdout is not None:
            gate.stdout.close()
        bridge.close()


@pytest.fixture(scope="session")
def browser_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """HOME, TMPDIR and XDG_* under the test's tmp dir: Chromium writes into all of them."""
    root = tmp_path_factory.mktemp("chromium-home")
    env = {}
    for name in ("HOME", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        path = root / name.lower()
        path.mkdir()
        env[name] = str(path)
    runtime = root / "xdg_runtime"
    runtime.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


# Module scope: Playwright's sync API allows one live instance per thread, and other
# directories (tests/cluster) reuse this fixture under their own name.
@pytest.fixture(scope="module")
def browser(
    request: pytest.FixtureRequest,
    browser_home: dict[str, str],
    loopback_namespace: LoopbackNamespace,
) -> Iterator[Browser]:
    """Chromium with CHROMIUM_ARGS, or with a test module's own `CHROMIUM_ARGS` list
    (one that must see the browser refuse the camera, say)."""
    args = getattr(request.module, "CHROMIUM_ARGS", CHROMIUM_ARGS)
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run tools/install-system-deps.sh"
    # The Playwright driver (a Node process) inherits os.environ: give it our TMPDIR.
    saved_tmpdir = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = browser_home["TMPDIR"]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=loopback_namespace.chromium,
                args=args,
                env={**os.environ, **browser_home},
            )
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if saved_tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_tmpdir


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # No STUN: nothing may leave the machine; host candidates on 127.0.0.1 suffice.
    with running_server("--stun", "") as srv:
        yield srv


@pytest.fixture(scope="module")
def site_url(server: ServerProcess, loopback_namespace: LoopbackNamespace) -> Iterator[str]:
    """The server's address as the browser sees it (through the namespace's gate)."""
    loopback_namespace.bridge.target = (server.host, server.port)
    yield loopback_namespace.gate_url
    loopback_namespace.bridge.target = None


@pytest.fixture
def bridge(loopback_namespace: LoopbackNamespace) -> Iterator[loopback_gate.Bridge]:
    """The bridge every page reaches the server through: `sever` cuts connections,
    `refusing` keeps new ones out (a network that is down) until the test ends."""
    bridge = loopback_namespace.bridge
    yield bridge
    bridge.refusing = False


@pytest.fixture
def open_page(browser: Browser, server: ServerProcess) -> Iterator[OpenPage]:
    """`open_page(url, *init_scripts)`: a new person (browser context) on `url`.

    Every page only signals loopback candidates. At teardown all pages are
    closed, and any uncaught JavaScript exception in them fails the test.
    """
    pages: list[CallPage] = []

    def open_(url: str, *init_scripts: str) -> CallPage:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(UI_MS)
        page.add_init_script(LOOPBACK_ONLY)
        for script in init_scripts:
            page.add_init_script(script)
        call_page = CallPage(context, page)
        pages.append(call_page)
        return call_page.goto(url)

    yield open_
    # Printed output is shown only for a failing test: what each page and the server said.
    for number, p in enumerate(pages):
        print(f"--- page {number} ({p.page.url}) console:", *p.console, sep="\n  ")
    print("--- server output (tail):", server.read_output()[-4000:].decode(errors="replace"))
    errors = [error for p in pages for error in p.errors]
    violations = [v for p in pages for v in p.csp_violations]
    console_errors = [e for p in pages for e in p.console_errors]
    for p in pages:
        p.close()
    assert not errors, f"uncaught JavaScript exceptions: {errors}"
    # The pages run under the server's Content-Security-Policy: it must never bite.
    assert not violations, f"Content-Security-Policy violations: {violations}"
    assert not console_errors, f"console errors: {console_errors}"
