"""Directory storms for the test suite: many clients log in at once, then call each
other in pairs at once. Completeness and "nobody closed" are asserted; timing is the
benchmark's business (tools/bench --directory), never the suite's.

Every wait has a deadline, and every client is a real WebSocket over loopback
(tests/faults/wsclient.py: wsproto, answers pings while it reads).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from tests.faults.wsclient import Closed, WsClient
from tests.support.client import fold_directory


class StormUser:
    """One logged-in client: its directory as it learnt it, the rest in `inbox`."""

    def __init__(self, client: WsClient, name: str, everyone: set[str]) -> None:
        self.client = client
        self.name = name
        self.directory: dict[str, str] = {}
        # What the directory must come to (`until_all`), and whether it has.
        self.want: Callable[[dict[str, str]], bool] = lambda d: everyone <= d.keys()
        self.satisfied = trio.Event()
        self.logged_in = trio.Event()
        self.closed: Closed | None = None
        self.left = False  # the test ended this connection on purpose
        self.frames = 0  # directory frames received
        self.inbox_send, self.inbox = trio.open_memory_channel[dict[str, Any]](math.inf)

    async def run(self) -> None:
        """Read until the connection ends; fold directory frames, queue the rest."""
        try:
            while True:
                message = json.loads(await self.client.recv(timeout=math.inf))
                kind = message.get("type")
                if fold_directory(self.directory, message):
                    self.frames += 1
                elif kind == "LOGIN":
                    assert message["success"] is True, message
                    self.logged_in.set()
                    continue
                else:
                    self.inbox_send.send_nowait(message)
                    continue
                self.check()
        except Closed as closed:
            self.closed = closed

    def leave(self) -> None:
        """Drop the connection at once (no close handshake), as a crashed client does."""
        self.left = True
        self.client.abort()

    def check(self) -> None:
        if self.want(self.directory):
            self.satisfied.set()

    async def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        with trio.fail_after(timeout):
            message = await self.inbox.receive()
        assert message["type"] == kind, (self.name, message)
        return message


async def _open(port: int, count: int, parallel: int = 50) -> list[WsClient]:
    clients: list[WsClient] = []

    async def opener(share: int) -> None:
        for _ in range(share):
            clients.append(await WsClient.connect(port))

    async with trio.open_nursery() as nursery:
        for i in range(parallel):
            nursery.start_soon(opener, count // parallel + (1 if i < count % parallel else 0))
    return clients


@contextlib.asynccontextmanager
async def logged_in_storm(
    port: int, count: int, timeout: float, prefix: str = "u"
) -> AsyncIterator[list[StormUser]]:
    """`count` clients connect, then all send LOGIN at once; yields once every one of
    them knows every other (and maybe more), asserting none was closed; closes them
    all after."""
    with trio.fail_after(timeout):
        clients = await _open(port, count)
    everyone = {f"{prefix}{i}" for i in range(count)}
    users = [StormUser(c, f"{prefix}{i}", everyone) for i, c in enumerate(clients)]
    try:
        async with trio.open_nursery() as nursery:
            for user in users:
                nursery.start_soon(user.run)
            # Every LOGIN is written before any answer is read: all at once.
            for user in users:
                await user.client.send_json({"type": "LOGIN", "name": user.name})
            with trio.fail_after(timeout):
                for user in users:
                    await user.satisfied.wait()
            assert_nobody_closed(users)
            yield users
            assert_nobody_closed(users)
            nursery.cancel_scope.cancel()
    finally:
        for user in users:
            user.client.abort()


async def until_all(
    users: list[StormUser], want: Callable[[dict[str, str]], bool], timeout: float
) -> None:
    """Wait until every user's directory satisfies `want`."""
    for user in users:
        user.want, user.satisfied = want, trio.Event()
        user.check()
    with trio.fail_after(timeout):
        for user in users:
            await user.satisfied.wait()


def assert_nobody_closed(users: list[StormUser]) -> None:
    closed = [(u.name, u.closed) for u in users if u.closed is not None and not u.left]
    assert not closed, f"{len(closed)} of {len(users)} closed, e.g. {closed[:3]}"


async def calls_at_once(users: list[StormUser], timeout: float) -> None:
    """Users 2k call 2k+1, all at once; every callee accepts; every call must connect."""
    callers, callees = users[0::2], users[1::2]
    for caller, callee in zip(callers, callees, strict=False):
        await caller.client.send_json({"type": "CALL", "to": callee.name, "media": "data"})

    async def answer(caller: StormUser, callee: StormUser) -> None:
        ringing = await caller.expect("RINGING", timeout)
        incoming = await callee.expect("INCOMINGCALL", timeout)
        assert incoming["call"] == ringing["call"] and incoming["from"] == caller.name
        await callee.client.send_json({"type": "ACCEPT", "call": incoming["call"]})
        for party in (caller, callee):
            accepted = await party.expect("CALLACCEPTED", timeout)
            assert accepted["call"] == incoming["call"]

    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            for caller, callee in zip(callers, callees, strict=False):
                nursery.start_soon(answer, caller, callee)
