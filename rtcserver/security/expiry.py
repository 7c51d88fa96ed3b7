"""Connections end when their token does: at `exp`, ERROR `token-expired`, then 1008.

A token's `exp` bounds what it grants; an open connection must not outlive it and
keep collecting fresh TURN credentials, rooms or a name. `Expiries` is the table of
watched actors and their deadlines (synchronous, like the registry); `expiry_timer`
is a permanent service child, like the ring timer, that sleeps until the next one
and ends the actors that are due, from outside their reader and writer loops. The
reader also checks before acting on each message (`expired`), so a message that
arrives between `exp` and the timer's wake-up is refused too.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import time
from typing import Protocol

import attrs
import trio

from .. import protocol
from ..actors.actor import Actor
from ..protocol import CloseCode, ErrorCode
from .auth import Identity


class ExpiryHost(Protocol):
    """What the timer needs of the server (`server.state.ServerState`)."""

    @property
    def counters(self) -> collections.Counter[str]: ...

    @property
    def expiries(self) -> Expiries: ...


EXPIRED_MESSAGE = "the token has expired: reconnect with a fresh one"


@attrs.define(eq=False)
class Expiries:
    """Which actors end when, on the Trio clock. `forget` is idempotent."""

    _heap: list[tuple[float, int, Actor]] = attrs.field(factory=list)
    _deadline: dict[Actor, float] = attrs.field(factory=dict)
    _order: itertools.count[int] = attrs.field(factory=itertools.count)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def watch(self, actor: Actor, identity: Identity | None) -> None:
        """End `actor` when `identity`'s token expires (nothing if it has no expiry)."""
        if identity is None or identity.expires is None:
            return
        deadline = trio.current_time() + (identity.expires - time.time())
        self._deadline[actor] = deadline
        heapq.heappush(self._heap, (deadline, next(self._order), actor))
        self._changed.set()

    def forget(self, actor: Actor) -> None:
        self._deadline.pop(actor, None)  # its heap entry is skipped when it comes up

    def __len__(self) -> int:
        return len(self._deadline)

    def next_deadline(self) -> float | None:
        while self._heap and self._deadline.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # forgotten, or watched again since
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[Actor]:
        """The actors whose deadline has come; they are forgotten."""
        actors: list[Actor] = []
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, _, actor = heapq.heappop(self._heap)
            del self._deadline[actor]
            actors.append(actor)
        return actors

    def changed_event(self) -> trio.Event:
        if self._changed.is_set():
            self._changed = trio.Event()
        return self._changed


def expired(identity: Identity | None) -> bool:
    return identity is not None and identity.expires is not None and identity.expires <= time.time()


def end(state: ExpiryHost, actor: Actor) -> None:
    """Tell the client why, then close it with 1008 (the ERROR is flushed first)."""
    state.counters[f"error:{ErrorCode.TOKEN_EXPIRED}"] += 1
    actor.tell(
        protocol.encode(protocol.Error(code=ErrorCode.TOKEN_EXPIRED, message=EXPIRED_MESSAGE))
    )
    actor.kick(CloseCode.POLICY_VIOLATION, ErrorCode.TOKEN_EXPIRED.value)


async def expiry_timer(state: ExpiryHost) -> None:
    """Sleep until the next expiry, end the actors that are due; forever (a permanent
    child of the supervisor)."""
    expiries = state.expiries
    while True:
        deadline = expiries.next_deadline()
        changed = expiries.changed_event()
        with trio.move_on_at(deadline if deadline is not None else float("inf")):
            await changed.wait()
            continue
        for actor in expiries.due(trio.current_time()):
            end(state, actor)
