"""Three rtcserver nodes on one Redis act as one server."""

from __future__ import annotations

import contextlib

import orjson
import trio

from tests.cluster.services import RedisServer
from tests.support.client import Client, connect
from tests.support.process import ServerProcess

# Exact text a browser could send, with whitespace, escapes and non-ASCII kept as is.
ODD_TEXT = (
    '{ "sdp" : "v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\n" ,\n "type":"offer", "x":"é😀\\u00e9" }'
)


async def _pair_across(
    a_node: ServerProcess, b_node: ServerProcess, stack: contextlib.AsyncExitStack
) -> tuple[Client, Client, int]:
    a = await stack.enter_async_context(connect(a_node.ws_url))
    b = await stack.enter_async_context(connect(b_node.ws_url))
    room = await a.create_room()
    await b.send({"type": "ENTERROOM", "value": room})
    await a.expect("PEERJOINED")
    return a, b, room


async def test_room_made_on_one_node_is_entered_from_another_and_relays_byte_exact(
    three_nodes: list[ServerProcess],
) -> None:
    node_a, node_b, node_c = three_nodes
    async with contextlib.AsyncExitStack() as stack:
        a, b, room = await _pair_across(node_a, node_b, stack)
        await a.send(ODD_TEXT)
        assert await b.recv_text() == ODD_TEXT
        reply = '{"type":"answer","sdp":"v=0\\r\\n"}'
        await b.send(reply)
        assert await a.recv_text() == reply
        # Never echoed to the sender.
        await a.expect_nothing(0.2)
        # The room is full for a third client on the third node.
        c = await stack.enter_async_context(connect(node_c.ws_url))
        await c.send({"type": "ENTERROOM", "value": room})
        assert (await c.expect("WRONGROOM"))["reason"] == "room-full"
        # A room number nobody made is refused on every node.
        await c.send({"type": "ENTERROOM", "value": room + 1 if room < 2**53 - 1 else 1})
        assert (await c.expect("WRONGROOM"))["reason"] == "no-such-room"
        # PEERLEFT crosses nodes, and the place it frees can be taken from node C.
        await b.ws.aclose()
        await a.expect("PEERLEFT")
        await c.send({"type": "ENTERROOM", "value": room})
        await a.expect("PEERJOINED")
        await c.send({"type": "CHATMSG", "value": "from C"})
        assert orjson.loads(await a.recv_text()) == {"type": "CHATMSG", "value": "from C"}


async def test_twenty_clients_on_three_nodes_race_for_one_place_and_one_wins(
    three_nodes: list[ServerProcess],
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        owner = await stack.enter_async_context(connect(three_nodes[0].ws_url))
        room = await owner.create_room()
        racers = [
            await stack.enter_async_context(connect(three_nodes[i % 3].ws_url)) for i in range(20)
        ]
        outcomes: list[str] = []
        go = trio.Event()

        async def race(client: Client) -> None:
            await go.wait()
            await client.send({"type": "ENTERROOM", "value": room})
            with trio.move_on_after(2.0):
                message = await client.recv()
                outcomes.append(message["type"] + ":" + str(message.get("reason", "")))
                return
            outcomes.append("in")  # nothing back: the book's protocol answers success silently

        async with trio.open_nursery() as nursery:
            for client in racers:
                nursery.start_soon(race, client)
            go.set()
        assert outcomes.count("in") == 1, outcomes
        assert outcomes.count("WRONGROOM:room-full") == 19, outcomes
        await owner.expect("PEERJOINED")
        await owner.expect_nothing(0.2)


async def test_a_burst_keeps_its_order_across_nodes(three_nodes: list[ServerProcess]) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a, b, _ = await _pair_across(three_nodes[1], three_nodes[2], stack)
        texts = [orjson.dumps({"type": "candidate", "n": n}).decode() for n in range(300)]
        for text in texts:
            await a.send(text)
        assert [await b.recv_text() for _ in texts] == texts


async def test_room_numbers_are_unique_across_the_cluster(three_nodes: list[ServerProcess]) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(three_nodes[i % 3].ws_url)) for i in range(12)
        ]
        rooms = [await client.create_room() for client in clients]
        assert len(set(rooms)) == len(rooms)
        assert all(1 <= room <= 2**53 - 1 for room in rooms)


async def test_getroom_while_in_a_cross_node_room_tells_the_old_peer(
    three_nodes: list[ServerProcess], shared_redis: RedisServer
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a, b, room = await _pair_across(three_nodes[0], three_nodes[2], stack)
        new_room = await b.create_room()
        assert new_room != room
        await a.expect("PEERLEFT")
        await a.send({"type": "CHATMSG", "value": "anyone?"})
        assert (await a.expect("ERROR"))["code"] == "no-peer"
        members = shared_redis.cli("SMEMBERS", f"rtc:room:{room}").split()
        assert len(members) == 1, members
