"""Faults on the wire, from a misbehaving peer, and the limits that answer them.

Injected: a TCP reset in the middle of a frame; half a frame and then silence; a
peer that never reads while its room floods it; a request head at one byte a second
(slowloris); garbage HTTP; an upgrade request wsproto refuses; a peer that vanishes
during the upgrade; more connections than allowed; a message flood; an oversized
message. Checked after each: the peer (if any) got everything in order then
PEERLEFT, the offender got its named answer (HTTP status or close code), its
connection task ended in bounded time, bystander rooms saw no error or stall, and
the shared invariants hold.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import wsproto.frame_protocol

from rtcserver.app import Server, serve
from rtcserver.protocol import CloseCode

from .harness import (
    FAULT_SETTINGS,
    PEERJOINED,
    bystanders,
    check_invariants,
    expect_in_order_then_gone,
    expect_peerleft,
)
from .inject import FaultInjector
from .wsclient import HOST, WsClient, connected

UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@asynccontextmanager
async def room_with_raw_victim(port: int) -> AsyncIterator[tuple[WsClient, WsClient]]:
    """`a`: a polite client (reads, answers pings). `b`: a raw one that does only what
    the test says. Both in one room; `a` saw PEERJOINED."""
    async with connected(port) as a:
        await a.send_json({"type": "GETROOM", "value": ""})
        room = (await a.recv_json())["value"]
        b = await WsClient.connect(port)
        try:
            await b.send_json({"type": "ENTERROOM", "value": room})
            assert await a.recv_json() == PEERJOINED
            yield a, b
        finally:
            b.abort()


def masked_frame_head(length: int) -> bytes:
    """The head of one masked client text frame of `length` payload bytes."""
    if length < 126:
        head = struct.pack("!BB", 0x81, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
    return head + b"\x00\x00\x00\x00"  # a zero mask: the payload goes as it is


async def http_exchange(port: int, request: bytes, *, per_byte: float | None = None) -> bytes:
    """Send `request` (one byte per `per_byte` seconds if given); read the answer."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        try:
            if per_byte is None:
                await stream.send_all(request)
            else:
                for i in range(len(request)):
                    try:
                        await stream.send_all(request[i : i + 1])
                    except trio.BrokenResourceError:
                        break  # the server answered and closed: its answer is buffered
                    with trio.move_on_after(per_byte):  # pacing; an early answer ends it
                        data = await stream.receive_some(65536)
                        return data + await _read_rest(stream)
            return await _read_rest(stream)
        except trio.BrokenResourceError:
            return b""


async def _read_rest(stream: trio.SocketStream) -> bytes:
    data = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


# ---------------------------------------------------------------- the peer dies


async def test_reset_in_the_middle_of_a_frame_frees_the_room(
    server: Server, injector: FaultInjector
) -> None:
    async with (
        bystanders(server.port, pairs=2) as watch,
        room_with_raw_victim(server.port) as (a, b),
    ):
        sent = [json.dumps({"type": "DATA", "seq": i}) for i in range(5)]
        for text in sent:
            await b.send(text)
        await b.send_raw(masked_frame_head(1000) + b'{"type":"DATA","cut":')
        b.abort()  # RST with the frame half sent
        await expect_in_order_then_gone(a, sent)
        await injector.wait_ended(b.address)
        await watch.wait_rounds(3)
    watch.check(max_latency=0.5)
    await check_invariants(server, injector)


async def test_half_a_frame_then_silence_is_dropped_by_the_keepalive(
    server: Server, injector: FaultInjector
) -> None:
    async with (
        bystanders(server.port, pairs=2) as watch,
        room_with_raw_victim(server.port) as (a, b),
    ):
        await b.send_raw(masked_frame_head(1000) + b'{"type":"DATA"')
        # Silent from here: no more bytes, no pongs. Pinged after keepalive_interval,
        # dropped keepalive_timeout later; the room is told.
        settings = FAULT_SETTINGS
        with trio.fail_after(settings.keepalive_interval + settings.keepalive_timeout + 2):
            await expect_peerleft(a)
        await injector.wait_ended(b.address)
        actor = injector.connection(b.address).actor
        assert actor is not None and actor.close_code == CloseCode.KEEPALIVE_TIMEOUT
        await watch.wait_rounds(3)
    watch.check(max_latency=0.5)
    await check_invariants(server, injector)


async def test_peer_that_never_reads_is_closed_and_its_sender_never_blocks(
    server: Server, injector: FaultInjector
) -> None:
    async with (
        bystanders(server.port, pairs=2) as watch,
        room_with_raw_victim(server.port) as (a, b),
    ):
        b.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        big = "x" * 60_000
        sent = 0
        # Bounded: under the rate burst; about 11 MB, more than loopback buffers.
        with trio.fail_after(10):
            conn = injector.connection(b.address)
            while not conn.ended.is_set() and sent < 190:
                with trio.fail_after(1):  # a send of a's never waits on b
                    await a.send(json.dumps({"type": "DATA", "pad": big}))
                sent += 1
                if sent % 16 == 0:
                    await trio.testing.wait_all_tasks_blocked(0.01)
            await expect_peerleft(a)
        await injector.wait_ended(b.address)
        actor = conn.actor
        assert actor is not None and actor.close_code == CloseCode.SLOW_CONSUMER
        print(f"slow consumer closed after {sent} messages: {actor.close_reason}")
        await watch.wait_rounds(3)
    watch.check(max_latency=0.5)
    await check_invariants(server, injector)


