"""Multi-party rooms (capacity above two): member ids, rosters, targeted relay, capacity.

Real server, real sockets. Rooms of two keep the book's shapes (test_signaling.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from typing import Any

import orjson
import pytest
import trio

from rtcserver.app import Server
from tests.conftest import StartServer
from tests.support import owners
from tests.support.client import Client, connect
from tests.test_signaling import _masked_text_frame, raw_upgrade


async def create(client: Client, capacity: int | None = None, **extra: Any) -> dict[str, Any]:
    """GETROOM (with a capacity), then the ROOM that follows it."""
    request: dict[str, Any] = {"type": "GETROOM", "value": "", **extra}
    if capacity is not None:
        request["capacity"] = capacity
    await client.send(request)
    room = (await client.expect("GETROOM"))["value"]
    roster = await client.expect("ROOM")
    assert roster["value"] == room
    return roster


async def enter(client: Client, room: int, others: list[Client]) -> dict[str, Any]:
    """ENTERROOM; returns the newcomer's ROOM after every other member saw PEERJOINED."""
    await client.send({"type": "ENTERROOM", "value": room})
    roster = await client.expect("ROOM")
    for other in others:
        joined = await other.expect("PEERJOINED")
        assert joined["id"] == roster["id"]
    return roster


async def conference(
    stack: contextlib.AsyncExitStack, url: str, size: int, capacity: int = 4
) -> tuple[list[Client], list[str], int]:
    """`size` clients in a room of `capacity`; their ids, in the order they came."""
    clients = [await stack.enter_async_context(connect(url)) for _ in range(size)]
    first = await create(clients[0], capacity)
    room, ids = first["value"], [first["id"]]
    for i in range(1, size):
        roster = await enter(clients[i], room, clients[:i])
        assert [m["id"] for m in roster["members"]] == ids  # everyone there, oldest first
        ids.append(roster["id"])
    return clients, ids, room


