"""A private coturn for tests: its own config, ports, database, log and pid file, all in a
temporary directory, on 127.0.0.1 only.

It never touches a system-wide coturn: the listening port is a free ephemeral one, the
config file is passed with `-c`, and only the process we started is signalled. Ready
means "answers a STUN Binding request", polled with a deadline; stop is SIGTERM, then
SIGKILL if coturn has not exited by its deadline.

`enter` runs coturn in another network namespace (a command prefix such as
`nsenter --net=/proc/PID/ns/net --`, which execs): the browser tests' loopback-only
namespace, whose 127.0.0.1 is not ours. Readiness is then probed from in there too, by
running this module as a script under the same prefix:
`python -m tests.support.coturn HOST PORT TIMEOUT` exits 0 once HOST:PORT answers STUN.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from tests.support.stun import BINDING_SUCCESS, StunClient

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
RELAY_PORTS = 32


@attrs.frozen
class Coturn:
    host: str
    port: int
    realm: str
    secret: str = attrs.field(repr=False)
    relay_ports: range
    proc: subprocess.Popen[bytes]
    log_file: Path
    stdout_file: Path

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def turn_url(self) -> str:
        return f"turn:{self.host}:{self.port}?transport=udp"

    def log(self) -> str:
        """Everything coturn wrote so far, for assertion messages."""
        parts = []
        for path in (self.stdout_file, self.log_file):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
            if port != 30000:  # the default rtcserver port is never used by tests
                return port


def config_text(tmp_dir: Path, port: int, relay_ports: range, realm: str, secret: str) -> str:
    lines = [
        f"listening-ip={HOST}",
        f"relay-ip={HOST}",
        f"listening-port={port}",
        f"min-port={relay_ports.start}",
        f"max-port={relay_ports.stop - 1}",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        f"realm={realm}",
        "no-tls",
        "no-dtls",
        "no-cli",
        "no-rfc5780",
        "allow-loopback-peers",
        "fingerprint",
        "simple-log",
        "verbose",
        f"log-file={tmp_dir / 'turnserver.log'}",
        f"userdb={tmp_dir / 'turnserver.sqlite'}",
        f"pidfile={tmp_dir / 'turnserver.pid'}",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_coturn(
    tmp_dir: Path,
    secret: str,
    realm: str = "rtcserver.test",
    startup_timeout: float = 15.0,
    stop_timeout: float = 10.0,
    enter: Sequence[str] = (),
) -> Iterator[Coturn]:
    """Start a private coturn in `tmp_dir`, wait until it answers STUN, yield it, stop it.

    `enter`: a command prefix that runs coturn (and the readiness probe) in another
    network namespace; see the module docstring.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # Relay ports are only bound on allocation, and coturn skips busy ones in the range.
    base = random.randrange(49152, 65535 - RELAY_PORTS)
    relay_ports = range(base, base + RELAY_PORTS)
    conf = tmp_dir / "turnserver.conf"
    conf.write_text(config_text(tmp_dir, port, relay_ports, realm, secret))
    stdout_file = tmp_dir / "turnserver.stdout"
    with stdout_file.open("wb") as out:
        proc = subprocess.Popen(
            [*enter, TURNSERVER, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_dir,
        )
    server = Coturn(
        host=HOST,
        port=port,
        realm=realm,
        secret=secret,
        relay_ports=relay_ports,
        proc=proc,
        # simple-log: coturn writes exactly this file, not one with a date suffix.
        log_file=tmp_dir / "turnserver.log",
        stdout_file=stdout_file,
    )
    try:
        if enter:
            _wait_until_ready_elsewhere(server, startup_timeout, enter)
        else:
            _wait_until_ready(server, startup_timeout)
        yield server
    finally:
        _stop(proc, stop_timeout)


def _wait_until_ready(server: Coturn, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with StunClient(server.address) as client:
        while (remaining := deadline - time.monotonic()) > 0:
            if server.proc.poll() is not None:
                raise AssertionError(
                    f"coturn exited with {server.proc.returncode} before it was ready:\n"
                    + server.log()
                )
            answer = client.binding(timeout=min(0.5, remaining))
            if answer is not None and answer.type == BINDING_SUCCESS:
                return
    raise AssertionError(f"coturn did not answer STUN within {timeout}s:\n{server.log()}")


def _answers_stun(address: tuple[str, int], timeout: float) -> bool:
    """Whether `address` answers a STUN Binding request within `timeout` (polled)."""
    deadline = time.monotonic() + timeout
    with StunClient(address) as client:
        while (remaining := deadline - time.monotonic()) > 0:
            answer = client.binding(timeout=min(0.5, remaining))
            if answer is not None and answer.type == BINDING_SUCCESS:
                return True
    return False


def _wait_until_ready_elsewhere(server: Coturn, timeout: float, enter: Sequence[str]) -> None:
    probe = [*enter, sys.executable, "-m", "tests.support.coturn", server.host, str(server.port)]
    try:
        done = subprocess.run(
            [*probe, str(timeout)], cwd=ROOT, capture_output=True, timeout=timeout + 10
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the coturn probe hung:\n{server.log()}") from None
    if done.returncode != 0:
        state = "exited" if server.proc.poll() is not None else "runs but"
        raise AssertionError(
            f"coturn {state} did not answer STUN within {timeout}s in its namespace "
            f"(probe said {done.stdout + done.stderr!r}):\n{server.log()}"
        )


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    # The readiness probe for `enter`: run inside the namespace coturn listens in.
    host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    sys.exit(0 if _answers_stun((host, port), timeout) else 1)
