"""A flash crowd from one address is served whole; slowloris from one address stays bounded.

A real `python -m rtcserver` at its default settings (a subprocess, so it has a core
of its own and raises its own open-files limit as it does for users), real sockets
from this process over loopback: 127.0.0.0/8 gives each side an address of its own.
Timing is only bounded generously: the handshake timeout is the one figure checked,
from below (no slow head is cut before it, unless its address is over the limit).
"""

from __future__ import annotations

import contextlib
import re
import resource
import time
from collections import Counter
from collections.abc import Iterator

import trio
from wsproto.events import Request

from rtcserver.settings import Settings
from tests.faults.conftest import raise_nofile
from tests.faults.wsclient import HandshakeRefused, WsClient
from tests.support.process import ServerProcess, running_server
from tests.support.waiting import eventually
from tests.test_http import http_exchange, status_of

CROWD = 1000
SLOWLORIS = 500
# A guard against a hang, not a figure: each test takes ~15 s on a quiet two-core
# machine and ~50 s at a load average of 40 (the client side is one Python process).
BOUND = 90
DEFAULTS = Settings()


def raise_open_files(needed: int) -> None:
    """This process holds every client socket: lift the soft limit toward the hard one."""
    soft = raise_nofile(needed)
    assert soft == resource.RLIM_INFINITY or soft >= needed, f"open-files limit {soft} < {needed}"


async def drain_output(server: ServerProcess) -> None:
    """Keep reading the server's log, so its pipe never fills and blocks it."""
    while True:
        await trio.to_thread.run_sync(server.read_output, 0.2)


async def scrape(port: int) -> str:
    # Generous: right after a crowd the server is busy closing a thousand sockets.
    request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
    response = await http_exchange(port, request, timeout=30)
    assert status_of(response) == 200
    return response.split(b"\r\n\r\n", 1)[1].decode()


def sample(metrics: str, name: str, label: str) -> float:
    match = re.search(rf"^{name}\{{{label}\}} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def open_from(source: str, port: int) -> trio.SocketStream:
    """A TCP connection from `source` (the lean way: a thousand at once are the test)."""
    sock = trio.socket.socket()
    try:
        await sock.bind((source, 0))
        await sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def served(port: int, source: str) -> int:
    """Open a WebSocket from `source`, create a room, return its number."""
    stream = await open_from(source, port)
    client = WsClient(stream)
    try:
        await client.handshake()
        await client.send_json({"type": "GETROOM", "value": ""})
        answer = await client.recv_json(timeout=30)
        assert answer["type"] == "GETROOM", answer
        return int(answer["value"])
    finally:
        await trio.aclose_forcefully(stream)


async def flash_crowd(port: int, source: str, size: int) -> tuple[set[int], list[int]]:
    """`size` clients from one address, let go at once; each completes its handshake
    and gets its GETROOM answer while all the others are open too. Returns the rooms
    and the statuses of any refused handshakes."""
    rooms: set[int] = set()
    refused: list[int] = []
    go = trio.Event()
    everyone_answered = trio.Event()

    async def one() -> None:
        # Everything but the connect is done before the crowd is let go: a client
        # process busy opening a thousand sockets sends each head late otherwise.
        sock = trio.socket.socket()
        await sock.bind((source, 0))
        stream = trio.SocketStream(sock)
        client = WsClient(stream)
        request = client.ws.send(Request(host="127.0.0.1", target="/ws"))
        try:
            await go.wait()
            await sock.connect(("127.0.0.1", port))
            await client.send_raw(request)
            await client.finish_handshake()
            await client.send_json({"type": "GETROOM", "value": ""})
            answer = await client.recv_json(timeout=45)
            assert answer["type"] == "GETROOM", answer
            rooms.add(int(answer["value"]))
            if len(rooms) == size:
                everyone_answered.set()
            await everyone_answered.wait()  # all of them open at once
        except HandshakeRefused as refusal:
            refused.append(refusal.status)
            everyone_answered.set()  # the test has failed; let the others go
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        for _ in range(size):
            nursery.start_soon(one)
        go.set()
    return rooms, refused


@contextlib.contextmanager
def default_server() -> Iterator[ServerProcess]:
    with running_server("--stun", "") as server:  # defaults but for the public STUN URL
        yield server


async def test_a_thousand_handshakes_at_once_from_one_address_are_all_served() -> None:
    raise_open_files(CROWD + 200)
    with default_server() as server, trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain_output, server)
            rooms, refused = await flash_crowd(server.port, "127.0.0.1", CROWD)
            assert refused == []
            assert len(rooms) == CROWD
            metrics = await scrape(server.port)
            nursery.cancel_scope.cancel()
    assert "rtcserver_refused_total{" not in metrics, metrics
    assert sample(metrics, "rtcserver_pending_heads", 'state="slow"') == 0


