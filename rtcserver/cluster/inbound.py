"""The receiving end of node-to-node links (`links.py` is the sending end).

A node accepts a link, proves the cluster's link key and checks the sender's proof
(`linkwire`; a wrong key is answered `N|wrong link key` and closed, counted as
`cluster:link-refused`), then parses every frame of each read and hands each to
`on_frame` (the node's dispatcher, which only puts into actors' bounded mailboxes), and
acknowledges what it handed on: a running count, at most every `ACK_DELAY`.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Final, Protocol

import trio

from . import linkwire
from .linkwire import FrameReader, LinkProtocolError

log = logging.getLogger("rtcserver.cluster")

ACK_DELAY: Final = 0.005  # seconds a receiver gathers frames before acknowledging them
READ_SIZE: Final = 256 * 1024


class LinkHost(Protocol):
    """What links need of their node (`node.Cluster`)."""

    node: str
    timeout: float
    min_backoff: float
    max_backoff: float

    @property
    def link_key(self) -> bytes | None: ...

    async def link_address(self, node: str) -> str | None: ...


class LinkDown(Exception):
    """A link could not be opened, or broke; the message says why."""


class Inbound:
    """The links other nodes opened to this one."""

    def __init__(self, host: LinkHost, counters: collections.Counter[str], max_frame: int) -> None:
        self.host = host
        self.counters = counters
        self.max_frame = max_frame
        self.streams: set[trio.SocketStream] = set()

    def close_all(self) -> int:
        """Cut every link other nodes opened to this one (tests: a broken link)."""
        streams = list(self.streams)
        for stream in streams:
            stream.socket.close()
        return len(streams)

    async def receive(self, stream: trio.SocketStream, on_frame: Callable[[str], None]) -> None:
        async with stream:
            sender = await self._handshake(stream)
            if sender is None:
                return
            self.streams.add(stream)
            try:
                why = await self._deliver(stream, on_frame)
            except Exception:  # a bug in handling a frame: lose this link, not the node
                log.exception("node=%s event=link-crashed from=%s", self.host.node, sender)
                return
            finally:
                self.streams.discard(stream)
            log.info("node=%s event=link-closed from=%s why=%r", self.host.node, sender, why)

    async def _handshake(self, stream: trio.SocketStream) -> str | None:
        """Prove each other's key; the sending node's id, or None (refused, counted)."""
        host = self.host
        try:
            with trio.fail_after(host.timeout):
                r_nonce = linkwire.nonce()
                await stream.send_all(linkwire.encode(linkwire.hello(host.node, r_nonce)))
                frame = await read_one(stream, FrameReader(linkwire.HANDSHAKE_MAX))
                key = host.link_key
                checked = (
                    None if key is None else linkwire.check_claim(key, host.node, r_nonce, frame)
                )
                if checked is None:
                    self.counters["cluster:link-refused"] += 1
                    log.warning("node=%s event=link-refused why=wrong-key", host.node)
                    await stream.send_all(linkwire.encode("N|wrong link key"))
                    return None
                sender, accept = checked
                await stream.send_all(linkwire.encode(accept))
                return sender
        except (
            OSError,
            trio.BrokenResourceError,
            trio.TooSlowError,
            LinkDown,
            LinkProtocolError,
        ) as failure:
            self.counters["cluster:link-refused"] += 1
            log.warning("node=%s event=link-refused why=%r", host.node, describe(failure))
            return None

    async def _deliver(self, stream: trio.SocketStream, on_frame: Callable[[str], None]) -> str:
        """Hand on every frame of every read; acknowledge them; why the link ended."""
        reader = FrameReader(self.max_frame)
        received = 0
        due = trio.Event()
        ended: list[str] = []

        async def acknowledge() -> None:
            nonlocal due
            told = 0
            try:
                while True:
                    await due.wait()
                    due = trio.Event()
                    await trio.sleep(ACK_DELAY)
                    if received > told:
                        told = received
                        await stream.send_all(linkwire.encode(f"a|{told}"))
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as failure:
                ended.append(describe(failure))
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(acknowledge)
            try:
                while data := await stream.receive_some(READ_SIZE):
                    for frame in reader.feed(data):
                        on_frame(frame)
                        received += 1
                    due.set()
                ended.append("closed by the other node")
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as failure:
                ended.append(describe(failure))
            except LinkProtocolError as failure:
                log.warning("node=%s event=link-protocol-error why=%r", self.host.node, failure)
                ended.append(str(failure))
            nursery.cancel_scope.cancel()
        return ended[0] if ended else "closed"


async def read_one(stream: trio.SocketStream, reader: FrameReader) -> str:
    while True:
        data = await stream.receive_some(linkwire.HANDSHAKE_MAX)
        if not data:
            raise LinkDown("closed during the handshake")
        frames = reader.feed(data)
        if frames:
            if len(frames) > 1:
                raise LinkProtocolError("frames before the handshake was done")
            return frames[0]


def describe(failure: BaseException) -> str:
    if isinstance(failure, trio.TooSlowError):
        return "it did not answer in time"
    return str(failure) or type(failure).__name__
