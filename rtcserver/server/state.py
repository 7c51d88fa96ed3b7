"""What all connections share: settings, the registry, the live actors and counters.

Owned by the app; handed to every connection. Only synchronous code touches it, so
no locks are needed: Trio switches tasks only at awaits.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
import trio

from ..actors.actor import Actor, next_actor_id
from ..actors.backlog import Budget, Limits
from ..directory.calls import Switchboard
from ..directory.presence import Directory
from ..rooms.peers import Peer
from ..rooms.registry import Registry
from ..rooms.sessions import Sessions
from ..security.auth import Gatekeeper
from ..security.expiry import Expiries
from ..security.hosts import HostAllowList
from ..security.limits import AddressCounts
from ..settings import Settings
from .events import Events
from .metrics import ServerMetrics
from .webhooks import Webhooks

if TYPE_CHECKING:
    from ..cluster.names import Names
    from ..cluster.node import Cluster


@attrs.define(eq=False)
class ServerState:
    settings: Settings
    # In cluster mode (--redis), the cluster's mirror: this node's rooms, remote members too.
    registry: Registry[Peer]
    gatekeeper: Gatekeeper
    switchboard: Switchboard
    actors: set[Actor] = attrs.field(factory=set)
    # Open TCP connections, HTTP and WebSocket alike (max_connections counts these).
    connections: int = 0
    shutting_down: bool = False
    # Set each time the last connection closes: shutdown waits on it.
    idle: trio.Event = attrs.field(factory=trio.Event)
    counters: collections.Counter[str] = attrs.field(factory=collections.Counter)
    # Seconds readers spent waiting for rate-limit tokens, summed over connections.
    throttled_seconds: float = 0.0
    _handshakes: set[trio.CancelScope] = attrs.field(factory=set)
    # Set when a call starts or ends, so the ring timer recomputes its next deadline.
    _ring_changed: trio.Event = attrs.field(factory=trio.Event)
    # The directory as its subscribers see it (presence.py), and an event set when it
    # has changes to publish (phone.presence_publisher).
    presence: Directory = attrs.field(factory=Directory)
    _presence_changed: trio.Event = attrs.field(factory=trio.Event)
    metrics: ServerMetrics = attrs.field(factory=ServerMetrics.create)
    cluster: Cluster | None = None  # set in cluster mode
    # Token-authenticated actors and when their tokens expire (expiry.py).
    expiries: Expiries = attrs.field(factory=Expiries)
    per_address: AddressCounts = attrs.field(factory=AddressCounts)
    hosts: HostAllowList = attrs.field(factory=lambda: HostAllowList(names=frozenset()))
    # Bytes waiting for clients, server-wide (backlog.py); made in `create`.
    budget: Budget = attrs.field(init=False)
    limits: Limits = attrs.field(init=False)
    # Resumable sessions, and those waiting without a socket (sessions.py).
    sessions: Sessions = attrs.field(factory=Sessions)
    # With --webhook-url: the events' queues and senders (webhooks.py).
    webhooks: Webhooks | None = None

    def __attrs_post_init__(self) -> None:
        settings = self.settings
        self.limits = Limits(
            hard=settings.mailbox_hard_limit,
            soft=settings.mailbox_soft_limit,
            soft_seconds=settings.mailbox_soft_seconds,
        )
        self.budget = Budget(limit=settings.queue_budget, holders=self._holders)

    def _holders(self) -> itertools.chain[Actor]:
        # A parked session's mail counts against the budget too.
        return itertools.chain(self.actors, self.sessions.away_actors())

    @property
    def names(self) -> Names | None:
        """Who decides about names and calls: the cluster's leader, or (None) this node."""
        return None if self.cluster is None else self.cluster.names

    def new_actor(self, address: str) -> Actor:
        """The actor for a connection that has just been upgraded."""
        return Actor(id=next_actor_id(), address=address, limits=self.limits, budget=self.budget)

    def ring_timer_event(self) -> trio.Event:
        if self._ring_changed.is_set():
            self._ring_changed = trio.Event()
        return self._ring_changed

    def ring_timer_changed(self) -> None:
        self._ring_changed.set()

    def presence_event(self) -> trio.Event:
        if self._presence_changed.is_set():
            self._presence_changed = trio.Event()
        return self._presence_changed

    def presence_changed(self) -> None:
        self._presence_changed.set()

    @classmethod
    def create(cls, settings: Settings) -> ServerState:
        state = cls(
            settings=settings,
            registry=Registry(capacity=settings.room_capacity),
            gatekeeper=Gatekeeper.from_settings(settings),
            hosts=HostAllowList.from_settings(settings),
            switchboard=Switchboard(
                ring_timeout=settings.ring_timeout, new_id=lambda: secrets.token_urlsafe(12)
            ),
        )
        if settings.redis:
            from ..cluster.node import Cluster  # imports coredis: only in cluster mode

            state.cluster = Cluster(state)
            state.registry = state.cluster.mirror
        if settings.webhook_url:
            state.webhooks = Webhooks(settings, state.counters)
            events = Events(state.webhooks, state.registry)
            state.registry.watcher = events
            state.sessions.watcher = events
            state.switchboard.watcher = events  # not in cluster mode: its leader has a board
        state.metrics.attach(state)
        return state

    @contextlib.contextmanager
    def handshaking(self, deadline: float) -> Iterator[trio.CancelScope]:
        """A cancel scope for a connection still in its HTTP head or WebSocket upgrade,
        ending at `deadline`, or when shutdown begins (it owes such clients nothing)."""
        with trio.CancelScope(deadline=deadline) as scope:
            if self.shutting_down:
                scope.cancel()
            self._handshakes.add(scope)
            try:
                yield scope
            finally:
                self._handshakes.discard(scope)

    def stop_handshakes(self) -> None:
        for scope in list(self._handshakes):
            scope.cancel()

    def connection_opened(self) -> None:
        self.connections += 1
        if self.idle.is_set():
            self.idle = trio.Event()

    def connection_closed(self) -> None:
        self.connections -= 1
        if self.connections == 0:
            self.idle.set()
