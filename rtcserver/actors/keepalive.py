"""Keepalive and write deadlines for every connection, from one sweeping task.

One permanent service looks at every actor a few times per keepalive period, instead
of a timer per connection: idle connections (most of a signaling server's) then cost
no timer and no wake-up at all, and the relay path arms no deadline per message.

Per actor it decides (`judge`, pure) from four clocks:
- silence *heard*: nothing received for `interval` -> ask the writer to ping;
- an unanswered ping older than `timeout` -> the client is gone (close 4001);
- a message waiting in the mailbox for longer than `timeout` while no write is under
  way -> the writer is stuck (close 4000). A write in progress has its own deadline,
  renewed by progress (connection/writer.py, _write); this catches a writer that never wrote;
- queued bytes over the soft limit for longer than its grace (backlog.py) -> the
  client does not keep up (close 4000).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

import attrs
import trio

from ..protocol import CloseCode
from .actor import Actor


class Verdict(enum.Enum):
    FINE = "fine"
    PING = "ping"
    NO_PONG = "no-pong"
    STUCK = "stuck"
    OVER_SOFT_LIMIT = "over-soft-limit"


@attrs.frozen
class Clocks:
    """One connection's clocks, as the sweeper reads them."""

    last_heard: float
    ping_sent: float | None = None
    waiting_since: float | None = None  # oldest unwritten mail, None: none waits
    writing: bool = False  # a write is under way (it has its own deadline)
    over_soft_since: float | None = None


def judge(now: float, clocks: Clocks, interval: float, timeout: float, grace: float) -> Verdict:
    """What the keepalive does about one connection at `now`. Pure."""
    if clocks.over_soft_since is not None and now - clocks.over_soft_since >= grace:
        return Verdict.OVER_SOFT_LIMIT
    waiting_since = clocks.waiting_since
    if not clocks.writing and waiting_since is not None and now - waiting_since >= timeout:
        return Verdict.STUCK
    last_heard, ping_sent = clocks.last_heard, clocks.ping_sent
    if ping_sent is not None and last_heard < ping_sent:
        return Verdict.NO_PONG if now - ping_sent >= timeout else Verdict.FINE
    if now - last_heard >= interval:
        return Verdict.PING
    return Verdict.FINE


class Watched(Protocol):
    """What the sweeper needs of the server: its live actors and the two timers."""

    @property
    def actors(self) -> Iterable[Actor]: ...


def sweep(
    actors: Iterable[Actor], now: float, interval: float, timeout: float, grace: float
) -> None:
    """Apply `judge` to every actor once."""
    for actor in list(actors):
        clocks = Clocks(
            last_heard=actor.last_heard,
            ping_sent=actor.ping_sent,
            waiting_since=actor.mailbox.waiting_since,
            writing=actor.sending is not None,
            over_soft_since=actor.over_soft_since,
        )
        verdict = judge(now, clocks, interval, timeout, grace)
        if verdict is Verdict.FINE:
            if actor.ping_sent is not None and actor.last_heard >= actor.ping_sent:
                actor.ping_sent = None  # answered
        elif verdict is Verdict.PING:
            actor.request_ping(now)
        elif verdict is Verdict.NO_PONG:
            actor.kick(CloseCode.KEEPALIVE_TIMEOUT, f"no pong within {timeout:g}s")
        elif verdict is Verdict.STUCK:
            actor.kick(
                CloseCode.SLOW_CONSUMER,
                f"slow consumer: a message waited {timeout:g}s to be written",
                cause="write-stuck",
            )
        else:
            actor.kick(
                CloseCode.SLOW_CONSUMER,
                f"slow consumer: over {actor.limits.soft} bytes waiting for {grace:g}s",
                cause="soft-limit",
            )


def tick(interval: float, timeout: float, grace: float) -> float:
    """How often to sweep: a fraction of the shortest timer, so that each is kept to
    within a quarter of itself."""
    return min(interval, timeout, grace) / 4


async def keepalive(watched: Watched, interval: float, timeout: float, grace: float) -> None:
    """The permanent service: sweep forever."""
    period = tick(interval, timeout, grace)
    while True:
        await trio.sleep(period)
        sweep(watched.actors, trio.current_time(), interval, timeout, grace)
