"""The admin API with several workers (in-process, `start_server(workers="2")`): whichever
worker takes the request answers for the whole server (server/workeradmin.py). The
kernel picks each request's worker, so every check is made over several requests:
with rooms on both workers, any one of them crosses to the other worker."""

from __future__ import annotations

import contextlib
import os
import signal
from types import SimpleNamespace
from typing import Any

import orjson
import trio

from rtcserver.directory.calls import Switchboard
from rtcserver.rooms.registry import Registry
from rtcserver.server import workeradmin
from rtcserver.server.adminview import Listing
from rtcserver.server.workeradmin import merge
from tests.conftest import StartServer
from tests.support import owners
from tests.support.client import Client, connect
from tests.support.process import running_server
from tests.support.receiver import running_receiver
from tests.support.waiting import eventually
from tests.test_admin import TOKEN, api, api_post
from tests.test_phone import login
from tests.test_webhooks import SECRET, kinds, verified
from tests.test_worker_processes import STARTUP, _pids

Stack = contextlib.AsyncExitStack
TRIES = 8  # requests per check: each lands on either worker


async def _pair_on(stack: Stack, url: str, worker: int) -> tuple[Client, Client, int]:
    """A creator (its room owned by `worker`) and a joiner in that room."""
    for _ in range(40):  # 2^-40 to find none by chance
        async with Stack() as attempt:  # a creator that landed elsewhere leaves
            creator = await attempt.enter_async_context(connect(url))
            room = await creator.create_room()
            if room % 2 == worker:
                joiner = await attempt.enter_async_context(connect(url))
                await joiner.send({"type": "ENTERROOM", "value": room})
                await creator.expect("PEERJOINED")
                await stack.enter_async_context(attempt.pop_all())
                return creator, joiner, room
    raise AssertionError(f"no connection landed on worker {worker}")


