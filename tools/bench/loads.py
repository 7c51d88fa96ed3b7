"""The loads, as one worker process runs its share of each.

Every load follows the same conversation with the conductor (see worker.py): set up,
say ("ready", ...), wait for ("go", start_ns, end_ns), run until end_ns (or until its
count is done), say ("stopped", ...) at once so the conductor can read CPU counters
at the edge of the window, then drain, close, and say ("result", ...). Times are
time.monotonic_ns(), one clock for every process on the machine.

Every loop here is bounded twice: by a count and by a deadline.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

from .client import Connection, Endpoint
from .rooms import (
    BENCH_PREFIX,
    SETUP_ERRORS,
    Room,
    SetupTally,
    bench_message,
    close_all,
    open_room,
    open_rooms,
    pad_for,
    sent_ns,
    sleep_until,
    wait_for,
)
from .worker import Control

# Latency samples a worker keeps per load; past this it counts but stops recording.
MAX_SAMPLES = 2_000_000


class Tally:
    """Counters of one load in one worker; plain attributes, cheap on the hot path."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.received_in_window = 0
        self.sent_in_window = 0
        self.late = 0
        self.unexpected = 0
        self.first_unexpected = ""
        self.latency_ns = array("q")

    def other(self, payload: bytes) -> None:
        """A message that is not ours arrived mid-load (PEERLEFT, ERROR, ...)."""
        self.unexpected += 1
        if not self.first_unexpected:
            self.first_unexpected = payload[:200].decode(errors="replace")

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "received": self.received,
            "sent_in_window": self.sent_in_window,
            "received_in_window": self.received_in_window,
            "late": self.late,
            "unexpected": self.unexpected,
            "first_unexpected": self.first_unexpected,
            "latency_ns": self.latency_ns.tobytes(),
        }


def _connections(rooms: list[Room]) -> list[Connection]:
    return [conn for room in rooms for conn in room]


async def _setup(
    control: Control, url: str, insecure: bool, rooms: int, concurrency: int, timeout: float
) -> tuple[list[Room], SetupTally]:
    endpoint = Endpoint.resolve(url, insecure)
    tally = SetupTally()
    control.counter = lambda: tally.opened
    opened = await open_rooms(endpoint, rooms, concurrency, timeout, tally)
    return opened, tally


async def pingpong(
    control: Control,
    url: str,
    insecure: bool,
    rooms: int,
    size: int,
    concurrency: int,
    setup_timeout: float,
    drain_timeout: float,
    max_messages: int,
) -> None:
    """Closed loop: one message in flight per room, each arrival answered at once."""
    opened, setup = await _setup(control, url, insecure, rooms, concurrency, setup_timeout)
    control.send(
        "ready",
        {"rooms": len(opened), "setup_failed": setup.failed, "setup_error": setup.first_error},
    )
    _, start_ns, end_ns = await control.expect("go")
    pad = pad_for(size)
    tally = Tally()
    latency = tally.latency_ns
    monotonic_ns = time.monotonic_ns

    def answerer(me: Connection) -> Callable[[bytes], None]:
        def on_text(payload: bytes) -> None:
            now = monotonic_ns()
            if not payload.startswith(BENCH_PREFIX):
                tally.other(payload)
                return
            tally.received += 1
            if now < end_ns:
                tally.received_in_window += 1
                if len(latency) < MAX_SAMPLES:
                    latency.append(now - sent_ns(payload))
                if tally.sent < max_messages:
                    me.send(bench_message(now, tally.sent, pad))
                    tally.sent += 1

        return on_text

    for creator, joiner in opened:
        creator.on_text = answerer(creator)
        joiner.on_text = answerer(joiner)
    control.counter = lambda: tally.received
    await sleep_until(start_ns)
    for creator, _ in opened:
        creator.send(bench_message(monotonic_ns(), tally.sent, pad))
        tally.sent += 1
    await sleep_until(end_ns)
    tally.sent_in_window = tally.sent
    control.send("stopped", {"end_ns": monotonic_ns()})
    drained = await wait_for(lambda: tally.received >= tally.sent, drain_timeout)
    await close_all(_connections(opened))
    control.send("result", {**tally.summary(), "drained": drained, "rooms": len(opened)})