async def test_dead_peer_that_never_answers_pings_is_removed(
    server: Server, injector: FaultInjector
) -> None:
    async with room_with_raw_victim(server.port) as (a, b):
        # b stays connected but never reads, so it never answers a ping.
        settings = FAULT_SETTINGS
        with trio.fail_after(settings.keepalive_interval + settings.keepalive_timeout + 2):
            await expect_peerleft(a)
        await injector.wait_ended(b.address)
        actor = injector.connection(b.address).actor
        assert actor is not None and actor.close_code == CloseCode.KEEPALIVE_TIMEOUT
    await check_invariants(server, injector)


# ---------------------------------------------------------------- the front door


async def test_slowloris_head_gets_408_within_the_handshake_timeout(
    server: Server, injector: FaultInjector
) -> None:
    # A byte every 0.25 s, far slower than any real client, for most of the handshake
    # timeout; then the client only waits. It stops sending before the deadline so
    # that no byte of its can arrive after the server's answer and its lingering
    # close: the kernel would answer such a byte with a reset, which may take the
    # unread 408 with it (seen when the test process stalls for a second).
    paced = int(FAULT_SETTINGS.handshake_timeout / 0.25) - 1
    request = UPGRADE.format(host=HOST).encode()[:paced]
    start = trio.current_time()
    answer = await http_exchange(server.port, request, per_byte=0.25)
    elapsed = trio.current_time() - start
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert elapsed < FAULT_SETTINGS.handshake_timeout + 1.5, elapsed
    await check_invariants(server, injector)


async def test_garbage_http_gets_400_and_the_connection_ends(
    server: Server, injector: FaultInjector
) -> None:
    for garbage in (
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ):
        answer = await http_exchange(server.port, garbage)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    await check_invariants(server, injector)
    assert server.supervisor.crashes["connection"] == 0


async def test_upgrade_that_wsproto_refuses_ends_promptly(
    server: Server, injector: FaultInjector
) -> None:
    """An upgrade head h11 accepts but wsproto refuses (no key, wrong version) is
    answered, and its connection task ends then, not at the handshake deadline."""
    for head in (
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    ):
        stream = await trio.open_tcp_stream(HOST, server.port)
        address = "{}:{}".format(*stream.socket.getsockname()[:2])
        async with stream:
            await stream.send_all(head.encode())
            answer = await _read_rest(stream)
        assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 426 ")), answer[:100]
        # Well before handshake_timeout: the answer was final, the task must end.
        await injector.wait_ended(address, timeout=FAULT_SETTINGS.handshake_timeout / 2)
    await check_invariants(server, injector)


async def test_peer_vanishing_during_the_upgrade_leaves_nothing_behind(
    server: Server, injector: FaultInjector
) -> None:
    for _ in range(20):
        client = await WsClient.open_tcp(server.port)
        await client.send_raw(UPGRADE.format(host=HOST).encode())
        client.abort()  # RST before (or while) the 101 comes back
        await injector.wait_ended(client.address, timeout=FAULT_SETTINGS.handshake_timeout / 2)
    assert not server.state.actors
    assert server.supervisor.crashes["connection"] == 0
    await check_invariants(server, injector)


# ---------------------------------------------------------------- limits


async def test_connections_over_the_limit_get_503(injector: FaultInjector) -> None:
    settings = FAULT_SETTINGS.__class__(
        **{**_fields(FAULT_SETTINGS), "max_connections": 3, "handshake_timeout": 5.0}
    )
    async with trio.open_nursery() as nursery:
        srv: Server = await nursery.start(serve, settings)
        held = [await WsClient.connect(srv.port) for _ in range(3)]
        answer = await http_exchange(srv.port, UPGRADE.format(host=HOST).encode())
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
        assert b"Retry-After" in answer
        for client in held:
            await client.close()
        async with connected(srv.port):  # room again once they have gone
            pass
        await srv.shutdown()


async def test_flood_is_throttled_and_delivered_in_order(injector: FaultInjector) -> None:
    # A low rate, so that the flood outruns it by far however slow the machine is: 100
    # at once, then 300 more at 200/s, about 1.5 s of throttling.
    settings = FAULT_SETTINGS.__class__(
        **{**_fields(FAULT_SETTINGS), "rate_limit": 200.0, "rate_burst": 100}
    )
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, settings)
        async with room_with_raw_victim(server.port) as (a, b):
            flood = settings.rate_burst + 300
            with trio.fail_after(10):
                for i in range(flood):
                    await b.send(json.dumps({"type": "DATA", "seq": i}))
                got = [(await a.recv_json())["seq"] for _ in range(flood)]
            assert got == list(range(flood))
            assert b.close_code is None and server.state.throttled_seconds > 0.5
        await check_invariants(server, injector)
        await server.shutdown()


async def test_oversized_message_gets_1009_and_the_room_is_told(
    server: Server, injector: FaultInjector
) -> None:
    async with room_with_raw_victim(server.port) as (a, b):
        await b.send(json.dumps({"type": "DATA", "pad": "x" * server.settings.max_message_size}))
        assert await b.wait_closed() == wsproto.frame_protocol.CloseReason.MESSAGE_TOO_BIG
        await expect_peerleft(a)
    await check_invariants(server, injector)


def _fields(settings: object) -> dict[str, object]:
    import attrs

    return attrs.asdict(settings, recurse=False)  # type: ignore[arg-type]
