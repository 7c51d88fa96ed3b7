"""Faults at the await points of a handover between workers (connection/handover.py):
the owner's inbox refuses, never reads, or the sender is cancelled while sending, and
the client goes away in the middle. The joiner gets a clear answer or its connection
ends; nothing of it stays on either worker; both go on serving."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import trio

import rtcserver.connection.handover
from rtcserver.app import Server
from rtcserver.wire import fdpass
from tests.conftest import StartServer
from tests.support import owners
from tests.support.client import connect
from tests.support.waiting import eventually

Stack = contextlib.AsyncExitStack


async def _refused(address: bytes, header: bytes, fd: int | None = None) -> None:
    await trio.lowlevel.checkpoint()
    raise fdpass.Unreachable("injected: nobody listens")


async def _never_read(address: bytes, header: bytes, fd: int | None = None) -> None:
    await trio.sleep_forever()  # a full inbox that is never read


async def _idle(server: Server) -> None:
    async def idle() -> bool:
        for worker in owners.SIBLINGS[server]:
            state = worker.state
            if state.connections or state.registry.statistics().members:
                return False
            if worker.supervisor.running["connection"] != 0:
                return False
        return True

    await eventually(idle, 10, "every connection gone from both workers")


async def _joiner_of_foreign_room(stack: Stack, url: str) -> tuple[Any, Any, int]:
    """A creator on some worker, and a joiner that landed on the other one (it learns
    where it landed from its session's id, which names its worker)."""
    for _ in range(40):
        creator = await stack.enter_async_context(connect(url))
        room = await creator.create_room()
        joiner = await stack.enter_async_context(connect(url))
        await joiner.send({"type": "SESSION"})
        landed = int((await joiner.expect("SESSION"))["session"].split(".")[0])
        if landed != room % 2:
            return creator, joiner, room
    raise AssertionError("no joiner landed on the other worker")


@pytest.mark.parametrize(
    "send",
    [_refused, _never_read],
    ids=["refused", "never-read"],
)
async def test_an_unreachable_owner_is_wrongroom_and_the_joiner_stays(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, send: Callable[..., Any]
) -> None:
    server = await start_server(workers="2", keepalive_timeout=0.5, keepalive_interval=0.2)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        creator, joiner, room = await _joiner_of_foreign_room(stack, url)
        monkeypatch.setattr(rtcserver.connection.handover.fdpass, "send", send)
        await joiner.send({"type": "ENTERROOM", "value": room})
        assert await joiner.recv(timeout=5) == {"type": "WRONGROOM", "reason": "no-such-room"}
        monkeypatch.undo()
        # The joiner's connection goes on where it is, and hands over once it can.
        await joiner.send({"type": "ENTERROOM", "value": room})
        await creator.expect("PEERJOINED")
        await joiner.send({"type": "OFFER", "sdp": "x"})
        assert await creator.recv() == {"type": "OFFER", "sdp": "x"}
    await _idle(server)


async def test_a_handover_cancelled_midway_leaves_nothing(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"

    async def crash(address: bytes, header: bytes, fd: int | None = None) -> None:
        await trio.lowlevel.checkpoint()
        raise RuntimeError("injected crash while handing over")

    async with Stack() as stack:
        creator, joiner, room = await _joiner_of_foreign_room(stack, url)
        monkeypatch.setattr(rtcserver.connection.handover.fdpass, "send", crash)
        await joiner.send({"type": "ENTERROOM", "value": room})
        closed = await joiner.expect_close(5)
        assert closed.code == 1011  # the actor crashed: internal error, logged
        monkeypatch.undo()
        await creator.expect_nothing(0.3)  # it never joined: no PEERJOINED, no PEERLEFT
    await _idle(server)
    assert sum(w.state.counters["crashes"] for w in owners.SIBLINGS[server]) == 1


async def test_a_client_gone_during_the_handover_leaves_nothing(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    sending = trio.Event()
    release = trio.Event()
    real_send = fdpass.send

    async def slow(address: bytes, header: bytes, fd: int | None = None) -> None:
        sending.set()
        await release.wait()
        await real_send(address, header, fd)

    async with Stack() as stack:
        creator, joiner, room = await _joiner_of_foreign_room(stack, url)
        monkeypatch.setattr(rtcserver.connection.handover.fdpass, "send", slow)
        await joiner.send({"type": "ENTERROOM", "value": room})
        with trio.fail_after(5):
            await sending.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(joiner.ws.aclose)  # gone while its socket is on its way
            release.set()
            # The owner adopted a socket its client has closed: it acts on what was
            # read (ENTERROOM), then ends it as any client that left.
            await creator.expect("PEERJOINED")
            assert await creator.expect("PEERLEFT") == {"type": "PEERLEFT"}
    await _idle(server)
