"""Multi-party rooms spanning three nodes: ids, names, targeted relay, capacity races,
departures (clean, by room change, and by a node's death)."""

from __future__ import annotations

import contextlib
import signal

import orjson
import trio

from tests.cluster.conftest import LEASE_TTL, cluster_nodes
from tests.cluster.services import RedisServer
from tests.support.client import Client, connect
from tests.support.process import ServerProcess
from tests.test_conference import create, enter, until

REAP_BOUND = LEASE_TTL * (1 + 0.4) + 1.0


async def _spanning(
    nodes: list[ServerProcess], stack: contextlib.AsyncExitStack, size: int, capacity: int
) -> tuple[list[Client], list[str], int]:
    """`size` members of one room, member i on node i % 3; their ids in join order."""
    clients = [
        await stack.enter_async_context(connect(nodes[i % len(nodes)].ws_url)) for i in range(size)
    ]
    first = await create(clients[0], capacity)
    room, ids = first["value"], [first["id"]]
    for i in range(1, size):
        roster = await enter(clients[i], room, clients[:i])
        assert {m["id"] for m in roster["members"]} == set(ids)  # Redis sets: any order
        ids.append(roster["id"])
    return clients, ids, room


async def test_a_room_spanning_three_nodes_agrees_on_ids_and_relays_by_id(
    three_nodes: list[ServerProcess],
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, ids, room = await _spanning(three_nodes, stack, 5, capacity=6)
        assert len(set(ids)) == 5
        # Broadcast: every other member, on every node, with the sender's id.
        await clients[1].send('{"type":"CHATMSG","value":"hi é"}')
        for i in (0, 2, 3, 4):
            got = await clients[i].recv_text()
            assert got == '{"type":"CHATMSG","value":"hi é","from":"' + ids[1] + '"}'
        # Targeted, across nodes and on the same node.
        for sender, receiver in ((0, 2), (2, 4), (3, 0), (4, 1)):
            await clients[sender].send({"type": "offer", "to": ids[receiver], "sdp": "x"})
            message = orjson.loads(await clients[receiver].recv_text())
            assert message["from"] == ids[sender] and message["to"] == ids[receiver]
        for client in clients:
            await client.expect_nothing(within=0.1)
        await clients[0].send({"type": "offer", "to": "not-a-member"})
        assert (await clients[0].expect("ERROR"))["code"] == "no-such-peer"
        # A clean close and a move to another room: PEERLEFT with the id, on every node.
        await clients[2].ws.aclose()
        for i in (0, 1, 3, 4):
            assert await clients[i].expect("PEERLEFT") == {"type": "PEERLEFT", "id": ids[2]}
        await clients[4].send({"type": "GETROOM", "value": ""})
        await clients[4].expect("GETROOM")
        for i in (0, 1, 3):
            assert await clients[i].expect("PEERLEFT") == {"type": "PEERLEFT", "id": ids[4]}
        # A newcomer on the third node sees exactly who is left, with the same ids.
        late = await stack.enter_async_context(connect(three_nodes[2].ws_url))
        roster = await enter(late, room, [clients[0], clients[1], clients[3]])
        assert {m["id"] for m in roster["members"]} == {ids[0], ids[1], ids[3]}
        assert roster["capacity"] == 6


async def test_names_cross_nodes(three_nodes: list[ServerProcess]) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await stack.enter_async_context(connect(three_nodes[1].ws_url))
        await carol.send({"type": "LOGIN", "name": "carol-conf"})
        assert (await carol.expect("LOGIN"))["success"] is True
        await carol.expect("USERS")
        owner = await stack.enter_async_context(connect(three_nodes[0].ws_url))
        room = (await create(owner, 4))["value"]
        await carol.send({"type": "ENTERROOM", "value": room})
        carol_id = (await until(carol, "ROOM"))["id"]  # past any directory news
        joined = await until(owner, "PEERJOINED")
        assert joined == {"type": "PEERJOINED", "id": carol_id, "name": "carol-conf"}
        guest = await stack.enter_async_context(connect(three_nodes[2].ws_url))
        roster = await enter(guest, room, [owner, carol])
        names = {m["id"]: m["name"] for m in roster["members"]}
        assert names[carol_id] == "carol-conf"
        assert list(names.values()).count(None) == 1


async def test_racers_on_three_nodes_exactly_capacity_minus_members_win(
    three_nodes: list[ServerProcess],
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        members, _, room = await _spanning(three_nodes, stack, 2, capacity=5)
        racers = [
            await stack.enter_async_context(connect(three_nodes[i % 3].ws_url)) for i in range(20)
        ]
        outcomes: list[str] = []

        async def race(racer: Client) -> None:
            await racer.send({"type": "ENTERROOM", "value": room})
            outcomes.append((await racer.recv())["type"])

        async with trio.open_nursery() as nursery:
            for racer in racers:
                nursery.start_soon(race, racer)
        assert outcomes.count("ROOM") == 3
        assert outcomes.count("WRONGROOM") == 17
        for member in members:
            for _ in range(3):
                await member.expect("PEERJOINED")
            await member.expect_nothing(within=0.1)


async def test_a_dead_nodes_members_leave_with_their_ids(redis: RedisServer) -> None:
    with cluster_nodes(redis, 3) as nodes:
        async with contextlib.AsyncExitStack() as stack:
            clients, ids, _ = await _spanning(nodes, stack, 6, capacity=8)
            nodes[2].stop(signal.SIGKILL)  # members 2 and 5 lived there
            for i in (0, 1, 3, 4):
                gone = {(await clients[i].expect("PEERLEFT", timeout=10))["id"] for _ in range(2)}
                assert gone == {ids[2], ids[5]}


async def test_after_redis_restarts_empty_ids_and_capacity_come_back(redis: RedisServer) -> None:
    with cluster_nodes(redis, 2) as nodes:
        async with contextlib.AsyncExitStack() as stack:
            clients, ids, room = await _spanning(nodes, stack, 3, capacity=4)
            redis.stop()
            for i, client in enumerate(clients):  # cut off from the other node's members
                others = 1 if i % 2 == 0 else 2
                left = {(await client.expect("PEERLEFT", timeout=REAP_BOUND))["id"]}
                for _ in range(others - 1):
                    left.add((await client.expect("PEERLEFT", timeout=REAP_BOUND))["id"])
                assert left == {ids[j] for j in range(3) if j % 2 != i % 2}
            redis.start()  # empty: no rooms, no capacity, no idkey
            # The node that comes back first tells its members PEERJOINED; the other
            # node's members are the newcomers and get ROOM: either way everyone learns
            # everyone again, by the ids they had.
            for i, client in enumerate(clients):
                expected = {ids[j] for j in range(3) if j % 2 != i % 2}
                learned: set[str] = set()
                while not expected <= learned:
                    message = await client.recv(timeout=10)
                    if message["type"] == "PEERJOINED":
                        learned.add(message["id"])
                    else:
                        assert message["type"] == "ROOM" and message["id"] == ids[i], message
                        assert message["capacity"] == 4
                        learned |= {m["id"] for m in message["members"]}
                assert learned <= set(ids) - {ids[i]}
            # The same ids as before the outage, on both nodes: "from" matches them.
            await clients[1].send({"type": "CHATMSG", "value": "back"})
            for i in (0, 2):
                assert (await clients[i].recv())["from"] == ids[1]
            # The room still holds four: one more gets in, the next is refused.
            late = await stack.enter_async_context(connect(nodes[1].ws_url))
            await enter(late, room, clients)
            later = await stack.enter_async_context(connect(nodes[0].ws_url))
            await later.send({"type": "ENTERROOM", "value": room})
            assert (await later.expect("WRONGROOM"))["reason"] == "room-full"
