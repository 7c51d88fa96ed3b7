"""Keepalive and write deadlines for every connection, from one sweeping task.

One permanent service looks at every actor a few times per keepalive period, instead
of a timer per connection: idle connections (most of a signaling server's) then cost
no timer and no wake-up at all, and the relay path arms no deadline per message.

Per actor it decides (`judge`, pure) from three clocks:
- silence *heard*: nothing received for `interval` -> ask the writer to ping;
- an unanswered ping older than `timeout` -> the client is gone (close 4001);
- a message waiting in the mailbox for longer than `timeout` -> the writer is stuck
  (close 4000). A writer blocked in a send has its own deadline (handler._write);
  this catches one that never got to write at all.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

import trio

from .actor import Actor
from .protocol import CloseCode


class Verdict(enum.Enum):
    FINE = "fine"
    PING = "ping"
    NO_PONG = "no-pong"
    STUCK = "stuck"


def judge(
    now: float,
    last_heard: float,
    ping_sent: float | None,
    waiting_since: float | None,
    interval: float,
    timeout: float,
) -> Verdict:
    """What the keepalive does about one connection at `now`. Pure."""
    if waiting_since is not None and now - waiting_since >= timeout:
        return Verdict.STUCK
    if ping_sent is not None and last_heard < ping_sent:
        return Verdict.NO_PONG if now - ping_sent >= timeout else Verdict.FINE
    if now - last_heard >= interval:
        return Verdict.PING
    return Verdict.FINE


class Watched(Protocol):
    """What the sweeper needs of the server: its live actors and the two timers."""

    @property
    def actors(self) -> Iterable[Actor]: ...


def sweep(actors: Iterable[Actor], now: float, interval: float, timeout: float) -> None:
    """Apply `judge` to every actor once."""
    for actor in list(actors):
        verdict = judge(
            now, actor.last_heard, actor.ping_sent, actor.mailbox.waiting_since, interval, timeout
        )
        if verdict is Verdict.FINE:
            if actor.ping_sent is not None and actor.last_heard >= actor.ping_sent:
                actor.ping_sent = None  # answered
        elif verdict is Verdict.PING:
            actor.request_ping(now)
        elif verdict is Verdict.NO_PONG:
            actor.kick(CloseCode.KEEPALIVE_TIMEOUT, f"no pong within {timeout:g}s")
        else:
            actor.kick(
                CloseCode.SLOW_CONSUMER,
                f"slow consumer: a message waited {timeout:g}s to be written",
            )


def tick(interval: float, timeout: float) -> float:
    """How often to sweep: a fraction of the shorter timer, so that each is kept to
    within a quarter of itself."""
    return min(interval, timeout) / 4


async def keepalive(watched: Watched, interval: float, timeout: float) -> None:
    """The permanent service: sweep forever."""
    period = tick(interval, timeout)
    while True:
        await trio.sleep(period)
        sweep(watched.actors, trio.current_time(), interval, timeout)
