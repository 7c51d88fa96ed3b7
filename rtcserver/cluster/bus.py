"""The cluster bus: how a frame reaches a member, a leader or a node elsewhere.

Frames are text: a header line of `|`-separated fields, then (for M and E) the body,
unchanged.

    M|room|from-member|to-actor\\n<the client's text, verbatim>   relay
    J|room|member|actor,actor,...                                 member joined room
    L|room|member|actor,actor,...                                 member left room
    E|to-actor|code\\n<message>                                    ERROR for a sender
    K|room|close-code|actor,actor,... or @name\\n<reason>           the admin API: close
                                                                   them (room 0: any room)

The admin API (`server/clusteradmin.py`) also sends M frames with no sender (`-`): an
ADMIN message for a member on this node.

and, for names and calls (`names.py`, `leader.py`): P (a request for the leader), A (its
answer to a LOGIN), T (a message for a named user), D and S (directory news), R and X
(a call's private room was made, closed), Y (resync your names), U (the directory, for
the admin API: `U|req\\n[[name, status, call], ...]`).

Every frame has one destination node and goes over this node's direct link to it
(`links.py`), all of them, so frames from one sender (and membership news before the
relays that follow it) arrive in the order queued. A frame that cannot be sent (the
link's byte bound is full, or the link is down) or that a broken link may have lost
comes back to its sender as an ERROR; membership news lost for a node that still holds
its lease means this node's view may be wrong, so it resynchronises. Incoming frames go
straight into the actors' own bounded mailboxes (`tell`), so nothing queues up inside
this node.

The node still subscribes to its Redis channel `<prefix>bus:<node>`: whether that
subscription lives is how a node knows Redis hears it (`Cluster.available`). A frame
published there (by a node of an earlier version) is handled as a link frame is; the
other way does not work (an earlier node announces no link address), so a cluster is
upgraded all at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import trio

from .. import protocol
from ..actors.actor import Actor
from ..protocol import ErrorCode
from . import scripts
from .errors import ClusterUnavailable
from .links import Item, Links, Refusal
from .linkwire import encode

if TYPE_CHECKING:
    from .mirror import RemoteMember
    from .nodeview import NodeView

log = logging.getLogger("rtcserver.cluster")


class Bus:
    def __init__(self, cluster: NodeView, queue_size: int, queue_bytes: int) -> None:
        self.cluster = cluster
        self.node = cluster.node
        self.links = Links(
            cluster,
            cluster.state.counters,
            max_bytes=queue_bytes,
            max_frames=queue_size,
            on_sent=self._sent,
            on_lost=self._lost,
            on_lost_now=self._lost_now,
        )
        self._checking: set[str] = set()  # nodes whose lost news is being looked into

    def channel(self, node: str) -> str:
        return f"{self.cluster.prefix}bus:{node}"

    @property
    def backlog(self) -> int:
        return self.links.backlog

    # ------------------------------------------------------------- sending

    def relay(self, member: RemoteMember, sender: Actor | None, room: int, text: str) -> bool:
        """Queue `text` for `member` on its node. Never blocks. On failure the sender
        gets ERROR (cluster-unavailable, or peer-unreachable) and False is returned."""
        cluster = self.cluster
        if not cluster.available:
            self.undelivered(sender, "redis-down", ErrorCode.CLUSTER_UNAVAILABLE, cluster.why_down)
            return False
        source = f"{self.node}/{sender.id}" if sender is not None else "-"
        frame = encode(f"M|{room}|{source}|{member.actor}\n{text}")
        refused = self.links.send(member.node, (frame, "M", sender, trio.current_time()))
        if refused is None:
            return True
        if refused.full:
            self.undelivered(
                sender, "queue-full", ErrorCode.CLUSTER_UNAVAILABLE, f"not delivered: {refused.why}"
            )
        else:
            self.undelivered(
                sender,
                "node-unreachable",
                ErrorCode.PEER_UNREACHABLE,
                f"not delivered: {refused.why}",
            )
        return False

    def control(self, node: str, payload: str) -> None:
        """Queue membership news (J, L), a bounced ERROR (E) or name-service news for
        `node`. If it cannot be queued, the other node's view may now be wrong."""
        refused = self.links.send(node, (encode(payload), payload[0], None, -1.0))
        if refused is not None:
            self._news_lost(node, refused)

    def admin(self, node: str, payload: str) -> bool:
        """Queue the admin API's frame (M without a sender, or K) for `node`; False if
        the queue is full or Redis is down (the API then answers 503)."""
        if not self.cluster.available:
            return False
        return self.links.send(node, (encode(payload), payload[0], None, -1.0)) is None

    def request(self, node: str, request: dict[str, object], sender: Actor | None) -> None:
        """Queue a request for the leader on `node` (names.py). If it cannot be sent,
        the sender gets ERROR cluster-unavailable: nothing is lost silently."""
        frame = encode("P\n" + orjson.dumps(request).decode())
        refused = self.links.send(node, (frame, "P", sender, -1.0))
        if refused is not None:
            self.cluster.names.undelivered(sender, f"not sent: {refused.why}")

    def undelivered(self, sender: Actor | None, reason: str, code: ErrorCode, message: str) -> None:
        counters = self.cluster.state.counters
        counters[f"cluster:undelivered:{reason}"] += 1
        if sender is not None:
            counters[f"error:{code}"] += 1
            sender.tell(protocol.encode(protocol.Error(code=code, message=message)))

    # ------------------------------------------------------------- what the links report

    def _sent(self, batch: list[Item]) -> None:
        now = trio.current_time()
        observe = self.cluster.state.metrics.relay_latency.observe
        relayed = 0
        for _, kind, _, queued in batch:
            if kind == "M":
                relayed += 1
                observe(now - queued)
        self.cluster.state.counters["cluster:relayed"] += relayed

    def _lost_now(self, node: str, items: list[Item], why: str, redis_down: bool) -> bool:
        """Answer the sender of every frame in `items` (a link could not carry them);
        True when membership or name-service news was among them."""
        news = False
        reason, code = "link-broken", ErrorCode.PEER_UNREACHABLE
        if redis_down:  # no address to dial: the cluster is down, not the peer's node
            reason, code = "redis-down", ErrorCode.CLUSTER_UNAVAILABLE
        for _, kind, sender, _ in items:
            if kind == "M":
                self.undelivered(sender, reason, code, f"not delivered: {why}")
            elif kind == "P":
                self.cluster.names.undelivered(sender, f"not sent: {why}")
            elif kind != "E":  # an ERROR for a sender over there is lost with its link
                news = True
        return news

    async def _lost(self, node: str, items: list[Item], why: str, redis_down: bool) -> None:
        if self._lost_now(node, items, why, redis_down):
            # In the background: the link goes on with what is queued behind.
            self._news_lost(node, Refusal(full=False, why=why))

    def _news_lost(self, node: str, refused: Refusal) -> None:
        if refused.full:
            self.cluster.lose_lease(f"the link to node {node} overflowed with news")
            return

        async def check() -> None:
            await self._check_after_lost_news(node, refused.why)

        self.links.spawn(check)

    async def _check_after_lost_news(self, node: str, why: str) -> None:
        """News for `node` was lost. A dead node's is moot (the janitor reaps it); a live
        one's means this node's view of the rooms they share may be wrong. A node that
        just died still holds its lease for up to `lease_ttl`: wait that long for it to
        go before resynchronising (one wait per node at a time)."""
        if node in self._checking:
            return
        self._checking.add(node)
        cluster = self.cluster
        try:
            deadline = trio.current_time() + cluster.ttl * 1.5
            while True:
                try:
                    if node in await cluster.call("dead", scripts.DEAD_NODES, node):
                        return
                except ClusterUnavailable:
                    pass  # the lease loop notices Redis going: it resynchronises then
                if trio.current_time() >= deadline:
                    break
                await trio.sleep(cluster.ttl / 3)
            cluster.lose_lease(f"news for node {node} was lost ({why}) and it still lives")
        finally:
            self._checking.discard(node)

    # ------------------------------------------------------------- receiving

    async def run_subscriber(self, on_frame: Callable[[str], None]) -> None:
        """Permanent child: listen on this node's channel; reconnect with backoff."""
        cluster = self.cluster
        backoff = cluster.min_backoff
        while True:
            try:
                async with cluster.subscription(self.channel(self.node)) as messages:
                    cluster.subscribed(True)
                    backoff = cluster.min_backoff
                    while True:
                        message: Any = await messages.get_message()
                        if message is not None and message.get("type") == "message":
                            on_frame(message["data"])
            except Exception as failure:  # the connection to Redis broke, or never came
                cluster.subscribed(False, failure)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, cluster.max_backoff)
