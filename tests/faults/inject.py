"""Fault injection into the server's connection actors, from the outside.

Nothing here touches production code paths: `FaultInjector.install(monkeypatch)`
wraps three module-level names the server looks up at call time,
- `rtcserver.app.handle_connection` (to learn each connection's Trio task),
- `rtcserver.connection.frontdoor.run_actor` (to wrap the actor's WebSocket and mailbox), and
- `rtcserver.connection.lifecycle.dispatch` (the synchronous step that handles one frame),
so each actor's await points become places where a test can make it fail:

    injector.arm(client.address, Plan(Point.SEND, Fault.CRASH, nth=3))

Await points (`Point`): RECEIVE (reader's `receive`), MAILBOX (writer's mailbox
`wait`), SEND (writer's `flush`), PING (the writer's keepalive `ping`), CLOSE (the
final `aclose`), and the synchronous step DISPATCH (the reader acting on a frame).
Faults (`Fault`): CRASH (raise), CANCEL (the actor's scope is cancelled with no
reason given), HANG (wait forever at that point), LOSE_SOCKET (the TCP socket is
closed under the actor's feet).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel

import rtcserver.app
import rtcserver.connection.frontdoor
import rtcserver.connection.lifecycle
from rtcserver.actors.actor import Actor
from rtcserver.server.state import ServerState


class InjectedCrash(RuntimeError):
    """The exception a CRASH fault raises: easy to tell apart from a real bug."""


class Point(enum.Enum):
    RECEIVE = "receive"
    MAILBOX = "mailbox"
    SEND = "send"
    PING = "ping"
    CLOSE = "close"
    DISPATCH = "dispatch"


class Fault(enum.Enum):
    CRASH = "crash"
    CANCEL = "cancel"
    HANG = "hang"
    LOSE_SOCKET = "lose-socket"


# DISPATCH is synchronous: it can only raise or cancel its actor, not wait.
SYNC_FAULTS = (Fault.CRASH, Fault.CANCEL)


@attrs.define
class Plan:
    point: Point
    fault: Fault
    nth: int = 1  # fire on the nth time the actor reaches `point`
    fired: bool = False


@attrs.define(eq=False)
class Connection:
    """What the injector knows about one server-side connection."""

    task: trio.lowlevel.Task
    address: str | None = None
    actor: Actor | None = None
    ended: trio.Event = attrs.field(factory=trio.Event)
    hits: dict[Point, int] = attrs.field(factory=dict)
    injected: list[tuple[Point, Fault]] = attrs.field(factory=list)
    stream: Any = None  # the actor's byte stream (what LOSE_SOCKET closes)


class FaultInjector:
    def __init__(self) -> None:
        self.plans: dict[str, list[Plan]] = {}
        self.connections: list[Connection] = []
        self.by_address: dict[str, Connection] = {}
        self.by_actor: dict[int, Connection] = {}
        self.ended_actors: set[Actor] = set()
        self.new_actor = trio.Event()
        # For the chaos test: called at every await point of every actor.
        self.random_fault: Callable[[Connection, Point], Fault | None] | None = None

    # ------------------------------------------------------------------ setup

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FaultInjector:
        real_handle = rtcserver.app.handle_connection
        real_run_actor = rtcserver.connection.frontdoor.run_actor
        real_dispatch = rtcserver.connection.lifecycle.dispatch

        async def handle_connection(state: ServerState, stream: trio.SocketStream) -> None:
            conn = Connection(task=trio.lowlevel.current_task())
            try:
                peer = stream.socket.getpeername()
                conn.address = f"{peer[0]}:{peer[1]}"
                self.by_address[conn.address] = conn
            except OSError:
                pass
            self.connections.append(conn)
            try:
                await real_handle(state, stream)
            finally:
                conn.ended.set()

        async def run_actor(
            state: ServerState, ws: Any, actor: Actor, *args: Any, **kw: Any
        ) -> None:
            conn = self.by_address.get(actor.address)
            if conn is None:  # pragma: no cover - addresses always match without a proxy
                conn = Connection(task=trio.lowlevel.current_task(), address=actor.address)
            conn.actor = actor
            conn.stream = ws.stream
            self.by_actor[actor.id] = conn
            self.new_actor.set()
            self.new_actor = trio.Event()
            actor.mailbox = _FaultyMailbox(actor.mailbox, self, conn)  # type: ignore[assignment]
            try:
                await real_run_actor(state, _FaultyWebSocket(ws, self, conn), actor, *args, **kw)
            finally:
                self.ended_actors.add(actor)

        def dispatch(state: ServerState, who: Any, text: str) -> None:
            # `who` is the actor, or the connection's session record holding it.
            actor: Actor = getattr(who, "actor", who)
            conn = self.by_actor.get(actor.id)
            if conn is not None:
                fault = self._due(conn, Point.DISPATCH)
                if fault is Fault.CRASH:
                    raise InjectedCrash(f"injected crash in dispatch of {actor}")
                if fault is not None:  # CANCEL: unwinds at the reader's next await
                    actor.scope.cancel()
            real_dispatch(state, who, text)

        monkeypatch.setattr(rtcserver.app, "handle_connection", handle_connection)
        monkeypatch.setattr(rtcserver.connection.frontdoor, "run_actor", run_actor)
        monkeypatch.setattr(rtcserver.connection.lifecycle, "dispatch", dispatch)
        return self

    # ------------------------------------------------------------------ arming

    def arm(self, address: str, *plans: Plan) -> None:
        """Make the connection from client `address` fail as `plans` say."""
        self.plans.setdefault(address, []).extend(plans)

    def connection(self, address: str) -> Connection:
        return self.by_address[address]

    async def actor_of(self, address: str, timeout: float = 5.0) -> Actor:
        with trio.fail_after(timeout):
            while True:
                conn = self.by_address.get(address)
                if conn is not None and conn.actor is not None:
                    return conn.actor
                await self.new_actor.wait()

    async def wait_ended(self, address: str, timeout: float = 5.0) -> None:
        """Wait until the connection's task (and so every task below it) has ended."""
        with trio.fail_after(timeout):
            await self.by_address[address].ended.wait()

    # ------------------------------------------------------------------ firing

    def _due(self, conn: Connection, point: Point) -> Fault | None:
        count = conn.hits.get(point, 0) + 1
        conn.hits[point] = count
        fault: Fault | None = None
        for plan in self.plans.get(conn.address or "", ()):
            if not plan.fired and plan.point is point and plan.nth == count:
                plan.fired = True
                fault = plan.fault
                break
        if fault is None and self.random_fault is not None:
            fault = self.random_fault(conn, point)
        if fault is not None:
            conn.injected.append((point, fault))
        return fault

    async def hit(self, conn: Connection, point: Point) -> None:
        fault = self._due(conn, point)
        if fault is None:
            return
        actor = conn.actor
        assert actor is not None
        if fault is Fault.CRASH:
            raise InjectedCrash(f"injected crash at {point.value} of {actor}")
        if fault is Fault.CANCEL:
            actor.scope.cancel()
            await trio.lowlevel.checkpoint()
        elif fault is Fault.HANG:
            await trio.sleep_forever()
        elif fault is Fault.LOSE_SOCKET:
            inner = getattr(conn.stream, "inner", conn.stream)
            await trio.aclose_forcefully(inner)


