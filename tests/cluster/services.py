"""Real services for the cluster tests: Debian's redis-server and nginx, each started
on a free 127.0.0.1 port in the test's tmp dir, waited for with a deadline, and stopped
(by the PID we started) at the end. Nothing here sleeps to wait for something.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

REDIS_SERVER = "/usr/bin/redis-server"
NGINX = "/usr/sbin/nginx"
STARTUP_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    assert port != 30000
    return port


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.2)
            try:
                s.connect(("127.0.0.1", port))
                return
            except OSError:
                pass
        time.sleep(0.02)  # polling a port with a deadline, not waiting blind
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@attrs.define
class RedisServer:
    """One redis-server without persistence; `stop`/`start` keep its port."""

    directory: Path
    port: int = attrs.field(factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 (held by the process)
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--protected-mode", "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        wait_for_port(self.port, STARTUP_S, self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            _stop(self.proc, sig)

    def cli(self, *args: str) -> str:
        """`redis-cli` against this server (for inspecting keys from sync code)."""
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--raw", *args],
            capture_output=True,
            timeout=10,
            check=True,
        )
        return out.stdout.decode()


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream rtcserver_ws {{
{servers}
    }}
    upstream rtcserver_page {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        # WebSockets: round robin over the nodes.
        location /ws {{
            proxy_pass http://rtcserver_ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 120s;
        }}
        location / {{
            proxy_pass http://rtcserver_page;
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


@attrs.define
class Nginx:
    port: int
    proc: subprocess.Popen[bytes]
    directory: Path


@contextlib.contextmanager
def running_nginx(directory: Path, upstream_ports: list[int]) -> Iterator[Nginx]:
    """nginx in front of `upstream_ports`; a separate round robin for WebSockets, so
    page and asset requests do not shift which node the next WebSocket lands on."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, servers=servers, port=port))
    log = open(directory / "stderr.log", "ab")  # noqa: SIM115 (held by the process)
    proc = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    log.close()
    try:
        wait_for_port(port, STARTUP_S, proc)
        yield Nginx(port=port, proc=proc, directory=directory)
    finally:
        _stop(proc, signal.SIGQUIT)
