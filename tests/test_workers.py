"""Several workers as one server (docs/ARCHITECTURE.md, "Workers"), in this process:
servers sharing one port, each owning the rooms whose number it drew, handing live
sockets to each other. The kernel picks each connection's worker; the tests learn
it from what the server says (a room's number, a session's id) and make enough
connections that every path is taken."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import trio
from prometheus_client.parser import text_string_to_metric_families

from rtcserver.app import Server
from tests.conftest import StartServer
from tests.faults.wsclient import WsClient
from tests.support import owners
from tests.support.client import Client, connect
from tests.support.waiting import eventually
from tests.test_http import body_of, get, http_exchange
from tests.test_phone import call as phone_call
from tests.test_phone import login, until
from tests.test_resume import Party

Stack = contextlib.AsyncExitStack


def _group(server: Server) -> list[Server]:
    return owners.SIBLINGS[server]


def _handed_over(server: Server) -> int:
    return sum(worker.state.counters["handed-over"] for worker in _group(server))


async def _creator_on(stack: Stack, url: str, worker: int, count: int = 2) -> tuple[Client, int]:
    """A client whose room is owned by `worker` (it landed there: its worker drew it)."""
    for _ in range(40):  # 2^-40 to find none by chance
        client = await stack.enter_async_context(connect(url))
        room = await client.create_room()
        if room % count == worker:
            return client, room
    raise AssertionError(f"no connection landed on worker {worker}")


async def test_rooms_live_on_every_worker_and_joiners_move_to_them(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    rooms: set[int] = set()
    async with Stack() as stack:
        for _ in range(12):
            creator = await stack.enter_async_context(connect(url))
            joiner = await stack.enter_async_context(connect(url))
            room = await creator.create_room()
            rooms.add(room % 2)
            await joiner.send({"type": "ENTERROOM", "value": room})
            await creator.expect("PEERJOINED")
            # In order, both ways, whichever worker each socket landed on.
            for i in range(10):
                await joiner.send({"type": "OFFER", "i": i})
                await creator.send({"type": "ANSWER", "i": i})
            for i in range(10):
                assert await creator.recv() == {"type": "OFFER", "i": i}
                assert await joiner.recv() == {"type": "ANSWER", "i": i}
            assert owners.registry(server, room).members(room)
    assert rooms == {0, 1}  # 2^-11 to fail by chance
    assert _handed_over(server) > 0  # 2^-12 to fail by chance
    # Nothing of them outlived them, on any worker.
    with trio.fail_after(5):
        for worker in _group(server):
            while worker.state.connections:
                await worker.state.idle.wait()
            assert worker.state.registry.statistics().members == 0


async def test_a_session_moves_with_its_socket_and_resume_finds_it(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2", resume_grace=30.0)
    url = f"ws://127.0.0.1:{server.port}/ws"
    for attempt in range(4):  # the resume lands on either worker
        async with Stack() as stack:
            mover = Party(await WsClient.connect(server.port))
            stack.push_async_callback(mover.client.close)
            await mover.send({"type": "SESSION"})
            home = int((await mover.expect("SESSION"))["session"].split(".")[0])
            creator, room = await _creator_on(stack, url, 1 - home)
            before = _handed_over(server)
            await mover.send({"type": "ENTERROOM", "value": room})
            await creator.expect("PEERJOINED")
            assert _handed_over(server) == before + 1
            await creator.send({"type": "CHATMSG", "value": attempt})
            # The same session goes on: no second SESSION, the count goes on.
            assert await mover.expect("CHATMSG") == {"type": "CHATMSG", "value": attempt}
            mover.client.abort()
            await creator.expect("PEERAWAY")
            await creator.send({"type": "CHATMSG", "value": "missed"})
            back = await mover.resume_on(server.port)
            stack.push_async_callback(back.client.close)
            resumed = await back.expect("RESUMED")
            assert (resumed["room"], resumed["peers"]) == (room, 1)
            assert await back.expect("CHATMSG") == {"type": "CHATMSG", "value": "missed"}
            await creator.expect("PEERBACK")
            await back.send({"type": "CHATMSG", "value": "back"})
            assert await creator.expect("CHATMSG") == {"type": "CHATMSG", "value": "back"}


async def test_names_and_calls_live_on_the_directory_worker(start_server: StartServer) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    directory = _group(server)[0].state.registry
    async with Stack() as stack:
        names = [f"user{i}" for i in range(6)]
        clients = [await login(stack, url, name) for name in names]
        assert set(directory.names()) == set(names)
        # Unique across workers: wherever the second claimant lands.
        for _ in range(4):
            async with connect(url) as again:
                await again.send({"type": "LOGIN", "name": "user0"})
                reply = await until(again, "LOGIN")
                assert reply == {"type": "LOGIN", "success": False, "reason": "name taken"}
        # A call by name makes a room on the directory worker, where both are.
        caller, callee = clients[0], clients[1]
        call_id = await phone_call(caller, callee, "user1")
        await callee.send({"type": "ACCEPT", "call": call_id})
        room = (await until(caller, "CALLACCEPTED"))["room"]
        await until(callee, "CALLACCEPTED")
        assert room % 2 == 0
        await caller.send({"type": "OFFER", "sdp": "v=0"})
        assert await until(callee, "OFFER") == {"type": "OFFER", "sdp": "v=0"}


async def test_a_room_whose_worker_is_gone_is_wrongroom(start_server: StartServer) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        _, room = await _creator_on(stack, url, 1)
        gone = _group(server)[1]
        await gone.shutdown()  # its listener and inbox close: all land on worker 0
        await eventually(
            lambda: all(listener.socket.fileno() < 0 for listener in gone.listeners),  # type: ignore[attr-defined]
            5,
            "worker 1's listener closed",
        )
        async with connect(url) as late:
            await late.send({"type": "ENTERROOM", "value": room})
            message: dict[str, Any] = await late.recv()
            assert message == {"type": "WRONGROOM", "reason": "no-such-room"}, message
            # It stays a client of the worker it reached.
            assert (await late.create_room()) % 2 == 0


async def test_healthz_and_metrics_answer_for_every_worker(start_server: StartServer) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        await _creator_on(stack, url, 0)
        await _creator_on(stack, url, 1)
        local = [len(w.state.actors) for w in _group(server)]
        rooms = [w.state.registry.statistics().rooms for w in _group(server)]
        for _ in range(4):  # whichever worker takes the request
            health = orjson.loads(body_of(await http_exchange(server.port, get("/healthz"))))
            assert health["connections"] == sum(local) and health["rooms"] == sum(rooms)
            assert [w["worker"] for w in health["workers"]] == [0, 1]
            assert [w["connections"] for w in health["workers"]] == local
            text = body_of(await http_exchange(server.port, get("/metrics"))).decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            assert families, text
            labelled = {s.labels.get("worker") for f in families.values() for s in f.samples}
            assert labelled == {"0", "1"}


def test_each_worker_holds_its_share_of_the_servers_limits() -> None:
    from rtcserver.rooms.owners import Workers
    from rtcserver.settings import Settings

    settings = Settings(max_connections=1001, max_connections_per_address=3)
    one = Workers(index=0, count=1)
    assert one.share(settings) is settings
    share = Workers(index=1, count=2).share(settings)
    assert (share.max_connections, share.max_connections_per_address) == (501, 2)
    assert share.queue_budget == settings.queue_budget // 2
    # A budget never drops below what one client may hold.
    tight = Settings(queue_budget=settings.mailbox_hard_limit)
    assert Workers(index=0, count=4).share(tight).queue_budget == settings.mailbox_hard_limit
