"""Direct node-to-node links: how the bus's frames reach another node.

Every node listens on a TCP port (`--cluster-link-host/--cluster-link-port`) and
announces it with its lease in Redis (`rtc:addr:<node>`). A node that has frames for
another opens a link to it lazily: it looks the address up, connects, and both prove the
cluster's link key (`linkwire`). Links go one way: frames from the sender, and from the
receiver only acknowledgements; two nodes that talk both ways hold two links.

Sending, per destination node, one `PeerLink` and its task (a child of the node's
nursery, so none outlives shutdown):
- `offer` appends to the link's queue, synchronously, in the order frames are queued;
  the queue is bounded in bytes and in frames (queued plus sent but not yet
  acknowledged); a frame that does not fit is refused at once (the bus tells its sender).
- one writer takes everything queued and writes it with one `send_all`: a batch per
  wake-up, however many frames it holds.
- the receiver (`inbound.py`) acknowledges what it has handed on (a running count);
  acknowledged frames are forgotten. When the link breaks (a write fails, the other end
  closes, or acknowledgements stop for `redis_timeout` while frames wait for them), the
  frames not acknowledged and those queued behind them are handed to `on_lost` (the bus
  answers each one's sender): never dropped without a word. Because one link carries
  everything for a node, in one order, and nothing else does, frames from this node to
  that one arrive in the order they were queued.
- a link that could not be opened is retried with backoff; frames offered meanwhile
  are refused at once rather than held.

Receiving is `inbound.py`.
"""

from __future__ import annotations

import collections
import logging
import socket
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from ..actors.actor import Actor
from . import linkwire
from .inbound import READ_SIZE, Inbound, LinkDown, LinkHost, describe, read_one
from .linkwire import FrameReader, LinkProtocolError

log = logging.getLogger("rtcserver.cluster")

# One frame on its way: (the encoded frame, its kind: the first letter, the sender to
# tell if it is lost, time queued or -1 for anything but a relay).
Item = tuple[bytes, str, Actor | None, float]


@attrs.frozen
class Refusal:
    """Why a frame was not queued: `full` (too much waits already for that node) or not
    (the link is down, backing off)."""

    full: bool
    why: str


class RegistryDown(LinkDown):
    """A link could not be opened because Redis (where addresses are) did not answer."""