async def _json(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    status, body = await api(port, path, method)
    assert isinstance(body, dict), body
    return status, body


async def test_every_worker_lists_and_pages_the_whole_servers_rooms(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2", admin_token=TOKEN)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        rooms = sorted([(await _pair_on(stack, url, i % 2))[2] for i in range(6)])
        assert {room % 2 for room in rooms} == {0, 1}

        def only_those_rooms() -> bool:
            workers = owners.workers_of(server)
            return sorted(n for w in workers for n in w.state.registry.rooms()) == rooms

        await eventually(only_those_rooms, 5, "the rooms of creators that left gone")
        for _ in range(TRIES):
            status, body = await _json(server.port, "/api/v1/rooms")
            assert status == 200
            assert [r["number"] for r in body["rooms"]] == rooms
            assert all(len(r["members"]) == 2 for r in body["rooms"])
            assert body["workers"] == {"count": 2, "answered": 2, "missing": []}
            assert body["next_cursor"] is None
        # Pages of two: each page's request may land on the other worker.
        for _ in range(TRIES // 2):
            seen: list[int] = []
            cursor = ""
            while True:
                _, page = await _json(server.port, f"/api/v1/rooms?limit=2{cursor}")
                assert len(page["rooms"]) <= 2
                seen.extend(r["number"] for r in page["rooms"])
                if page["next_cursor"] is None:
                    break
                cursor = f"&cursor={page['next_cursor']}"
            assert seen == rooms


async def test_room_requests_reach_the_worker_that_owns_the_room(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2", admin_token=TOKEN)
    url = f"ws://127.0.0.1:{server.port}/ws"
    port = server.port
    async with Stack() as stack:
        for worker in (0, 1):
            creator, joiner, room = await _pair_on(stack, url, worker)
            for _ in range(TRIES):
                status, one = await _json(port, f"/api/v1/rooms/{room}")
                assert status == 200 and one["number"] == room and len(one["members"]) == 2
            ids = [m["id"] for m in one["members"]]
            for i in range(TRIES):
                status, told = await api_post(
                    port, f"/api/v1/rooms/{room}/messages", {"data": {"i": i}}
                )
                assert (status, told) == (200, {"room": room, "delivered": 2})
                for client in (creator, joiner):
                    assert await client.expect("ADMIN") == {"type": "ADMIN", "data": {"i": i}}
            status, told = await api_post(
                port, f"/api/v1/rooms/{room}/messages", {"data": {"only": 1}, "to": ids[1]}
            )
            assert (status, told) == (200, {"room": room, "delivered": 1})
            assert (await joiner.expect("ADMIN"))["data"] == {"only": 1}
            status, _ = await _json(port, f"/api/v1/rooms/{room}/members/{ids[1]}", "DELETE")
            assert status == 200
            assert (await joiner.expect_close()).code == 4004
            await creator.expect("PEERLEFT")
            status, _ = await _json(port, f"/api/v1/rooms/{room}/members/{ids[1]}", "DELETE")
            assert status == 404
            status, _ = await _json(port, f"/api/v1/rooms/{room}", "DELETE")
            assert status == 200
            closed = await creator.expect_close()
            assert (closed.code, closed.reason) == (4003, "The room was closed")
            with trio.fail_after(5):
                while room in owners.registry(server, room).rooms():
                    await trio.sleep(0.02)
            for _ in range(TRIES):
                status, body = await _json(port, f"/api/v1/rooms/{room}")
                assert status == 404 and str(room) in body["error"]


async def test_users_answer_from_the_directory_worker(start_server: StartServer) -> None:
    server = await start_server(workers="2", admin_token=TOKEN)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        await login(stack, url, "alice")
        bob = await login(stack, url, "bob")
        for _ in range(TRIES):
            status, body = await _json(server.port, "/api/v1/users?limit=1")
            assert status == 200
            assert body == {
                "users": [{"name": "alice", "status": "available", "call": None}],
                "next_cursor": "alice",
            }
            _, rest = await _json(server.port, "/api/v1/users?cursor=alice")
            assert [u["name"] for u in rest["users"]] == ["bob"]
        assert (await _json(server.port, "/api/v1/users/bob", "DELETE"))[0] == 200
        assert (await bob.expect_close()).code == 4005
        for _ in range(TRIES):
            assert (await _json(server.port, "/api/v1/users/nobody", "DELETE"))[0] == 404


async def test_a_worker_that_does_not_answer_is_named(start_server: StartServer) -> None:
    server = await start_server(workers="2", admin_token=TOKEN)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        _, _, kept = await _pair_on(stack, url, 0)
        _, _, lost = await _pair_on(stack, url, 1)
        await owners.workers_of(server)[1].shutdown()  # its inbox and listener close
        with trio.fail_after(10):
            while owners.workers_of(server)[1].state.inbox.fileno() != -1:  # type: ignore[union-attr]
                await trio.sleep(0.02)
        for _ in range(TRIES):  # worker 0 takes every request now
            status, body = await _json(server.port, f"/api/v1/rooms/{lost}")
            assert status == 503
            assert body["unavailable"] == "worker 1" and "did not answer" in body["error"]
            status, body = await _json(server.port, f"/api/v1/rooms/{lost}", "DELETE")
            assert (status, body["unavailable"]) == (503, "worker 1")
            status, body = await _json(server.port, "/api/v1/rooms")
            assert status == 200
            assert [r["number"] for r in body["rooms"]] == [kept]
            assert body["workers"] == {"count": 2, "answered": 1, "missing": [1]}
            assert (await _json(server.port, f"/api/v1/rooms/{kept}"))[0] == 200


def test_a_merged_page_stops_before_what_a_worker_with_more_did_not_send() -> None:
    # Worker 0 sent its first two of more; worker 1 all it has. Worker 0's next rooms
    # may come before 9, so the page ends at 5 and the cursor finds them next time.
    listings = {
        0: Listing((1, 5), more=True),
        1: Listing((2, 9), more=False),
    }
    page = merge(listings, 3, 2, lambda n: n)
    assert (page.items, page.more, page.answered, page.of) == ((1, 2, 5), True, (0, 1), 2)
    page = merge({0: Listing((1, 5), False), 1: Listing((2, 9), False)}, 3, 2, lambda n: n)
    assert (page.items, page.more) == ((1, 2, 5), True)
    page = merge({0: Listing((1,), False), 1: Listing((), False)}, 3, 2, lambda n: n)
    assert (page.items, page.more, page.answered) == ((1,), False, (0, 1))


async def test_worker_processes_answer_for_each_other_and_name_a_stopped_one() -> None:
    args = ("--stun", "", "--workers", "2", "--admin-token", TOKEN)
    with running_server(*args, startup_timeout=STARTUP) as server:
        pids = _pids(server)
        assert set(pids) == {0, 1}
        async with Stack() as stack:
            on_0 = await _pair_on(stack, server.ws_url, 0)
            on_1 = await _pair_on(stack, server.ws_url, 1)
            rooms = sorted([on_0[2], on_1[2]])
            for _ in range(TRIES):
                status, body = await _json(server.port, "/api/v1/rooms")
                assert status == 200 and [r["number"] for r in body["rooms"]] == rooms
                assert body["workers"] == {"count": 2, "answered": 2, "missing": []}
            status, told = await api_post(
                server.port, f"/api/v1/rooms/{on_1[2]}/messages", {"data": {"hi": 1}}
            )
            assert (status, told) == (200, {"room": on_1[2], "delivered": 2})
            assert (await on_1[1].expect("ADMIN"))["data"] == {"hi": 1}
            # Worker 1 stopped (alive, silent): worker 0 names it. A request the kernel
            # gives worker 1 waits, so each is bounded and tried again.
            os.kill(pids[1], signal.SIGSTOP)
            try:
                answers: list[tuple[int, dict[str, Any]]] = []
                with trio.fail_after(30):
                    while len(answers) < 2:
                        with trio.move_on_after(3):
                            answers.append(await _json(server.port, f"/api/v1/rooms/{on_1[2]}"))
                for status, body in answers:
                    assert status == 503 and body["unavailable"] == "worker 1"
                    assert body["error"] == "worker 1 did not answer within 1 s"
            finally:
                os.kill(pids[1], signal.SIGCONT)
            status, _ = await _json(server.port, f"/api/v1/rooms/{on_1[2]}", "DELETE")
            assert status == 200
            assert (await on_1[0].expect_close()).code == 4003


async def test_every_worker_sends_the_events_of_its_rooms(start_server: StartServer) -> None:
    async with running_receiver() as receiver:
        server = await start_server(
            workers="2", admin_token=TOKEN, webhook_url=(receiver.url,), webhook_secret=SECRET
        )
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with Stack() as stack:
            rooms = [(await _pair_on(stack, url, worker))[2] for worker in (0, 1)]
            for room in rooms:  # closed through whichever worker takes the request
                assert (await _json(server.port, f"/api/v1/rooms/{room}", "DELETE"))[0] == 200

            def of(room: int) -> list[tuple[str, str | None]]:
                return kinds(
                    [e for e in verified(receiver.deliveries) if e["data"]["room"] == room]
                )

            every = [
                ("room.created", None),
                ("member.joined", None),
                ("member.joined", None),
                ("member.left", "room-closed"),
                ("member.left", "room-closed"),
                ("room.ended", None),
            ]
            await eventually(lambda: all(len(of(r)) >= len(every) for r in rooms), 10, "events")
            # Each room's events in order, from its own worker's queue (worker 1's room
            # is known to worker 1 alone).
            for room in rooms:
                assert of(room) == every


async def test_a_list_too_big_for_one_datagram_is_cut_short_saying_it_has_more() -> None:
    registry: Registry[Any] = Registry(clock=lambda: 0.0)
    rooms = sorted(registry.create(f"actor-{i}").room for i in range(40))
    state = SimpleNamespace(
        registry=registry, switchboard=Switchboard(ring_timeout=30.0, new_id=str)
    )
    question = {"op": "admin?", "call": "rooms", "args": [None, 100]}
    whole = await workeradmin.serve(state, question, size=1_000_000)
    assert [r["number"] for r in whole["result"]["items"]] == rooms
    assert whole["result"]["more"] is False
    cut = await workeradmin.serve(state, question, size=2_000)
    assert len(orjson.dumps(cut)) <= 2_100
    numbers = [r["number"] for r in cut["result"]["items"]]
    assert cut["result"]["more"] is True and numbers == rooms[: len(numbers)] and numbers
    bad = await workeradmin.serve(state, {"op": "admin?", "call": "rooms", "args": ["x"]}, 999)
    assert "bad admin question" in bad["error"]
