"""What the bus, the leader and the names service see of their node, and of the server.

`node.Cluster` owns a `Bus`, a `Names` and (while it leads) a `Leader`, and each of
them calls back into it. The protocols below are those calls, defined here, under all
four, so that the parts import only downward: `node` imports them, never the reverse.
The same goes for the server around the cluster (`server.state.ServerState`): `Host`
is what the cluster reads of it.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from prometheus_client import Histogram

from ..actors.actor import Actor
from ..directory.phone import PhoneHost
from ..rooms.owners import Workers
from .mirror import Bus, Mirror


class HostMetrics(Protocol):
    @property
    def relay_latency(self) -> Histogram: ...

    @property
    def redis_roundtrip(self) -> Histogram: ...


class Host(PhoneHost, Protocol):
    """The server a node works for: calls by name's needs, plus what the node counts."""

    @property
    def actors(self) -> set[Actor]: ...

    @property
    def counters(self) -> collections.Counter[str]: ...

    @property
    def metrics(self) -> HostMetrics: ...

    @property
    def workers(self) -> Workers: ...


class BusLink(Bus, Protocol):
    """What the leader, the names service and the mirror send through the node's bus."""

    def control(self, node: str, payload: str) -> None: ...

    def request(self, node: str, request: dict[str, object], sender: Actor | None) -> None: ...


class Undelivered(Protocol):
    """Where the bus reports a name-service frame it could not deliver."""

    def undelivered(self, sender: Actor | None, message: str) -> None: ...


class NodeView(Protocol):
    """The node (`node.Cluster`) as its parts use it."""

    node: str
    prefix: str
    token: str | None
    ttl: float
    timeout: float
    min_backoff: float
    max_backoff: float
    why_down: str

    @property
    def state(self) -> Host: ...

    @property
    def bus(self) -> BusLink: ...

    @property
    def names(self) -> Undelivered: ...

    @property
    def mirror(self) -> Mirror: ...

    @property
    def available(self) -> bool: ...

    def lose_lease(self, why: str) -> None: ...

    def subscribed(self, up: bool, failure: BaseException | None = None) -> None: ...

    def subscription(self, channel: str) -> contextlib.AbstractAsyncContextManager[Any]: ...

    @property
    def link_key(self) -> bytes | None: ...

    async def link_address(self, node: str) -> str | None: ...

    async def call(self, op: str, script: str, *args: object) -> Any: ...

    def announce_reaped(self, reply: Sequence[str]) -> int: ...

    def queue_departure(self, actor_id: int, room: int) -> None: ...

    def after_departures(self, then: Callable[[], None]) -> None: ...
