"""What all connections share: settings, the registry, the live actors and counters.

Owned by the app; handed to every connection. Only synchronous code touches it, so
no locks are needed: Trio switches tasks only at awaits.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import attrs
import trio

from ..actors.actor import Actor, next_actor_id
from ..actors.backlog import Budget, Limits
from ..directory.calls import Switchboard
from ..directory.dialect import Session as DialectSession
from ..directory.presence import Directory
from ..rooms.owners import Workers
from ..rooms.peers import Peer
from ..rooms.registry import Registry
from ..rooms.sessions import Sessions
from ..security.auth import Gatekeeper
from ..security.expiry import Expiries
from ..security.hosts import HostAllowList
from ..security.limits import AddressCounts, PendingHead, Progress, SlowHeads
from ..security.refusals import RefusalLog
from ..settings import Settings
from ..wire.links import Links
from .events import Events
from .metrics import ServerMetrics
from .siblings import Siblings
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
    # Request heads still pending, and the slow ones per address (limits.py); made in
    # `create`. Set when a head arrives while none was pending: the sweeper waits on it.
    slow_heads: SlowHeads = attrs.field(init=False)
    _head_arrived: trio.Event = attrs.field(factory=trio.Event)
    # Every front-door refusal goes through it: counted, logged at most once a second
    # per address (refusals.py).
    refusals: RefusalLog = attrs.field(init=False)
    hosts: HostAllowList = attrs.field(factory=lambda: HostAllowList(names=frozenset()))
    # Bytes waiting for clients, server-wide (backlog.py); made in `create`.
    budget: Budget = attrs.field(init=False)
    limits: Limits = attrs.field(init=False)
    # Resumable sessions, and those waiting without a socket (sessions.py).
    sessions: Sessions = attrs.field(factory=Sessions)
    # This process's place among the server's worker processes (rooms/owners.py).
    workers: Workers = attrs.field(factory=Workers.single)
    # Several workers: how a connection reaches another worker (connection/handover.py).
    inbox: trio.socket.SocketType | None = None
    siblings: Siblings | None = None  # the other workers, asked for /healthz and /metrics
    # The local links to the other workers (wire/links.py), and the actors of this
    # worker whose seat is in another's room, by the seat's key (connection/seats.py).
    links: Links | None = None
    seated: dict[str, Actor] = attrs.field(factory=dict)
    # Keeps an actor handed over with its room as a guest there (connection/guests.py).
    host_guest: Callable[[Actor, int, str], None] | None = None
    # Connections speaking the tutorial dialect (directory/tutorial.py), by actor.
    dialect_sessions: dict[Peer, DialectSession] = attrs.field(factory=dict)
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
        self.slow_heads = SlowHeads(
            limit=settings.max_handshakes_per_address,
            grace=settings.slow_head_grace,
            silent_grace=settings.silent_head_grace,
        )
        self.refusals = RefusalLog(self.counters, logging.getLogger("rtcserver.http"))

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
    def create(cls, settings: Settings, workers: Workers | None = None) -> ServerState:
        workers = workers or Workers.single()
        state = cls(
            settings=settings,
            registry=Registry(capacity=settings.room_capacity, draw=workers.draw),
            workers=workers,
            sessions=Sessions(new_id=lambda: workers.session_id(secrets.token_urlsafe(12))),
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
        if workers.several:
            state.siblings = Siblings(workers)
        if settings.webhook_url:
            state.webhooks = Webhooks(settings, state.counters)
            events = Events(state.webhooks, state.registry)
            state.registry.watcher = events
            state.sessions.watcher = events
            state.switchboard.watcher = events  # not in cluster mode: its leader has a board
        state.metrics.attach(state)
        return state

    def health_figures(self) -> dict[str, object]:
        """This process's own /healthz figures."""
        health: dict[str, object] = {
            "status": "ok",
            "connections": len(self.actors),
            "rooms": self.registry.statistics().rooms,
        }
        if self.cluster is not None:
            health["node"] = self.cluster.node
            health["cluster"] = "up" if self.cluster.available else "down"
        return health

    def metrics_text(self) -> bytes:
        return self.metrics.render()

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

    @contextlib.contextmanager
    def pending_head(
        self, address: str, scope: trio.CancelScope, progress: Callable[[], Progress]
    ) -> Iterator[PendingHead | None]:
        """Track a connection's request head against its peer address while it is read;
        if the head turns slow when the address has no place left, `scope` is cancelled
        and the head is marked `refused`. `progress` says how the head stands when
        its grace ends (limits.SlowHeads). None with `--trust-proxy` (the proxy reads
        heads, and every client shares its address)."""
        if self.settings.trust_proxy:
            yield None
            return
        heads = self.slow_heads
        if not heads.young and not heads.silent:
            self._head_arrived.set()
        head = heads.arrive(address, trio.current_time(), scope.cancel, progress)
        try:
            yield head
        finally:
            heads.leave(head)

    async def wait_for_head(self) -> None:
        """Return when a head is young or silent (at once if one is)."""
        if self.slow_heads.young or self.slow_heads.silent:
            return
        if self._head_arrived.is_set():
            self._head_arrived = trio.Event()
        await self._head_arrived.wait()

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
