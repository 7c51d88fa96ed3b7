"""Rooms as a client makes them, and the benchmark's own relay message.

A room is two connections: the creator sends GETROOM and learns the room number,
the joiner sends ENTERROOM with it, and the creator is told PEERJOINED. The joiner
hears nothing on success, so whoever needs proof that the room works has the joiner
send its first relay message right after ENTERROOM and waits for the creator to get it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from .client import Closed, Connection, Endpoint, connect
from .client import close_all as close_many
from .wire import ProtocolError

# {"type":"bench","t":<monotonic ns at send>,"seq":<k>,"pad":"xxx"}: the fields come
# in a fixed order, so the receiver finds `t` by slicing instead of parsing JSON.
BENCH_PREFIX = b'{"type":"bench","t":'
_T_START = len(BENCH_PREFIX)
_TEMPLATE = b'{"type":"bench","t":%d,"seq":%d,"pad":"%s"}'

SETUP_ERRORS = (Closed, OSError, TimeoutError, ProtocolError, KeyError, ValueError)


def bench_message(sent_ns: int, seq: int, pad: bytes) -> bytes:
    return _TEMPLATE % (sent_ns, seq, pad)


def sent_ns(payload: bytes) -> int:
    """The send timestamp carried by a bench message."""
    return int(payload[_T_START : payload.index(b",", _T_START)])


def pad_for(size: int) -> bytes:
    """Padding that makes a bench message about `size` bytes long."""
    typical = len(bench_message(time.monotonic_ns(), 100_000, b""))
    return b"x" * max(0, size - typical)


Room = tuple[Connection, Connection]  # (creator, joiner)


async def open_room(endpoint: Endpoint, timeout: float, first: bytes | None = None) -> Room:
    """Create a room and fill it; with `first`, also relay it from joiner to creator.

    One deadline covers the whole exchange; on any failure both connections are aborted.
    """
    creator: Connection | None = None
    joiner: Connection | None = None
    try:
        async with asyncio.timeout(timeout):
            if endpoint.placement:
                creator, joiner, reply = await _placed(endpoint)
            else:
                creator = await connect(endpoint)
                creator.send_json({"type": "GETROOM", "value": ""})
                reply = await creator.receive_type("GETROOM")
                joiner = await connect(endpoint)
            # On success the joiner hears nothing, so any message to it means failure,
            # and it must wake the creator's wait rather than leave it to the deadline.
            waiting = creator
            joiner.on_text = lambda p: waiting.poison(Closed(f"joiner was told {p[:200]!r}"))
            joiner.send_json({"type": "ENTERROOM", "value": reply["value"]})
            if first is not None:
                joiner.send(first)
            await creator.receive_type("PEERJOINED")
            if first is not None:
                await creator.receive_type("bench")
            joiner.on_text = None
    except BaseException:
        for conn in (creator, joiner):
            if conn is not None:
                conn.abort()
        raise
    return creator, joiner


_names = itertools.count(1)


async def _placed(endpoint: Endpoint) -> tuple[Connection, Connection, dict[str, Any]]:
    """A creator and a joiner placed on purpose among `N` workers (rtcserver only):
    "apart": the joiner's socket landed on another worker than the room's (it is then
    handed over: relays stay in one process); "same": it landed on the room's own worker
    (no handover at all); "seated": the joiner logs in (its socket
    goes to worker 0 with its name) and the room is another worker's, so every relay
    crosses the link between them (connection/seats.py). The kernel places sockets:
    connections are made until one lands where it must, from what the server says (a
    room's number, a session's id)."""
    mode, _, count_text = endpoint.placement.partition(":")
    count = int(count_text)
    for _ in range(64):
        creator = await connect(endpoint)
        creator.send_json({"type": "GETROOM", "value": ""})
        reply = await creator.receive_type("GETROOM")
        owner = int(reply["value"]) % count
        if mode == "seated" and owner == 0:
            creator.abort()
            continue
        break
    else:
        raise Closed("no room of a worker other than the directory's")
    for _ in range(64):
        joiner = await connect(endpoint)
        if mode == "seated":
            joiner.send_json({"type": "LOGIN", "name": f"bench{os.getpid()}x{next(_names)}"})
            await joiner.receive_type("LOGIN")
            return creator, joiner, reply
        joiner.keep_sessions = True
        joiner.send_json({"type": "SESSION"})
        session = await joiner.receive_type("SESSION")
        joiner.keep_sessions = False
        landed = int(str(session["session"]).split(".")[0])
        if (landed != owner) == (mode == "apart"):  # "same": on the room's own worker
            return creator, joiner, reply
        joiner.abort()
    raise Closed(f"no joiner landed where placement {mode!r} wants it")


class SetupTally:
    def __init__(self) -> None:
        self.opened = 0
        self.failed = 0
        self.first_error = ""

    def failure(self, exc: BaseException) -> None:
        self.failed += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"


async def open_rooms(
    endpoint: Endpoint,
    count: int,
    concurrency: int,
    timeout: float,
    tally: SetupTally,
) -> list[Room]:
    """Open up to `count` rooms, `concurrency` at a time; failures are counted, not raised."""
    rooms: list[Room] = []
    remaining = count

    async def lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                rooms.append(await open_room(endpoint, timeout))
                tally.opened += 1
            except SETUP_ERRORS as exc:
                tally.failure(exc)

    await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, count)))))
    return rooms


async def close_all(connections: Sequence[Connection], batch: int = 1000) -> None:
    """Close politely, `batch` at a time, each batch with its own deadline."""
    for start in range(0, len(connections), batch):
        await close_many(connections[start : start + batch], timeout=5.0)


async def sleep_until(deadline_ns: int) -> None:
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def wait_for(condition: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    """Poll `condition` until it holds or `timeout` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)
    return True
