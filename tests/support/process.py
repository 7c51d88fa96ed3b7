"""Run a real `python -m rtcserver` in a subprocess, on an ephemeral port.

Used by the tests that cannot share the test's own event loop: the browser tests
(Playwright is sync/asyncio, not Trio), signal handling, and multi-node clusters.
The server prints one line, ``rtcserver listening on http://HOST:PORT/``, once its
socket is bound; we wait for that line with a deadline instead of sleeping.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(rb"rtcserver listening on (https?)://([^:/]+):(\d+)/")


@attrs.define
class ServerProcess:
    proc: subprocess.Popen[bytes]
    scheme: str
    host: str
    port: int
    output: bytearray = attrs.field(factory=bytearray)

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        ws = "wss" if self.scheme == "https" else "ws"
        return f"{ws}://{self.host}:{self.port}/ws"

    def read_output(self, timeout: float = 0.0) -> bytes:
        """Collect whatever the server has printed so far (stdout and stderr merged)."""
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if not sel.select(remaining):
                break
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.output += chunk
            if remaining == 0.0:
                continue
        sel.close()
        return bytes(self.output)

    def wait_for_output(self, pattern: bytes, timeout: float) -> bytes:
        """Wait until the server's output matches `pattern` (a regex), or fail."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if regex.search(self.output):
                return bytes(self.output)
            self.read_output(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
            if self.proc.poll() is not None:
                self.read_output()
                break
        if regex.search(self.output):
            return bytes(self.output)
        raise AssertionError(
            f"server output never matched {pattern!r}; output so far:\n"
            + self.output.decode(errors="replace")
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not exit within {timeout}s of signal {sig}") from None


@contextlib.contextmanager
def running_server(
    *args: str,
    env: dict[str, str] | None = None,
    startup_timeout: float = 15.0,
    program: Sequence[str] = (sys.executable, "-m", "rtcserver"),
    cwd: Path = ROOT,
    wrapper: tuple[str, ...] = (),
    workers: str | None = os.environ.get("RTCSERVER_TEST_WORKERS", "1"),
) -> Iterator[ServerProcess]:
    """Start `python -m rtcserver --host 127.0.0.1 --port 0 ARGS` (or another `program`,
        such as an installed `rtcserver` script), yield it, stop it. `wrapper` runs it under
        another command (`prlimit --nofile=...`, say). `workers`: its `--workers`, one
        process unless a test says otherwise or `RTCSERVER_TEST_WORKERS` asks for more (the
    two-worker pass of tools/test.sh); None: the server's own default, `auto`."""
    chosen = () if workers is None or "--workers" in args else ("--workers", workers)
    cmd = [*wrapper, *program, "--host", "127.0.0.1", "--port", "0", *chosen, *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env
    )
    server = ServerProcess(proc=proc, scheme="http", host="127.0.0.1", port=0)
    try:
        out = server.wait_for_output(LISTENING.pattern, startup_timeout)
        match = LISTENING.search(out)
        assert match is not None
        server.scheme = match.group(1).decode()
        server.host = match.group(2).decode()
        server.port = int(match.group(3))
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
