"""Faults at the await points of a seat (connection/seats.py, guests.py): the link's
connect fails, the link breaks while the room's traffic flows, the home's client goes
away mid-flood. The seated client gets a clear answer (ERROR `worker-unreachable`) or
its room hears PEERLEFT; nothing of the seat stays on either worker; both go on."""

from __future__ import annotations

import contextlib
import socket

import trio

from rtcserver.app import Server
from rtcserver.wire import links
from tests.conftest import StartServer
from tests.support import owners
from tests.support.client import Client, connect
from tests.support.waiting import eventually
from tests.test_phone import login, until
from tests.test_worker_seats import seated
from tests.test_workers import _creator_on

Stack = contextlib.AsyncExitStack


def _links(server: Server, worker: int) -> links.Links:
    found = owners.SIBLINGS[server][worker].state.links
    assert found is not None
    return found


async def _clean(server: Server) -> None:
    def clean() -> bool:
        return all(
            not w.state.seated and w.state.registry.statistics().members == 0
            for w in owners.SIBLINGS[server]
        )

    await eventually(clean, 10, "no seat and no member left on any worker")


async def _still_serving(url: str) -> None:
    """Both workers still relay: a pair in a room of each."""
    async with Stack() as stack:
        for worker in (0, 1):
            creator, room = await _creator_on(stack, url, worker)
            joiner = await stack.enter_async_context(connect(url))
            await joiner.send({"type": "ENTERROOM", "value": room})
            await creator.expect("PEERJOINED")
            await joiner.send({"type": "OFFER", "w": worker})
            assert await creator.expect("OFFER") == {"type": "OFFER", "w": worker}


async def test_a_link_that_cannot_connect_is_worker_unreachable(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        ann = await login(stack, url, "ann")
        creator, room = await _creator_on(stack, url, 1)
        home = _links(server, 0)
        real = home._address_of
        home._address_of = lambda index: b"\0rtcserver-test-nobody-listens"
        try:
            await ann.send({"type": "ENTERROOM", "value": room})
            error = await until(ann, "ERROR")
        finally:
            home._address_of = real
        assert error["code"] == "worker-unreachable", error
        await creator.expect_nothing()  # no guest ever joined
        # Once the link can connect, the same ENTERROOM works.
        await ann.send({"type": "ENTERROOM", "value": room})
        await creator.expect("PEERJOINED")
        await ann.send({"type": "OFFER"})
        assert await creator.expect("OFFER") == {"type": "OFFER"}
    await _clean(server)
    await _still_serving(url)


async def _flood(client: Client, count: int) -> None:
    for i in range(count):
        await client.send({"type": "CANDIDATE", "i": i})


async def test_a_link_broken_mid_traffic_ends_the_seat_on_both_sides(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2", rate_limit=0)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        ann, creator, room = await seated(stack, url)
        received: list[int] = []

        async def count_relays() -> None:
            with contextlib.suppress(Exception):
                while True:
                    message = await creator.recv(timeout=2)
                    if message["type"] == "CANDIDATE":
                        received.append(message["i"])
                    elif message["type"] == "PEERLEFT":
                        return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(count_relays)
            await _flood(ann, 200)
            await eventually(lambda: len(received) > 0, 5, "relays flowing")
            out = _links(server, 0)._out[1]
            assert out.stream is not None
            out.stream.socket.shutdown(socket.SHUT_RDWR)  # the link breaks under it
            error = await until(ann, "ERROR", timeout=10)
            assert error["code"] == "worker-unreachable", error
        # What arrived arrived in order, with no gap: nothing was reordered or cut.
        assert received == list(range(len(received)))
        await eventually(
            lambda: not any(w.state.seated for w in owners.SIBLINGS[server]),
            5,
            "the seat gone at home",
        )
        # The room's worker let the guest go: only the creator is left in it.
        await eventually(
            lambda: len(owners.registry(server, room).members(room)) == 1, 5, "guest departed"
        )
    await _clean(server)
    await _still_serving(url)


async def test_the_home_client_gone_mid_flood_frees_its_seat(start_server: StartServer) -> None:
    server = await start_server(workers="2", rate_limit=0)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        creator, room = await _creator_on(stack, url, 1)
        for round_ in range(5):
            async with connect(url) as ann:
                await ann.send({"type": "LOGIN", "name": f"ann{round_}"})
                await until(ann, "LOGIN")
                await ann.send({"type": "ENTERROOM", "value": room})
                await creator.expect("PEERJOINED")
                for i in range(50):  # in flight both ways as the socket goes
                    await ann.send({"type": "CANDIDATE", "i": i})
                    await creator.send({"type": "CANDIDATE", "i": i})
            with trio.fail_after(10):
                while (await creator.recv())["type"] != "PEERLEFT":
                    pass
            assert len(owners.registry(server, room).members(room)) == 1
    await _clean(server)
    await _still_serving(url)
