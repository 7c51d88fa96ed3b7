"""The shared checks every fault test ends with, and the peers they use.

- `check_invariants(server, injector)`: the registry holds only live actors, rooms
  are consistent and within capacity, no task of an ended connection is running and
  the task tree holds nothing but the listener and the live connections, and the
  server still serves (a new pair makes a room and relays).
- `Pair` / `open_pair`: two clients in one room that relay numbered messages and
  check what arrives: in order and unchanged, or followed by PEERLEFT/close.
- `Bystanders`: pairs in other rooms relaying all through a fault, recording their
  latency and any error or stall.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.lowlevel
import trio.testing

from rtcserver.app import Server
from rtcserver.settings import Settings

from .inject import FaultInjector
from .wsclient import Closed, WsClient, connected

# Short timers so that dead peers, stuck sends and slow heads are found in a second.
FAULT_SETTINGS = Settings(
    host="127.0.0.1",
    port=0,
    stun=(),
    keepalive_interval=0.5,
    keepalive_timeout=0.5,
    handshake_timeout=1.0,
    drain_timeout=2.0,
    # A lost socket's session waits this long for a RESUME (its peer hears PEERAWAY
    # first): short, so that the room is seen freed within a test's deadlines.
    resume_grace=1.0,
)

PEERLEFT = {"type": "PEERLEFT"}
PEERAWAY = {"type": "PEERAWAY"}
PEERJOINED = {"type": "PEERJOINED"}


# ---------------------------------------------------------------- the task tree


def walk(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    yield task
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            yield from walk(child)


def live_tasks() -> set[trio.lowlevel.Task]:
    return set(walk(trio.lowlevel.current_root_task()))


def check_tasks(server: Server, injector: FaultInjector) -> None:
    """No task of an ended connection runs; the server's tasks are its permanent
    services and its open connections, and nothing else."""
    alive = live_tasks()
    state = server.state
    children = set(server.nursery.child_tasks)
    connection_tasks = {conn.task for conn in injector.connections} & children
    assert len(connection_tasks) == state.connections, (
        f"{len(connection_tasks)} connection tasks for {state.connections} connections"
    )
    assert server.supervisor.running["connection"] == state.connections
    for child in children - connection_tasks:
        assert "_run_handler" not in child.name, f"connection task {child} escaped the books"
    for child in connection_tasks:
        # connection -> (actor nursery: writer) + (trio-websocket's reader task)
        size = sum(1 for _ in walk(child))
        assert size <= 6, f"{child.name} has {size} tasks"
    for conn in injector.connections:
        if conn.ended.is_set():
            assert conn.task not in alive, f"task of ended connection {conn.address} runs"


def check_registry(server: Server, injector: FaultInjector | None) -> None:
    """Every room's members are live actors, or sessions whose socket was lost waiting
    for a RESUME (state, not tasks: their connection has ended); rooms are non-empty
    and within capacity."""
    state = server.state
    registry = state.registry
    away = set(state.sessions.away_actors())
    members = 0
    for room, actors in registry.rooms().items():
        assert actors, f"empty room {room} survives"
        assert len(actors) <= registry.capacity, f"room {room} holds {len(actors)}"
        for actor in actors:
            members += 1
            if actor in away:
                assert actor not in state.actors, f"{actor} is both away and live"
                assert registry.room_of(actor) == room
                continue
            assert actor in state.actors, f"{actor} in room {room} has ended"
            assert registry.room_of(actor) == room
            if injector is not None:
                assert actor not in injector.ended_actors, f"{actor} ended but is in {room}"
    assert registry.statistics().members == members
    if injector is not None:
        assert not (state.actors & injector.ended_actors), "an ended actor is still listed"


async def settle() -> None:
    """Let every task run until it waits on the network or a timer."""
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)


async def check_invariants(server: Server, injector: FaultInjector) -> None:
    await settle()
    check_registry(server, injector)
    check_tasks(server, injector)
    await assert_serves(server.port)


# ---------------------------------------------------------------- pairs


async def assert_serves(port: int) -> None:
    """A new pair can make a room, enter it and relay both ways."""
    async with open_pair(port) as pair:
        await pair.exchange(3)


@attrs.define(eq=False)
class Pair:
    a: WsClient
    b: WsClient
    room: int
    sent: dict[str, list[str]] = attrs.field(factory=lambda: {"a": [], "b": []})
    seq: int = 0

    def client(self, who: str) -> WsClient:
        return self.a if who == "a" else self.b

    async def send(self, who: str, size: int = 0) -> str:
        self.seq += 1
        text = json.dumps(
            {
                "type": "DATA",
                "from": who,
                "seq": self.seq,
                "t": trio.current_time(),
                "pad": "x" * size,
            }
        )
        self.sent[who].append(text)
        await self.client(who).send(text)
        return text

    async def exchange(self, rounds: int, timeout: float = 5.0) -> list[float]:
        """Relay `rounds` messages each way, one at a time; the one-way latencies."""
        latencies = []
        for _ in range(rounds):
            for sender, receiver in (("a", "b"), ("b", "a")):
                text = await self.send(sender)
                got = await self.client(receiver).recv(timeout)
                assert got == text, f"relay changed or reordered: {got!r} != {text!r}"
                latencies.append(trio.current_time() - json.loads(got)["t"])
        return latencies


@asynccontextmanager
async def open_pair(port: int) -> AsyncIterator[Pair]:
    async with connected(port) as a, connected(port) as b:
        await a.send_json({"type": "GETROOM", "value": ""})
        reply = await a.recv_json()
        assert reply["type"] == "GETROOM", reply
        room = reply["value"]
        await b.send_json({"type": "ENTERROOM", "value": room})
        assert await a.recv_json() == PEERJOINED
        yield Pair(a=a, b=b, room=room)


async def expect_in_order_then_gone(
    receiver: WsClient, sent: list[str], timeout: float = 5.0, *, peerleft: bool = True
) -> list[str]:
    """Invariant 5 from the receiving side: a prefix of `sent`, unchanged and in order,
    then PEERLEFT, perhaps after PEERAWAY (a lost socket's session waits for a RESUME
    first), or, unless `peerleft`, the end of the receiver's own connection.
    Returns the messages that came."""
    got: list[str] = []
    told = away = False
    with trio.fail_after(timeout):
        while True:
            try:
                text = await receiver.recv(math.inf)
            except Closed:
                break
            message = json.loads(text)
            if message == PEERLEFT:
                told = True
                break
            if message == PEERAWAY and not away:
                away = True
                continue
            got.append(text)
    assert got == sent[: len(got)], (
        f"messages before the fault arrived changed or reordered: {got[:3]} vs {sent[:3]}"
    )
    if peerleft:
        assert told, "the peer vanished and the receiver was never told (no PEERLEFT)"
    return got


async def expect_peerleft(client: WsClient, timeout: float = 5.0) -> None:
    """The next non-relay message is PEERLEFT (relayed DATA before it is fine, and one
    PEERAWAY: a lost socket's session waits `resume_grace` for a RESUME first)."""
    away = False
    with trio.fail_after(timeout):
        while True:
            message = await client.recv_json(math.inf)
            if message.get("type") == "DATA":
                continue
            if message == PEERAWAY and not away:
                away = True
                continue
            assert message == PEERLEFT, message
            return


# ---------------------------------------------------------------- bystanders


@attrs.define(eq=False)
class Bystanders:
    """Pairs in other rooms that keep relaying while a test does harm elsewhere."""

    latencies: list[float] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    rounds: int = 0
    progress: trio.Event = attrs.field(factory=trio.Event)

    def tick(self) -> None:
        self.rounds += 1
        self.progress.set()
        self.progress = trio.Event()

    async def wait_rounds(self, count: int, timeout: float = 5.0) -> None:
        """Wait until `count` more round trips have been relayed (a stall fails it)."""
        target = self.rounds + count
        with trio.fail_after(timeout):
            while self.rounds < target:
                await self.progress.wait()

    def p99(self) -> float:
        return percentile(self.latencies, 99)

    def check(self, max_latency: float) -> None:
        assert not self.errors, self.errors
        assert self.rounds > 0, "the bystanders never got to relay"
        worst = max(self.latencies)
        assert worst < max_latency, f"a bystander stalled {worst:.3f}s (p99 {self.p99():.4f}s)"


@asynccontextmanager
async def bystanders(
    port: int, pairs: int = 3, max_rounds: int = 100_000, period: float = 0.02
) -> AsyncIterator[Bystanders]:
    """Run `pairs` relaying pairs for the duration of the block; check them after.
    Each pair relays one round trip every `period` seconds: well under the rate limit,
    so whatever goes wrong is the fault's doing."""
    watch = Bystanders()

    async def relay(pair: Pair, stop: trio.Event) -> None:
        try:
            for _ in range(max_rounds):
                with trio.move_on_after(period):  # pacing, not waiting: stop may end it
                    await stop.wait()
                if stop.is_set():
                    return
                watch.latencies.extend(await pair.exchange(1))
                watch.tick()
        except (Closed, AssertionError, trio.TooSlowError) as exc:
            watch.errors.append(f"room {pair.room}: {exc!r}")

    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        ready: list[Pair] = []

        async def run_pair(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            async with open_pair(port) as pair:
                ready.append(pair)
                task_status.started()
                await relay(pair, stop)

        for _ in range(pairs):
            await nursery.start(run_pair)
        yield watch
        stop.set()


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"n={len(values)} p50={percentile(values, 50) * 1e3:.2f}ms "
        f"p99={percentile(values, 99) * 1e3:.2f}ms max={max(values) * 1e3:.2f}ms "
        f"mean={statistics.fmean(values) * 1e3:.2f}ms"
    )


def dump(obj: Any) -> str:
    return json.dumps(obj)
