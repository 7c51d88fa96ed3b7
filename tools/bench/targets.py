"""The servers under test: a local rtcserver, the local Node baseline, or a URL.

Local servers are started fresh for every measurement, so that one scenario's
leftovers (heap growth, fragmentation, lingering sockets) never colour the next one,
and are stopped by their own PID. Their output goes to a log file, never to a pipe
nobody reads, so a chatty server can never block on its own logging.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import procstat
from .progress import say

ROOT = Path(__file__).resolve().parents[2]
BASELINE_DIR = ROOT / "tools" / "baseline"
LISTENING = re.compile(rb"listening on (https?)://([^/\s]+):(\d+)/")
SERVER_CORE = 0
LOADGEN_CORE = 1


@dataclass
class Target:
    """One server being measured; `pid` is known only when it runs on this machine."""

    name: str
    ws_url: str
    http_url: str | None
    pid: int | None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    def healthz(self) -> dict[str, Any] | None:
        if self.http_url is None:
            return None
        try:
            with urllib.request.urlopen(self.http_url + "/healthz", timeout=5) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


# A Launcher starts a fresh Target (or hands back the remote one) for one measurement.
Launcher = Callable[[], Target]


def _pin_to_server_core() -> None:
    os.sched_setaffinity(0, {SERVER_CORE})


def _launch(
    name: str, cmd: list[str], cwd: Path, log_path: Path, pin: bool, timeout: float = 60.0
) -> Target:
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it; we close our copy below
    # Every load-generator connection comes from 127.0.0.1: lift the per-address limit
    # (an environment variable, which servers from before that option simply ignore).
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "RTCSERVER_MAX_CONNECTIONS_PER_ADDRESS": "100000",
    }
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        # Pin before exec, so every thread the server ever starts inherits the mask.
        preexec_fn=_pin_to_server_core if pin else None,
    )
    log.close()
    target = Target(name, "", None, proc.pid, proc, log_path)
    deadline = time.monotonic() + timeout
    while True:
        match = LISTENING.search(log_path.read_bytes())
        if match:
            scheme, host, port = (g.decode() for g in match.groups())
            ws = "wss" if scheme == "https" else "ws"
            target.ws_url = f"{ws}://{host}:{port}/ws"
            target.http_url = f"{scheme}://{host}:{port}"
            _settle(proc.pid)
            return target
        if proc.poll() is not None or time.monotonic() > deadline:
            target.stop()
            raise RuntimeError(
                f"{name} did not start ({' '.join(cmd)}); its output:\n"
                + log_path.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.02)


# A server that says "listening" may still be starting: with --workers its supervisor
# starts a spare worker ahead (a Python's imports: a second of CPU). Measuring begins
# once its processes are quiet, so no start-up cost lands in a measuring window.
SETTLE_CPU = 0.05  # cores
SETTLE_TIMEOUT = 10.0


def _settle(pid: int) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    before = procstat.cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = procstat.cpu_seconds(pid)
        if now - before < SETTLE_CPU * 0.2:
            return
        before = now


def rtcserver_launcher(
    log_dir: Path,
    pin: bool,
    extra_args: list[str],
    source: Path | None = None,
    placement: str = "",
) -> Launcher:
    """`python -m rtcserver` from `source` (a checkout; default: the one we are in).

    `python -m` puts its working directory first on sys.path, so another tree (a
    worktree of a branch, an exported older commit) is measured with the same Python.
    """
    cmd = [
        sys.executable,
        "-m",
        "rtcserver",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--rate-limit",
        "0",
        "--max-connections",
        "100000",
        *extra_args,
    ]
    counter = iter(range(1_000_000))

    def launch() -> Target:
        log_path = log_dir / f"rtcserver-{next(counter)}.log"
        target = _launch("rtcserver", cmd, source or ROOT, log_path, pin)
        if placement:  # a fragment: read by the load generator, never sent
            target.ws_url += f"#{placement}"
        return target

    return launch


def baseline_launcher(log_dir: Path, pin: bool) -> Launcher:
    node = shutil.which("node")
    assert node is not None
    cmd = [node, str(BASELINE_DIR / "relay.js"), "--host", "127.0.0.1", "--port", "0"]
    counter = iter(range(1_000_000))

    def launch() -> Target:
        return _launch(
            "baseline", cmd, BASELINE_DIR, log_dir / f"baseline-{next(counter)}.log", pin
        )

    return launch


def remote_launcher(url: str, server_pid: int | None) -> Launcher:
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    http_url = f"{scheme}://{parts.netloc}"
    path = parts.path or "/"
    if path == "/":
        url = url.rstrip("/") + "/ws"

    def launch() -> Target:
        return Target("server", url, http_url, server_pid)

    return launch


def baseline_ready(install: bool = True) -> tuple[bool, str]:
    """Is the Node baseline runnable? Runs `npm install` once if only that is missing."""
    if shutil.which("node") is None:
        return False, "node is not installed: the baseline is skipped"
    if (BASELINE_DIR / "node_modules" / "ws").is_dir():
        return True, ""
    npm = shutil.which("npm")
    if not install or npm is None:
        return False, f"baseline needs its packages: run `npm install` in {BASELINE_DIR}"
    say(f"installing the baseline's packages (npm install in {BASELINE_DIR}) ...")
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=BASELINE_DIR,
            check=True,
            timeout=180,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return False, f"npm install failed in {BASELINE_DIR} ({exc}): the baseline is skipped"
    return True, ""
