"""Per-node pub/sub channels: how a frame reaches a member on another node.

Every node subscribes to its own channel, `<prefix>bus:<node>`. Frames are text:
a header line of `|`-separated fields, then (for M and E) the body, unchanged.

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

Order: one publisher task per node sends everything in the order it was queued, over
one connection, so frames from one sender (and membership news before the relays
that follow it) arrive in order. Bounds: the outgoing queue holds `bus_queue_size`
frames; a frame that does not fit, or cannot be published, or that no subscriber
received (PUBLISH counted 0: the peer's node is dead or reconnecting) comes back to
its sender as an ERROR. Incoming frames go straight into the actors' own bounded
mailboxes (`tell`), so nothing queues up inside this node; Redis bounds what it
buffers for a slow subscriber (`client-output-buffer-limit pubsub`) by cutting it
off, which this node treats as a lost subscription (it resynchronises).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import orjson
import trio

from .. import protocol
from ..actors.actor import Actor
from ..protocol import ErrorCode
from .errors import ClusterUnavailable

if TYPE_CHECKING:
    from .mirror import RemoteMember
    from .nodeview import NodeView

log = logging.getLogger("rtcserver.cluster")

BATCH: Final = 256  # frames per pipelined round trip at most
# (channel, payload, sender to tell if it fails, time queued or -1 for membership news)
Frame = tuple[str, str, Actor | None, float]


class Bus:
    def __init__(self, cluster: NodeView, queue_size: int) -> None:
        self.cluster = cluster
        self.node = cluster.node
        self._outbox, self._inbox = trio.open_memory_channel[Frame](queue_size)
        self._channels: dict[str, str] = {}

    def channel(self, node: str) -> str:
        channel = self._channels.get(node)
        if channel is None:
            channel = self._channels[node] = f"{self.cluster.prefix}bus:{node}"
        return channel

    @property
    def backlog(self) -> int:
        return self._outbox.statistics().current_buffer_used

    # ------------------------------------------------------------- sending

    def relay(self, member: RemoteMember, sender: Actor | None, room: int, text: str) -> bool:
        """Queue `text` for `member` on its node. Never blocks. On failure the sender
        gets ERROR cluster-unavailable and False is returned."""
        cluster = self.cluster
        if not cluster.available:
            self.undelivered(sender, "redis-down", ErrorCode.CLUSTER_UNAVAILABLE, cluster.why_down)
            return False
        source = f"{self.node}/{sender.id}" if sender is not None else "-"
        payload = f"M|{room}|{source}|{member.actor}\n{text}"
        try:
            self._outbox.send_nowait(
                (self.channel(member.node), payload, sender, trio.current_time())
            )
        except trio.WouldBlock:
            self.undelivered(
                sender,
                "queue-full",
                ErrorCode.CLUSTER_UNAVAILABLE,
                f"not delivered: {self.backlog} messages already wait for Redis",
            )
            return False
        return True

    def control(self, node: str, payload: str) -> None:
        """Queue membership news (J, L) or a bounced ERROR (E) for `node`. If it cannot
        be queued, the other node's view may now be wrong: this node resynchronises."""
        try:
            self._outbox.send_nowait((self.channel(node), payload, None, -1.0))
        except trio.WouldBlock:
            self.cluster.lose_lease("the bus queue overflowed with membership news")

    def admin(self, node: str, payload: str) -> bool:
        """Queue the admin API's frame (M without a sender, or K) for `node`; False if
        the queue is full or Redis is down (the API then answers 503)."""
        if not self.cluster.available:
            return False
        try:
            self._outbox.send_nowait((self.channel(node), payload, None, -1.0))
        except trio.WouldBlock:
            return False
        return True

    def request(self, node: str, request: dict[str, object], sender: Actor | None) -> None:
        """Queue a request for the leader on `node` (names.py). If it cannot be sent,
        the sender gets ERROR cluster-unavailable: nothing is lost silently."""
        payload = "P\n" + orjson.dumps(request).decode()
        try:
            self._outbox.send_nowait((self.channel(node), payload, sender, -1.0))
        except trio.WouldBlock:
            message = f"not sent: {self.backlog} messages already wait for Redis"
            self.cluster.names.undelivered(sender, message)

    def undelivered(self, sender: Actor | None, reason: str, code: ErrorCode, message: str) -> None:
        counters = self.cluster.state.counters
        counters[f"cluster:undelivered:{reason}"] += 1
        if sender is not None:
            counters[f"error:{code}"] += 1
            sender.tell(protocol.encode(protocol.Error(code=code, message=message)))

    async def run_publisher(self) -> None:
        """Permanent child: publish queued frames in order, in pipelined batches."""
        inbox = self._inbox
        while True:
            batch = [await inbox.receive()]
            while len(batch) < BATCH:
                try:
                    batch.append(inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._publish(batch)

    async def _publish(self, batch: list[Frame]) -> None:
        cluster = self.cluster
        try:
            counts = await cluster.publish_many(
                [(channel, payload) for channel, payload, *_ in batch]
            )
        except ClusterUnavailable as failure:
            for _, payload, sender, queued in batch:
                if queued < 0:
                    if payload[0] in "JL":
                        cluster.lose_lease(f"membership news could not be published: {failure}")
                    elif payload[0] == "P":
                        cluster.names.undelivered(sender, f"not sent: {failure}")
                else:
                    self.undelivered(
                        sender,
                        "redis-down",
                        ErrorCode.CLUSTER_UNAVAILABLE,
                        f"not delivered: {failure}",
                    )
            return
        now = trio.current_time()
        observe = cluster.state.metrics.relay_latency.observe
        relayed = 0
        for (_, payload, sender, queued), count in zip(batch, counts, strict=True):
            if queued < 0:
                if count == 0 and payload[0] == "P":  # the leader died: another takes over
                    cluster.names.undelivered(sender, "not sent: the cluster's leader is gone")
                continue  # news for a dead node: the janitor will reap it
            if count == 0:
                self.undelivered(
                    sender,
                    "node-unreachable",
                    ErrorCode.PEER_UNREACHABLE,
                    "not delivered: the peer's node is not listening (it died or is reconnecting)",
                )
                continue
            relayed += 1
            observe(now - queued)
        cluster.state.counters["cluster:relayed"] += relayed

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