async def openloop(
    control: Control,
    url: str,
    insecure: bool,
    rooms: int,
    rate: float,
    size: int,
    late_ms: float,
    concurrency: int,
    setup_timeout: float,
    drain_timeout: float,
) -> None:
    """Open loop: messages leave on a fixed schedule whatever the server's answers do."""
    opened, setup = await _setup(control, url, insecure, rooms, concurrency, setup_timeout)
    control.send(
        "ready",
        {"rooms": len(opened), "setup_failed": setup.failed, "setup_error": setup.first_error},
    )
    _, start_ns, end_ns = await control.expect("go")
    pad = pad_for(size)
    tally = Tally()
    latency = tally.latency_ns
    late_ns = int(late_ms * 1e6)
    lag_ns = array("q")  # how far behind its schedule each message left
    monotonic_ns = time.monotonic_ns

    def on_text(payload: bytes) -> None:
        now = monotonic_ns()
        if not payload.startswith(BENCH_PREFIX):
            tally.other(payload)
            return
        tally.received += 1
        took = now - sent_ns(payload)
        if took > late_ns:
            tally.late += 1
        if now < end_ns:
            tally.received_in_window += 1
        if len(latency) < MAX_SAMPLES:
            latency.append(took)

    senders = _connections(opened)
    for conn in senders:
        conn.on_text = on_text
    control.counter = lambda: tally.received
    interval_ns = 1e9 / rate if rate > 0 else float("inf")
    total = int((end_ns - start_ns) / interval_ns) if senders and rate > 0 else 0
    await sleep_until(start_ns)
    k = 0
    while k < total:
        now = monotonic_ns()
        if now >= end_ns:
            break
        due = start_ns + int(k * interval_ns)
        while due <= now and k < total:
            sent_at = monotonic_ns()
            senders[k % len(senders)].send(bench_message(sent_at, k, pad))
            if len(lag_ns) < MAX_SAMPLES:
                lag_ns.append(sent_at - due)
            k += 1
            due = start_ns + int(k * interval_ns)
        tally.sent = k
        await asyncio.sleep(max(0.0, (due - monotonic_ns()) / 1e9))
    tally.sent = k
    await sleep_until(end_ns)
    tally.sent_in_window = k
    control.send("stopped", {"end_ns": monotonic_ns()})
    drained = await wait_for(lambda: tally.received >= tally.sent, drain_timeout)
    await close_all(senders)
    control.send(
        "result",
        {**tally.summary(), "drained": drained, "rooms": len(opened), "lag_ns": lag_ns.tobytes()},
    )


async def idle(
    control: Control, url: str, insecure: bool, concurrency: int, setup_timeout: float
) -> None:
    """Rooms that stay open and quiet, grown in steps the conductor asks for.

    Commands: ("connect", pairs) -> ("connected", ...); ("verify",) relays one message
    through every room -> ("verified", ...); ("close",) -> ("closed", ...).
    """
    endpoint = Endpoint.resolve(url, insecure)
    rooms: list[Room] = []
    tally = SetupTally()
    control.counter = lambda: tally.opened
    control.send("ready", {})
    while True:
        command = await control.recv()
        if command[0] == "connect":
            began = time.monotonic()
            failed_before = tally.failed
            rooms += await open_rooms(endpoint, command[1], concurrency, setup_timeout, tally)
            control.send(
                "connected",
                {
                    "rooms": len(rooms),
                    "failed": tally.failed - failed_before,
                    "error": tally.first_error,
                    "seconds": time.monotonic() - began,
                },
            )
        elif command[0] == "verify":
            control.send("verified", await _verify(rooms, command[1]))
        elif command[0] == "close":
            await close_all(_connections(rooms))
            control.send("closed", {})
            return


async def _verify(rooms: list[Room], timeout: float) -> dict[str, Any]:
    """Relay one message through every room: an idle room must still work."""
    still_open = sum(1 for room in rooms if room[0].is_open and room[1].is_open)
    arrived = 0

    def on_text(payload: bytes) -> None:
        nonlocal arrived
        if payload.startswith(BENCH_PREFIX):
            arrived += 1

    for creator, joiner in rooms:
        creator.on_text = on_text
        if joiner.is_open:
            joiner.send(bench_message(time.monotonic_ns(), 0, b""))
    await wait_for(lambda: arrived >= len(rooms), timeout)
    return {"open_connections": 2 * still_open, "rooms_relaying": arrived}


async def setups(
    control: Control,
    url: str,
    insecure: bool,
    count: int,
    concurrency: int,
    setup_timeout: float,
) -> None:
    """Room setups back to back: connect, GETROOM, connect, ENTERROOM, first relay."""
    endpoint = Endpoint.resolve(url, insecure)
    control.send("ready", {})
    _, start_ns, end_ns = await control.expect("go")
    tally = SetupTally()
    latency = array("q")
    closing: set[asyncio.Task[None]] = set()
    issued = 0
    control.counter = lambda: tally.opened
    first = bench_message(0, 0, b"")

    async def lane() -> None:
        nonlocal issued
        while issued < count and time.monotonic_ns() < end_ns:
            issued += 1
            began = time.monotonic_ns()
            try:
                creator, joiner = await open_room(endpoint, setup_timeout, first)
            except SETUP_ERRORS as exc:
                tally.failure(exc)
                continue
            latency.append(time.monotonic_ns() - began)
            tally.opened += 1
            task = asyncio.create_task(close_all((creator, joiner)))
            closing.add(task)
            task.add_done_callback(closing.discard)

    await sleep_until(start_ns)
    await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, count)))))
    control.send("stopped", {"end_ns": time.monotonic_ns()})
    if closing:
        await asyncio.wait(closing, timeout=10.0)
    control.send(
        "result",
        {
            "completed": tally.opened,
            "failed": tally.failed,
            "error": tally.first_error,
            "latency_ns": latency.tobytes(),
        },
    )


LOADS: dict[str, Callable[..., Awaitable[None]]] = {
    "pingpong": pingpong,
    "openloop": openloop,
    "idle": idle,
    "setups": setups,
}
