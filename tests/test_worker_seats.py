"""Logged-in users in rooms of another worker (connection/seats.py, guests.py): the
socket stays on the directory worker with its name, the room's worker holds a guest
in the room, and the two talk over the local link. To the clients it is one server.

The kernel places each connection; the tests find a room of the worker they need by
creating rooms until one lands there (tests/test_workers.py `_creator_on`)."""

from __future__ import annotations

import contextlib
from typing import Any

import trio

from rtcserver.app import Server
from rtcserver.protocol import CloseCode
from tests.conftest import StartServer
from tests.faults.wsclient import WsClient
from tests.support import owners
from tests.support.client import DIRECTORY_TYPES, Client, connect
from tests.support.waiting import eventually
from tests.test_phone import login, until
from tests.test_resume import Party
from tests.test_workers import _creator_on

Stack = contextlib.AsyncExitStack


def _group(server: Server) -> list[Server]:
    return owners.SIBLINGS[server]


def _guests(server: Server) -> int:
    """Members of rooms on every worker that stand for a client served elsewhere."""
    return sum(len(w.state.seated) for w in _group(server))


async def _quiet(server: Server) -> None:
    """Nothing of the seats outlives them: no seat, no guest, no member, anywhere."""

    def clean() -> bool:
        return all(
            not w.state.seated and w.state.registry.statistics().members == 0
            for w in _group(server)
        )

    await eventually(clean, 5, "every seat and guest gone")


async def seated(stack: Stack, url: str, name: str = "ann") -> tuple[Client, Client, int]:
    """A logged-in client (its socket on worker 0) seated in a room of worker 1, and
    that room's creator, who has heard it join."""
    ann = await login(stack, url, name)
    creator, room = await _creator_on(stack, url, 1)
    await ann.send({"type": "ENTERROOM", "value": room})
    await creator.expect("PEERJOINED")
    return ann, creator, room


async def party_until(party: Party, kind: str) -> dict[str, Any]:
    with trio.fail_after(5):
        while True:
            message = await party.recv()
            if message["type"] == kind:
                return message
            assert message["type"] in DIRECTORY_TYPES | {"SESSION"}, message


