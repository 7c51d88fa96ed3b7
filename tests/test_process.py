"""`python -m rtcserver` as a real process: start-up line, logs, signals, exit code."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.support.process import running_server


async def test_sigterm_closes_clients_with_1001_and_exits_0() -> None:
    with running_server("--stun", "", "--drain-timeout", "3") as srv:
        codes: list[int] = []
        async with open_websocket_url(srv.ws_url) as a, open_websocket_url(srv.ws_url) as b:
            await a.send_message('{"type":"GETROOM","value":""}')
            assert json.loads(await a.get_message())["type"] == "SESSION"
            room = json.loads(await a.get_message())["value"]
            await b.send_message(json.dumps({"type": "ENTERROOM", "value": room}))
            assert json.loads(await a.get_message()) == {"type": "PEERJOINED"}
            started = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            for ws in (a, b):
                try:
                    while True:
                        await ws.get_message()
                except ConnectionClosed as closed:
                    assert closed.reason is not None
                    codes.append(closed.reason.code)
        assert codes == [1001, 1001]
        assert srv.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 3 + 3
        out = srv.read_output().decode()
        assert "event=shutdown" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_idle_server_exits_0_on_signal(sig: int) -> None:
    with running_server("--stun", "") as srv:
        assert srv.stop(sig, timeout=10) == 0


async def test_log_lines_name_connection_room_and_address() -> None:
    with running_server("--stun", "") as srv:
        async with open_websocket_url(srv.ws_url) as a:
            await a.send_message('{"type":"GETROOM","value":""}')
            assert json.loads(await a.get_message())["type"] == "SESSION"
            room = json.loads(await a.get_message())["value"]
        out = srv.wait_for_output(rb"event=close", timeout=10).decode()
        assert "event=open" in out
        assert f"room={room} event=room-created" in out
        assert "addr=127.0.0.1:" in out


async def test_x_forwarded_for_is_logged_only_when_trusted() -> None:
    for trusted in (False, True):
        flag = "--trust-proxy" if trusted else "--no-trust-proxy"
        with running_server("--stun", "", flag) as srv:
            headers = [("X-Forwarded-For", "203.0.113.9, 198.51.100.7")]
            async with open_websocket_url(srv.ws_url, extra_headers=headers) as a:
                await a.send_message('{"type":"GETROOM","value":""}')
                await a.get_message()
            out = srv.wait_for_output(rb"event=close", timeout=10).decode()
            assert ("addr=198.51.100.7 " in out) is trusted
            assert "203.0.113.9" not in out


def test_port_in_use_fails_with_a_clear_message() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        import subprocess
        import sys

        completed = subprocess.run(
            [sys.executable, "-m", "rtcserver", "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert completed.returncode != 0
        assert "cannot listen on" in completed.stderr
        assert "Traceback" not in completed.stderr
    finally:
        blocker.close()


def test_shutdown_does_not_wait_for_clients_still_sending_their_head() -> None:
    with running_server("--stun", "", "--handshake-timeout", "30", "--drain-timeout", "10") as srv:
        slow = socket.create_connection(("127.0.0.1", srv.port))
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # ...and the rest never comes
        srv.wait_for_output(rb"listening", timeout=5)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        slow.settimeout(5)
        answer = slow.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert srv.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 3  # neither the 30 s head nor the 10 s drain
        slow.close()
