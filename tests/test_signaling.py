"""Every rule of the room protocol, over real sockets against a real server."""

from __future__ import annotations

import contextlib
import json

import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed

from rtcserver.app import Server
from rtcserver.protocol import MAX_ROOM
from tests.conftest import StartServer
from tests.support import owners
from tests.support.client import connect, make_pair


async def test_getroom_returns_a_browser_safe_integer_room(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(connect(ws_url))
        room = await client.create_room()
        assert 1 <= room <= MAX_ROOM


async def test_second_peer_enters_and_creator_gets_peerjoined(ws_url: str, server: Server) -> None:
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, ws_url)
        assert owners.registry(server, room).statistics().members == 2
        await joiner.expect_nothing()  # the book sends the joiner no reply


async def test_messages_are_relayed_verbatim_in_order_and_never_echoed(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, _ = await make_pair(stack, ws_url)
        # Odd spacing, key order, unicode and escapes must survive byte for byte.
        texts = [
            '{ "sdp" : "v=0\\r\\no=- 1 2 IN IP4 127.0.0.1" , "type":"offer" }',
            '{"type":"candidate","label":0,"id":"0",'
            '"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}',
            '{"type":"CHATMSG","value":"héllo 👋 \\u0000 <b>x</b>"}',
            *(f'{{"type":"seq","n":{i}}}' for i in range(50)),
        ]
        for text in texts:
            await joiner.send(text)
        for text in texts:
            assert await creator.recv_text() == text
        await joiner.expect_nothing()
        await creator.send('{"type":"answer","sdp":"v=0"}')
        assert await joiner.recv_text() == '{"type":"answer","sdp":"v=0"}'
        await creator.expect_nothing()


async def test_third_peer_gets_wrongroom(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, ws_url)
        third = await stack.enter_async_context(connect(ws_url))
        await third.send({"type": "ENTERROOM", "value": room})
        reply = await third.expect("WRONGROOM")
        assert reply["reason"] == "room-full"
        # The room is unharmed.
        await joiner.send('{"type":"ping"}')
        assert await creator.recv_text() == '{"type":"ping"}'


@pytest.mark.parametrize(
    "value",
    [None, "1", 1.5, -7, 0, MAX_ROOM + 1, 2**70, True, {"room": 1}, [1], "", 123456],
)
async def test_anything_but_a_live_room_number_gets_wrongroom(ws_url: str, value: object) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(connect(ws_url))
        await client.send(json.dumps({"type": "ENTERROOM", "value": value}))
        reply = await client.expect("WRONGROOM")
        assert reply["reason"] in {"invalid-room", "no-such-room"}
        # ...and the connection still works.
        await client.create_room()


async def test_twenty_clients_racing_into_one_room_exactly_one_wins(
    ws_url: str, server: Server
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        creator = await stack.enter_async_context(connect(ws_url))
        room = await creator.create_room()
        racers = [await stack.enter_async_context(connect(ws_url)) for _ in range(20)]
        outcomes: list[str] = []

        async def race(client_index: int) -> None:
            client = racers[client_index]
            await client.send({"type": "ENTERROOM", "value": room})
            # Losers hear WRONGROOM; the winner hears nothing (book protocol): then the
            # creator's PEERJOINED is the proof, counted below.
            with trio.move_on_after(1.0):
                reply = await client.recv()
                outcomes.append(reply["type"])

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(race, i)
        assert outcomes.count("WRONGROOM") == 19
        await creator.expect("PEERJOINED")
        await creator.expect_nothing()
        assert len(owners.registry(server, room).members(room)) == 2


async def test_peerleft_on_clean_close(ws_url: str) -> None:
    async with connect(ws_url) as creator:
        room = await creator.create_room()
        async with connect(ws_url) as joiner:
            await joiner.send({"type": "ENTERROOM", "value": room})
            await creator.expect("PEERJOINED")
        await creator.expect("PEERLEFT")


async def test_peeraway_then_peerleft_on_abrupt_tcp_loss(start_server: StartServer) -> None:
    """A socket lost without a close frame: its session waits `resume_grace` for a
    RESUME (PEERAWAY to the peer), then the peer hears PEERLEFT and the room is freed."""
    async with contextlib.AsyncExitStack() as stack:
        server = await start_server(resume_grace=0.5)
        ws_url = f"ws://127.0.0.1:{server.port}/ws"
        creator = await stack.enter_async_context(connect(ws_url))
        room = await creator.create_room()
        # A raw TCP client that upgrades, enters, then vanishes without a close frame.
        sock = await raw_upgrade(server.port)
        await sock.send_all(_masked_text_frame(json.dumps({"type": "ENTERROOM", "value": room})))
        await creator.expect("PEERJOINED")
        # SO_LINGER 0 makes close() send a RST: the harshest disconnect there is.
        import socket
        import struct

        sock.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.socket.close()
        await creator.expect("PEERAWAY")
        assert len(owners.registry(server, room).members(room)) == 2  # its place is kept
        await creator.expect("PEERLEFT")
        assert len(owners.registry(server, room).members(room)) == 1


async def raw_upgrade(port: int) -> trio.SocketStream:
    """A bare TCP client that completes the WebSocket upgrade and nothing more: it
    answers no ping and sends no close frame unless the test makes it. (It waits for
    the 101 before sending frames, as every real client does.)"""
    sock = await trio.open_tcp_stream("127.0.0.1", port)
    await sock.send_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in head:
            head += await sock.receive_some(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def test_getroom_while_in_a_room_leaves_it_and_peer_gets_peerleft(
    ws_url: str, server: Server
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, ws_url)
        new_room = await joiner.create_room()
        assert new_room != room
        await creator.expect("PEERLEFT")
        assert owners.registry(server, room).members(room) == (_only(server, room),)


def _only(server: Server, room: int) -> object:
    members = owners.registry(server, room).members(room)
    assert len(members) == 1
    return members[0]


async def test_enterroom_while_in_a_room_leaves_it_first(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, _ = await make_pair(stack, ws_url)
        other = await stack.enter_async_context(connect(ws_url))
        other_room = await other.create_room()
        await joiner.send({"type": "ENTERROOM", "value": other_room})
        await creator.expect("PEERLEFT")
        await other.expect("PEERJOINED")


async def test_relay_before_joining_a_room_is_an_error(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(connect(ws_url))
        await client.send({"type": "offer", "sdp": "x"})
        error = await client.expect("ERROR")
        assert error["code"] == "not-in-room"


async def test_relay_while_alone_is_an_error_not_a_silent_drop(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(connect(ws_url))
        await client.create_room()
        await client.send({"type": "offer", "sdp": "x"})
        error = await client.expect("ERROR")
        assert error["code"] == "no-peer"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "bad-json"),
        ("[]", "not-an-object"),
        ("42", "not-an-object"),
        ('{"value":1}', "bad-type"),
        ('{"type":7}', "bad-type"),
    ],
)
async def test_bad_input_gets_an_error_and_the_connection_stays_open(
    ws_url: str, text: str, code: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, _ = await make_pair(stack, ws_url)
        await joiner.send(text)
        error = await joiner.expect("ERROR")
        assert error["code"] == code and error["message"]
        await creator.expect_nothing()  # bad input is never relayed
        await joiner.send('{"type":"still-here"}')
        assert await creator.recv_text() == '{"type":"still-here"}'


async def test_binary_frames_get_an_error(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, _ = await make_pair(stack, ws_url)
        await joiner.send(b"\x00\x01binary")
        assert (await joiner.expect("ERROR"))["code"] == "binary-unsupported"
        await creator.expect_nothing()


async def test_oversized_message_closes_with_1009_and_peer_gets_peerleft(
    start_server: StartServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await start_server(max_message_size=1000)
        url = f"ws://127.0.0.1:{server.port}/ws"
        creator, joiner, _ = await make_pair(stack, url)
        await joiner.send('{"type":"big","pad":"' + "x" * 2000 + '"}')
        reason = await joiner.expect_close()
        assert reason.code == 1009
        await creator.expect("PEERLEFT")


async def test_slow_consumer_is_closed_and_never_blocks_the_sender(
    start_server: StartServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await start_server(
            mailbox_hard_limit=256 * 1024,
            mailbox_soft_limit=128 * 1024,
            keepalive_timeout=5.0,
            rate_limit=0,
        )
        url = f"ws://127.0.0.1:{server.port}/ws"
        creator, joiner, room = await make_pair(stack, url)
        bystander_a, bystander_b, _ = await make_pair(stack, url)
        closed_with: list[int] = []

        async def read_slowly() -> None:
            # A consumer far slower than its sender: one message per 50 ms.
            while True:
                try:
                    await creator.ws.get_message()
                except ConnectionClosed as closed:
                    assert closed.reason is not None
                    closed_with.append(closed.reason.code)
                    return
                await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_slowly)
            pad = "y" * 30000
            # The sender floods (bounded: 3,000 x 30 KB, far past the kernel's buffers and
            # the hard limit); none of its sends may stall (fail_after), and a room next
            # door keeps relaying promptly all along.
            with trio.fail_after(20):
                for i in range(3000):
                    await joiner.send(f'{{"type":"flood","i":{i},"pad":"{pad}"}}')
                    if i % 20 == 0:
                        await bystander_a.send('{"type":"probe"}')
                        assert await bystander_b.recv_text(timeout=2) == '{"type":"probe"}'
                    if closed_with or len(owners.registry(server, room).members(room)) < 2:
                        break
            with trio.fail_after(10):
                while (await joiner.recv())["type"] != "PEERLEFT":
                    pass
        assert closed_with == [4000]
        assert owners.registry(server, room).members(room) != ()
        assert len(owners.registry(server, room).members(room)) == 1
        await bystander_a.send('{"type":"after"}')
        assert await bystander_b.recv_text(timeout=2) == '{"type":"after"}'


async def test_a_sender_over_the_rate_is_throttled_never_dropped(
    start_server: StartServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await start_server(rate_limit=100, rate_burst=5)
        url = f"ws://127.0.0.1:{server.port}/ws"
        creator, joiner, _ = await make_pair(stack, url)
        sent = [f'{{"type":"flood","i":{i}}}' for i in range(60)]
        for text in sent:  # 12 bursts' worth, as fast as the socket takes them
            await joiner.send(text)
        with trio.fail_after(10):
            got = [await creator.recv_text(timeout=5) for _ in sent]
        assert got == sent  # all of it, in order, unchanged
        # It was slowed, not cut (by whichever worker holds the sender, with several).
        assert sum(w.state.throttled_seconds for w in owners.workers_of(server)) > 0.2
        await joiner.send('{"type":"still-open"}')
        assert await creator.recv_text(timeout=5) == '{"type":"still-open"}'


async def test_keepalive_drops_a_peer_that_never_answers_pings(start_server: StartServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await start_server(keepalive_interval=0.2, keepalive_timeout=0.5, resume_grace=0.5)
        url = f"ws://127.0.0.1:{server.port}/ws"
        creator = await stack.enter_async_context(connect(url))
        room = await creator.create_room()
        # A raw client that completes the upgrade, joins, and then never reads again:
        # the server's pings go unanswered.
        sock = await raw_upgrade(server.port)
        await sock.send_all(_masked_text_frame(json.dumps({"type": "ENTERROOM", "value": room})))
        await creator.expect("PEERJOINED")
        # The creator itself answers pings (trio-websocket does), so only the raw one goes:
        # away first (a lost socket's session waits for a RESUME), then gone.
        await creator.expect("PEERAWAY", timeout=5)
        await creator.expect("PEERLEFT", timeout=5)
        await sock.aclose()


async def test_keepalive_finds_a_silent_peer_even_while_traffic_flows_to_it(
    start_server: StartServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await start_server(keepalive_interval=0.3, keepalive_timeout=0.5, resume_grace=0.5)
        url = f"ws://127.0.0.1:{server.port}/ws"
        creator = await stack.enter_async_context(connect(url))
        room = await creator.create_room()
        sock = await raw_upgrade(server.port)  # joins, then never reads or answers again
        await sock.send_all(_masked_text_frame(json.dumps({"type": "ENTERROOM", "value": room})))
        await creator.expect("PEERJOINED")
        # Small messages keep flowing towards the silent peer, more often than the
        # keepalive interval, so the line towards it is never quiet. It is found
        # silent (PEERAWAY), and the grace ends (PEERLEFT).
        away = False
        with trio.fail_after(5):
            while True:
                await creator.send('{"type":"tick"}')
                with trio.move_on_after(0.1):
                    message = await creator.recv()
                    away |= message["type"] == "PEERAWAY"
                    if message["type"] == "PEERLEFT":
                        break
        assert away
        await sock.aclose()


async def test_peer_that_answers_pings_is_kept(start_server: StartServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await start_server(keepalive_interval=0.1, keepalive_timeout=1.0)
        url = f"ws://127.0.0.1:{server.port}/ws"
        creator, joiner, _ = await make_pair(stack, url)
        with trio.move_on_after(1.0):
            await creator.recv()  # several ping rounds pass; nothing must arrive
            raise AssertionError("unexpected message")
        await joiner.send('{"type":"alive"}')
        assert orjson.loads(await creator.recv_text()) == {"type": "alive"}


async def test_registration_dies_with_the_actor_after_every_exit(
    ws_url: str, server: Server
) -> None:
    for _ in range(10):
        async with connect(ws_url) as client:
            await client.create_room()
    # Every connection has closed (the server's own event) ...
    with trio.fail_after(5):
        while server.state.connections:
            await server.state.idle.wait()
    # ... and nothing it registered outlived it.
    assert not server.state.actors
    assert server.state.registry.statistics().rooms == 0
    assert server.state.registry.statistics().members == 0