async def test_a_logged_in_user_enters_another_workers_room_by_a_seat(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        ann = await login(stack, url, "ann")  # its socket is the directory worker's
        creator, room = await _creator_on(stack, url, 1, count=2)
        # A room of more than two names its members: ann's name crosses the link.
        await creator.send({"type": "GETROOM", "value": "", "capacity": 4})
        room = (await creator.expect("GETROOM"))["value"]
        await creator.expect("ROOM")
        assert room % 2 == 1
        await ann.send({"type": "ENTERROOM", "value": room})
        roster = await until(ann, "ROOM")
        assert [m["name"] for m in roster["members"]] == [None]
        joined = await creator.expect("PEERJOINED")
        assert joined == {"type": "PEERJOINED", "id": roster["id"], "name": "ann"}
        assert _guests(server) == 1
        # Relays both ways, in order, many in flight.
        for i in range(50):
            await ann.send({"type": "OFFER", "i": i})
            await creator.send({"type": "ANSWER", "i": i})
        for i in range(50):
            assert (await creator.recv())["i"] == i
            assert (await until(ann, "ANSWER"))["i"] == i
        # Its name still works where names live: the directory lists it.
        directory = _group(server)[0].state.registry
        assert directory.actor_named("ann") is not None
        # GETROOM leaves the room (as on one worker): the room hears it leave.
        await ann.send({"type": "GETROOM", "value": ""})
        assert (await until(ann, "GETROOM"))["value"] % 2 == 0
        left = await creator.expect("PEERLEFT")
        assert left["id"] == roster["id"]
        assert _guests(server) == 0
    await _quiet(server)


async def test_login_inside_another_workers_room_keeps_the_room(
    start_server: StartServer,
) -> None:
    """The socket moves to the directory worker for the LOGIN; the room stays."""
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        creator, room = await _creator_on(stack, url, 1)
        # Wherever the kernel put it, entering the room brings it to worker 1.
        joiner = await stack.enter_async_context(connect(url))
        await joiner.send({"type": "ENTERROOM", "value": room})
        await creator.expect("PEERJOINED")
        await joiner.send({"type": "OFFER", "n": 1})
        assert await creator.expect("OFFER") == {"type": "OFFER", "n": 1}
        await joiner.send({"type": "LOGIN", "name": "bea"})
        assert (await until(joiner, "LOGIN"))["success"] is True
        # The same room, both ways, right after.
        await creator.send({"type": "ANSWER", "n": 2})
        assert await until(joiner, "ANSWER") == {"type": "ANSWER", "n": 2}
        await joiner.send({"type": "CANDIDATE", "n": 3})
        assert await creator.expect("CANDIDATE") == {"type": "CANDIDATE", "n": 3}
        assert _group(server)[0].state.registry.actor_named("bea") is not None
        assert _guests(server) == 1
        # The room shows its name now, as on one worker: a newcomer's roster has it.
        room_worker = owners.registry(server, room)
        names = [room_worker.display_name(m) for m in room_worker.members(room)]
        await eventually(
            lambda: "bea" in [room_worker.display_name(m) for m in room_worker.members(room)],
            5,
            f"bea's name shown in the room (was {names})",
        )
        await joiner.ws.aclose()
        await creator.expect("PEERLEFT")
    await _quiet(server)


async def test_a_seat_waits_for_resume_and_comes_back(start_server: StartServer) -> None:
    server = await start_server(workers="2", resume_grace=30.0)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        ann = Party(await WsClient.connect(server.port))
        stack.push_async_callback(ann.client.close)
        await ann.send({"type": "SESSION"})
        await ann.expect("SESSION")
        await ann.send({"type": "LOGIN", "name": "ann"})
        await party_until(ann, "LOGIN")
        creator, room = await _creator_on(stack, url, 1)
        await ann.send({"type": "ENTERROOM", "value": room})
        await creator.expect("PEERJOINED")
        assert _guests(server) == 1
        ann.client.abort()
        await creator.expect("PEERAWAY")
        await creator.send({"type": "CHATMSG", "value": "missed"})
        back = await ann.resume_on(server.port)
        stack.push_async_callback(back.client.close)
        resumed = await back.expect("RESUMED")
        assert (resumed["room"], resumed["peers"]) == (room, 1)
        assert await party_until(back, "CHATMSG") == {"type": "CHATMSG", "value": "missed"}
        await creator.expect("PEERBACK")
        await back.send({"type": "CHATMSG", "value": "back"})
        assert await creator.expect("CHATMSG") == {"type": "CHATMSG", "value": "back"}


async def test_a_seat_closed_on_its_worker_closes_the_client_with_the_code(
    start_server: StartServer,
) -> None:
    """What the room's worker does to the guest (an admin's DELETE of the room) is done
    to the client: the same close code and reason, and no RESUME brings it back."""
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        ann, creator, room = await seated(stack, url)
        registry = owners.registry(server, room)
        guest = next(m for m in registry.members(room) if registry.display_name(m) == "ann")
        guest.kick(CloseCode.ROOM_CLOSED, "The room was closed", cause="admin")  # type: ignore[attr-defined]
        closed = await ann.expect_close()
        assert (closed.code, closed.reason) == (CloseCode.ROOM_CLOSED, "The room was closed")
        await creator.expect("PEERLEFT")
    await _quiet(server)


async def test_moving_between_workers_rooms_leaves_the_old_one(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        ann = await login(stack, url, "ann")
        far, far_room = await _creator_on(stack, url, 1)
        near, near_room = await _creator_on(stack, url, 0)
        await ann.send({"type": "ENTERROOM", "value": far_room})
        await far.expect("PEERJOINED")
        await ann.send({"type": "ENTERROOM", "value": far_room})  # the same room again
        assert (await until(ann, "WRONGROOM"))["reason"] == "already-in-room"
        await ann.send({"type": "ENTERROOM", "value": near_room})
        await far.expect("PEERLEFT")
        await near.expect("PEERJOINED")
        await ann.send({"type": "ENTERROOM", "value": far_room})
        await near.expect("PEERLEFT")
        await far.expect("PEERJOINED")
        # A refused ENTERROOM leaves the room it was in, on any worker.
        await ann.send({"type": "ENTERROOM", "value": far_room + 2 * 7})
        assert (await until(ann, "WRONGROOM"))["reason"] == "no-such-room"
        await far.expect("PEERLEFT")
        await eventually(lambda: _guests(server) == 0, 5, "the refused seat is gone")
        await ann.send({"type": "OFFER"})
        assert (await until(ann, "ERROR"))["code"] == "not-in-room"
    await _quiet(server)


async def test_a_gone_room_worker_tells_the_seated_client(start_server: StartServer) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        ann = await login(stack, url, "ann")
        _, room = await _creator_on(stack, url, 1)
        await ann.send({"type": "ENTERROOM", "value": room})
        await eventually(lambda: _guests(server) == 1, 5, "ann's seat taken")
        await _group(server)[1].shutdown()
        # The room's own members are closed first: ann hears the creator leave.
        assert await until(ann, "PEERLEFT") == {"type": "PEERLEFT"}
        error = await until(ann, "ERROR")
        assert error["code"] == "worker-unreachable", error
        # Its name and its connection go on.
        await ann.send({"type": "GETROOM", "value": ""})
        assert (await until(ann, "GETROOM"))["value"] % 2 == 0