class _FaultyWebSocket:
    """The actor's WebSocket (engine.WebSocket), with a fault hook before each await."""

    def __init__(self, ws: Any, injector: FaultInjector, conn: Connection) -> None:
        self._ws = ws
        self._injector = injector
        self._conn = conn

    async def _hit(self, point: Point) -> None:
        await self._injector.hit(self._conn, point)

    async def receive(self) -> list[str | bytes]:
        await self._hit(Point.RECEIVE)
        return await self._ws.receive()  # type: ignore[no-any-return]

    def write_now(self) -> bool:
        # No fast path under test: every write goes through `flush`, the SEND point.
        return False

    async def flush(self, progress: Any = None) -> None:
        await self._hit(Point.SEND)
        await self._ws.flush(progress)

    async def ping(self) -> None:
        await self._hit(Point.PING)
        await self._ws.ping()

    async def aclose(self, code: int, reason: str = "") -> None:
        await self._hit(Point.CLOSE)
        await self._ws.aclose(code, reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


class _FaultyMailbox:
    """The actor's mailbox, with a fault hook before each wait of its writer."""

    def __init__(self, mailbox: Any, injector: FaultInjector, conn: Connection) -> None:
        self._mailbox = mailbox
        self._injector = injector
        self._conn = conn

    async def wait(self) -> None:
        await self._injector.hit(self._conn, Point.MAILBOX)
        await self._mailbox.wait()

    def __len__(self) -> int:
        return len(self._mailbox)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mailbox, name)


def random_faults(
    rng: random.Random, probability: float
) -> Callable[[Connection, Point], Fault | None]:
    """A `random_fault` policy: at each await point, fail with `probability`."""

    def choose(conn: Connection, point: Point) -> Fault | None:
        if rng.random() >= probability:
            return None
        if point is Point.DISPATCH:
            return rng.choice(SYNC_FAULTS)
        return rng.choice(list(Fault))

    return choose