def announced_host(bind_host: str, redis_url: str) -> str:
    """The address other nodes should dial: the bind address, or for a wildcard the
    address this machine uses towards Redis (where the other nodes are, too)."""
    if bind_host not in ("", "0.0.0.0", "::"):
        return bind_host
    target = urllib.parse.urlsplit(redis_url).hostname
    if not target:  # a unix:// Redis: every node is on this machine
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((target, 9))  # UDP: picks a route, sends nothing
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class PeerLink:
    """Frames for one other node: the queue, what is sent but not acknowledged, and the
    task that connects and writes."""

    def __init__(self, links: Links, node: str) -> None:
        self.links = links
        self.node = node
        self.queue: deque[Item] = deque()
        self.unacked: deque[Item] = deque()
        self.held = 0  # bytes queued + unacknowledged
        self.acked = 0  # frames acknowledged on the current connection
        self.down_until = float("-inf")  # refuse at once until then (backoff)
        self.why_down = ""
        self._wake = trio.Event()
        self.stream: trio.SocketStream | None = None

    def offer(self, item: Item) -> Refusal | None:
        """Queue a frame; None, or why it was refused."""
        if self.down_until > trio.current_time():
            return Refusal(full=False, why=self.why_down)
        links = self.links
        size = len(item[0])
        if (
            self.held + size > links.max_bytes
            or len(self.queue) + len(self.unacked) >= links.max_frames
        ):
            why = f"{self.held} bytes already wait for node {self.node}"
            return Refusal(full=True, why=why)
        self.queue.append(item)
        self.held += size
        self._wake.set()
        return None

    async def run(self) -> None:
        """Connect when there is something to send; write batches; on a break hand back
        what may be lost, back off, and end once there is nothing left to send."""
        links = self.links
        host = links.host
        backoff = host.min_backoff
        try:
            while self.queue:
                try:
                    stream = await self._open()
                except (OSError, LinkDown, LinkProtocolError, trio.TooSlowError) as failure:
                    why = f"no link to node {self.node}: {describe(failure)}"
                    await self._fail(why, redis_down=isinstance(failure, RegistryDown))
                    self.why_down = why
                    self.down_until = trio.current_time() + backoff
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, host.max_backoff)
                    continue
                backoff = host.min_backoff
                why = await self._carry(stream)
                links.counters["cluster:link-broken"] += 1
                log.warning("node=%s event=link-broken to=%s why=%r", host.node, self.node, why)
                await self._fail(f"the link to node {self.node} broke ({why})")
        finally:
            if links.peers.get(self.node) is self:
                del links.peers[self.node]
            if self.queue or self.unacked:  # cancelled (shutdown): say so all the same
                items = [*self.unacked, *self.queue]
                self.unacked.clear()
                self.queue.clear()
                links.on_lost_now(self.node, items, "this node is shutting down", False)

    async def _open(self) -> trio.SocketStream:
        host = self.links.host
        with trio.fail_after(host.timeout):
            address = await host.link_address(self.node)
            if address is None:
                raise LinkDown("it announces no address (its lease is gone)")
            key = host.link_key
            if key is None:
                raise LinkDown("this node has not read the cluster's key yet")
            stream = await trio.open_tcp_stream(*split_address(address))
            try:  # trio's streams are TCP_NODELAY already: a batch leaves at once
                reader = FrameReader(linkwire.HANDSHAKE_MAX)
                receiver, r_nonce = linkwire.parse_hello(await read_one(stream, reader))
                if receiver != self.node:
                    raise LinkDown(f"{address} is node {receiver} now")
                claim = linkwire.claim(key, receiver, r_nonce, host.node)
                await stream.send_all(linkwire.encode(claim))
                linkwire.check_accept(key, receiver, r_nonce, claim, await read_one(stream, reader))
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
        self.acked = 0
        return stream

    async def _carry(self, stream: trio.SocketStream) -> str:
        """Write and read acknowledgements until the link breaks; say why it did."""
        broken: list[str] = []
        self.stream = stream
        async with stream, trio.open_nursery() as nursery:

            async def guarded(job: Callable[[trio.SocketStream], Awaitable[None]]) -> None:
                try:
                    await job(stream)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as failure:
                    broken.append(describe(failure))
                except (LinkDown, LinkProtocolError, ValueError) as failure:
                    broken.append(str(failure))
                nursery.cancel_scope.cancel()

            nursery.start_soon(guarded, self._write)
            nursery.start_soon(guarded, self._read_acks)
        self.stream = None
        return broken[0] if broken else "closed"

    async def _write(self, stream: trio.SocketStream) -> None:
        on_sent = self.links.on_sent
        while True:
            if not self.queue:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            batch = list(self.queue)
            self.queue.clear()
            self.unacked.extend(batch)
            await stream.send_all(b"".join([item[0] for item in batch]))
            on_sent(batch)

    async def _read_acks(self, stream: trio.SocketStream) -> None:
        reader = FrameReader(linkwire.HANDSHAKE_MAX)
        timeout = self.links.host.timeout
        oldest: Item | None = None
        while True:
            with trio.move_on_after(timeout) as wait:
                data = await stream.receive_some(READ_SIZE)
            if wait.cancelled_caught:
                # The same frame unacknowledged for a whole `timeout`: the other node
                # hangs (or the network does); the lease decides whether it is dead.
                if self.unacked and self.unacked[0] is oldest:
                    raise LinkDown(f"no acknowledgement for {timeout:g}s")
                oldest = self.unacked[0] if self.unacked else None
                continue
            if not data:
                raise LinkDown("closed by the other node")
            for frame in reader.feed(data):
                if not frame.startswith("a|"):
                    raise LinkProtocolError(f"an unexpected frame {frame[:40]!r}")
                self._acknowledged(int(frame[2:]))

    def _acknowledged(self, count: int) -> None:
        unacked = self.unacked
        for _ in range(min(count - self.acked, len(unacked))):
            self.held -= len(unacked.popleft()[0])
        self.acked = count

    async def _fail(self, why: str, *, redis_down: bool = False) -> None:
        items = [*self.unacked, *self.queue]
        self.unacked.clear()
        self.queue.clear()
        self.held = 0
        if items:
            await self.links.on_lost(self.node, items, why, redis_down)


class Links:
    """This node's links: the listener, and one `PeerLink` per node it sends to."""

    def __init__(
        self,
        host: LinkHost,
        counters: collections.Counter[str],
        max_bytes: int,
        max_frames: int,
        on_sent: Callable[[list[Item]], None],
        on_lost: Callable[[str, list[Item], str, bool], Awaitable[None]],
        on_lost_now: Callable[[str, list[Item], str, bool], object],
    ) -> None:
        self.host = host
        self.counters = counters
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.on_sent = on_sent
        self.on_lost = on_lost
        self.on_lost_now = on_lost_now
        self.peers: dict[str, PeerLink] = {}
        self.inbound = Inbound(host, counters, max_bytes)
        self._nursery: trio.Nursery | None = None

    def send(self, node: str, item: Item) -> Refusal | None:
        """Queue `item` for `node`: None, or why it cannot be sent (the caller answers)."""
        peer = self.peers.get(node)
        if peer is None:
            if self._nursery is None:
                return Refusal(full=False, why="this node's links are not running")
            peer = self.peers[node] = PeerLink(self, node)
            why = peer.offer(item)
            self._nursery.start_soon(peer.run)
            return why
        return peer.offer(item)

    @property
    def backlog(self) -> int:
        return sum(len(p.queue) + len(p.unacked) for p in self.peers.values())

    async def run(
        self,
        bind_host: str,
        port: int,
        on_frame: Callable[[str], None],
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen for links (reports the bound port as started) and hold the sending
        links' tasks; everything ends with this task."""
        listeners = await trio.open_tcp_listeners(port, host=bind_host or None)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                bound = listeners[0].socket.getsockname()[1]

                async def accept(stream: trio.SocketStream) -> None:
                    await self.inbound.receive(stream, on_frame)

                await nursery.start(trio.serve_listeners, accept, listeners)
                task_status.started(int(bound))
        finally:
            self._nursery = None

    def spawn(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` as a child of the links' nursery (the bus's checks after a loss)."""
        if self._nursery is not None:
            self._nursery.start_soon(job)