async def test_members_learn_each_others_ids_in_join_order(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, ids, room = await conference(stack, ws_url, 4)
        assert len(set(ids)) == 4
        for member_id in ids:  # unguessable: 72 random bits, URL-safe
            assert len(member_id) == 12
        first = await create(await stack.enter_async_context(connect(ws_url)), 3)
        assert first["members"] == [] and first["capacity"] == 3
        for client in clients:
            await client.expect_nothing(within=0.05)


async def test_relay_without_to_reaches_all_others_with_the_senders_id(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, ids, _ = await conference(stack, ws_url, 4)
        text = '{ "type" : "CHATMSG", "value":"héllo 👋" }  '
        await clients[1].send(text)
        for i in (0, 2, 3):
            got = await clients[i].recv_text()
            # The original text, its closing brace replaced by the sender's id.
            assert got == '{ "type" : "CHATMSG", "value":"héllo 👋" ,"from":"' + ids[1] + '"}'
            assert orjson.loads(got)["from"] == ids[1]
        await clients[1].expect_nothing()


async def test_a_forged_from_is_overridden_by_the_real_one(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, ids, _ = await conference(stack, ws_url, 3)
        await clients[2].send({"type": "offer", "from": ids[0], "to": ids[1], "sdp": "x"})
        got = await clients[1].recv_text()
        assert json.loads(got)["from"] == ids[2]  # JSON keeps the last key
        assert orjson.loads(got)["from"] == ids[2]


async def test_to_sends_to_that_member_only(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, ids, _ = await conference(stack, ws_url, 4)
        for n in range(5):
            await clients[0].send({"type": "candidate", "to": ids[2], "n": n})
        for n in range(5):
            message = await clients[2].recv()
            assert message == {"type": "candidate", "to": ids[2], "n": n, "from": ids[0]}
        for i in (0, 1, 3):
            await clients[i].expect_nothing(within=0.1)


@pytest.mark.parametrize("to", ["nobody", 7, None, ["x"], "own"])
async def test_to_naming_nobody_in_the_room_gets_no_such_peer(ws_url: str, to: object) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, ids, _ = await conference(stack, ws_url, 3)
        await clients[0].send({"type": "offer", "to": ids[0] if to == "own" else to})
        if to is None:  # "to": null names nobody in particular: everyone
            for i in (1, 2):
                await clients[i].expect("offer")
            return
        error = await clients[0].expect("ERROR")
        assert error["code"] == "no-such-peer"
        for i in (1, 2):
            await clients[i].expect_nothing(within=0.1)
        await clients[0].send({"type": "offer", "to": ids[1]})  # the connection is fine
        await clients[1].expect("offer")


async def test_an_id_from_another_room_is_no_such_peer(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a, a_ids, _ = await conference(stack, ws_url, 2)
        b, b_ids, _ = await conference(stack, ws_url, 2)
        await a[0].send({"type": "offer", "to": b_ids[1]})
        assert (await a[0].expect("ERROR"))["code"] == "no-such-peer"
        await b[1].expect_nothing(within=0.1)


@pytest.mark.parametrize("capacity", [1, 0, 9, 2.5, "4", True, [4]])
async def test_a_capacity_outside_2_to_the_maximum_is_refused(
    ws_url: str, server: Server, capacity: object
) -> None:
    async with connect(ws_url) as client:
        await client.send({"type": "GETROOM", "value": "", "capacity": capacity})
        error = await client.expect("ERROR")
        assert error["code"] == "bad-capacity"
        assert str(server.state.settings.max_room_capacity) in error["message"]
        assert server.state.registry.statistics().rooms == 0
        await create(client, 8)  # the maximum itself is fine


async def test_a_full_room_gets_room_full(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, _, room = await conference(stack, ws_url, 3, capacity=3)
        late = await stack.enter_async_context(connect(ws_url))
        await late.send({"type": "ENTERROOM", "value": room})
        assert (await late.expect("WRONGROOM"))["reason"] == "room-full"
        for client in clients:
            await client.expect_nothing(within=0.05)


@pytest.mark.parametrize(("capacity", "members"), [(8, 1), (5, 3), (4, 2)])
async def test_racers_into_a_room_exactly_capacity_minus_members_win(
    ws_url: str, server: Server, capacity: int, members: int
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, _, room = await conference(stack, ws_url, members, capacity)
        racers = [await stack.enter_async_context(connect(ws_url)) for _ in range(20)]
        outcomes: list[str] = []

        async def race(racer: Client) -> None:
            await racer.send({"type": "ENTERROOM", "value": room})
            outcomes.append((await racer.recv())["type"])  # ROOM or WRONGROOM, each

        async with trio.open_nursery() as nursery:
            for racer in racers:
                nursery.start_soon(race, racer)
        assert outcomes.count("ROOM") == capacity - members
        assert outcomes.count("WRONGROOM") == 20 - (capacity - members)
        assert len(owners.registry(server, room).members(room)) == capacity
        for client in clients:
            for _ in range(capacity - members):
                await client.expect("PEERJOINED")
            await client.expect_nothing(within=0.05)


async def test_names_of_logged_in_members_are_in_room_and_peerjoined(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        alice, bob, guest = [await stack.enter_async_context(connect(ws_url)) for _ in range(3)]
        for client, name in ((alice, "alice"), (bob, "bob")):
            await client.send({"type": "LOGIN", "name": name})
            assert (await client.expect("LOGIN"))["success"] is True
            await client.expect("USERS")
        await until(alice, "DIRECTORY")  # alice hears that bob logged in
        room = (await create(alice, 4))["value"]
        await guest.send({"type": "ENTERROOM", "value": room})
        roster = await guest.expect("ROOM")
        assert [m["name"] for m in roster["members"]] == ["alice"]
        # (Logged-in clients may hear directory news in between: `until` passes it.)
        assert (await until(alice, "PEERJOINED"))["name"] is None
        await bob.send({"type": "ENTERROOM", "value": room})
        roster = await until(bob, "ROOM")
        assert [m["name"] for m in roster["members"]] == ["alice", None]
        for client in (alice, guest):
            joined = await until(client, "PEERJOINED")
            assert joined == {"type": "PEERJOINED", "id": roster["id"], "name": "bob"}


async def test_peerleft_names_who_left_by_every_exit(start_server: StartServer) -> None:
    server = await start_server(keepalive_interval=0.2, keepalive_timeout=0.5, resume_grace=0.5)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        stayer = await stack.enter_async_context(connect(url))
        room = (await create(stayer, 8))["value"]
        others: list[Client] = []

        async def newcomer() -> tuple[Client, str]:
            client = await stack.enter_async_context(connect(url))
            roster = await enter(client, room, [stayer, *others])
            others.append(client)
            return client, roster["id"]

        async def gone(member_id: str, lost: bool = False) -> None:
            if lost:  # its session waits for a RESUME first: away, then gone
                away = await stayer.expect("PEERAWAY")
                assert away == {"type": "PEERAWAY", "id": member_id}
                for other in others:
                    assert await other.expect("PEERAWAY") == away
            left = await stayer.expect("PEERLEFT")
            assert left == {"type": "PEERLEFT", "id": member_id}
            for other in others:
                assert await other.expect("PEERLEFT") == left

        # A clean close.
        async with connect(url) as closing:
            roster = await enter(closing, room, [stayer])
        await gone(roster["id"])
        # Leaving for another room, by ENTERROOM and by GETROOM.
        mover, mover_id = await newcomer()
        other_room = (await create(await stack.enter_async_context(connect(url)), 3))["value"]
        others.remove(mover)
        await mover.send({"type": "ENTERROOM", "value": other_room})
        await gone(mover_id)
        creator, creator_id = await newcomer()
        others.remove(creator)
        await creator.send({"type": "GETROOM", "value": ""})
        await gone(creator_id)
        # A message over the size limit (close 1009).
        big, big_id = await newcomer()
        others.remove(big)
        await big.send('{"type":"x","pad":"' + "x" * 70000 + '"}')
        await gone(big_id)
        # Abrupt TCP loss, and a client that stops answering pings (4001).
        for how in ("reset", "silent"):
            sock = await raw_upgrade(server.port)
            entering = json.dumps({"type": "ENTERROOM", "value": room})
            await sock.send_all(_masked_text_frame(entering))
            joined = await stayer.expect("PEERJOINED")
            for other in others:
                await other.expect("PEERJOINED")
            if how == "reset":
                sock.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.socket.close()
                await gone(joined["id"], lost=True)
            else:
                await gone(joined["id"], lost=True)
                await sock.aclose()
        # Server shutdown ends the rest; until then the room is whole.
        assert len(owners.registry(server, room).members(room)) == 1 + len(others)


async def test_a_two_party_room_keeps_the_books_shapes_unless_asked(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a, b, c = [await stack.enter_async_context(connect(ws_url)) for _ in range(3)]
        room = await a.create_room()
        await b.send({"type": "ENTERROOM", "value": room})
        assert await a.recv_text() == '{"type":"PEERJOINED"}'
        await b.expect_nothing()
        await b.send('{"type":"offer","to":"zz","sdp":"x"}')  # no ids here: verbatim
        assert await a.recv_text() == '{"type":"offer","to":"zz","sdp":"x"}'
        # A roster on request (the page asks, to know what kind of room it is in).
        await b.send({"type": "ENTERROOM", "value": room, "roster": True})
        assert (await b.expect("WRONGROOM"))["reason"] == "already-in-room"
        await c.send({"type": "GETROOM", "value": "", "roster": True})
        room2 = (await c.expect("GETROOM"))["value"]
        own = await c.expect("ROOM")
        assert own["capacity"] == 2 and own["members"] == []
        await a.send({"type": "ENTERROOM", "value": room2, "roster": True})
        assert await b.recv_text() == '{"type":"PEERLEFT"}'
        roster = await a.expect("ROOM")
        assert roster["members"] == [{"id": own["id"], "name": None}]
        assert await c.recv_text() == '{"type":"PEERJOINED"}'
        await c.send('{"type":"answer"}')
        assert await a.recv_text() == '{"type":"answer"}'


async def test_the_roster_type_cannot_be_forged(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients, _, _ = await conference(stack, ws_url, 2)
        await clients[0].send({"type": "ROOM", "value": 1, "id": "x", "members": []})
        assert (await clients[0].expect("ERROR"))["code"] == "reserved-type"
        await clients[1].expect_nothing(within=0.1)


async def test_answering_a_call_leaves_the_conference_with_an_id(ws_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        alice, bob, carol = [await stack.enter_async_context(connect(ws_url)) for _ in range(3)]
        for client, name in ((alice, "alice"), (bob, "bob")):
            await client.send({"type": "LOGIN", "name": name})
            assert (await client.expect("LOGIN"))["success"] is True
        room = (await create(carol, 3))["value"]
        await alice.send({"type": "ENTERROOM", "value": room})
        alice_id = (await until(alice, "ROOM"))["id"]
        await carol.expect("PEERJOINED")
        await bob.send({"type": "CALL", "to": "alice", "media": "video"})
        call = (await until(alice, "INCOMINGCALL"))["call"]
        await alice.send({"type": "ACCEPT", "call": call})
        await until(alice, "CALLACCEPTED")
        # The call's private room is a room of two: the conference hears alice leave.
        assert await carol.expect("PEERLEFT") == {"type": "PEERLEFT", "id": alice_id}
        await bob.send('{"type":"offer","sdp":"x"}')
        assert await until_text(alice) == '{"type":"offer","sdp":"x"}'


async def until(client: Client, kind: str) -> dict[str, Any]:
    """The next message of type `kind`, past directory news (USERS, PRESENCE, ...)."""
    with trio.fail_after(5):
        while True:
            message = await client.recv()
            if message["type"] == kind:
                return message


async def until_text(client: Client) -> str:
    with trio.fail_after(5):
        while True:
            text = await client.recv_text()
            if orjson.loads(text)["type"] not in {"USERS", "DIRECTORY", "RINGING"}:
                return text