async def test_slowloris_from_one_address_is_bounded_while_a_flash_crowd_is_served() -> None:
    """500 heads that never finish, from 127.0.0.2: at most max_handshakes_per_address
    of them are held, each until the handshake timeout (408); the rest are cut when
    their grace ends (503). Meanwhile a flash crowd from 127.0.0.1, and a prompt client
    from 127.0.0.2 itself, are served; every refusal is counted, and logged sparingly."""
    limit = DEFAULTS.max_handshakes_per_address
    timeout = DEFAULTS.handshake_timeout
    raise_open_files(CROWD + SLOWLORIS + 200)
    answers: list[tuple[int, float]] = []  # (status, seconds after connecting)

    async def slow_head(port: int) -> None:
        started = time.monotonic()  # before the connect: the server's clock starts later
        stream = await open_from("127.0.0.2", port)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # never ended
            response = b""
            while chunk := await stream.receive_some(65536):
                response += chunk
            answers.append((status_of(response), time.monotonic() - started))

    with default_server() as server, trio.fail_after(BOUND):
        port = server.port
        began = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain_output, server)
            async with trio.open_nursery() as loris:
                for _ in range(SLOWLORIS):
                    loris.start_soon(slow_head, port)

                held: list[float] = []  # slow heads at each look, while some are cut

                async def all_excess_cut() -> bool:
                    metrics = await scrape(port)
                    held.append(sample(metrics, "rtcserver_pending_heads", 'state="slow"'))
                    reason = 'reason="max-handshakes-per-address"'
                    return sample(metrics, "rtcserver_refused_total", reason) == SLOWLORIS - limit

                await eventually(all_excess_cut, BOUND, "the slow heads past the limit cut")
                assert max(held) <= limit, held
                rooms, refused = await flash_crowd(port, "127.0.0.1", CROWD)
                assert refused == [] and len(rooms) == CROWD
                await served(port, "127.0.0.2")  # the slowloris' own address, prompt
            metrics = await scrape(port)
            nursery.cancel_scope.cancel()
        log = server.read_output(timeout=0.5).decode(errors="replace")
        seconds = time.monotonic() - began
    statuses = sorted(status for status, _ in answers)
    assert statuses == [408] * limit + [503] * (SLOWLORIS - limit), Counter(statuses)
    # The held ones were cut by the handshake timeout, not before it.
    assert all(seconds >= timeout for status, seconds in answers if status == 408)
    assert sample(metrics, "rtcserver_refused_total", 'reason="handshake-timeout"') == limit
    assert sample(metrics, "rtcserver_pending_heads", 'state="slow"') == 0
    lines = [line for line in log.splitlines() if "addr=127.0.0.2 event=refused" in line]
    assert any("cause=max-handshakes-per-address" in line for line in lines), log[-2000:]
    assert any("cause=handshake-timeout" in line for line in lines), log[-2000:]
    # One line a second for the address, and one saying how many that second suppressed:
    # a few dozen at most for its 500 refusals.
    refusal_lines = [line for line in lines if " status=" in line]
    assert len(refusal_lines) <= seconds + 1, lines
    assert len(lines) - len(refusal_lines) <= seconds + 1, lines
