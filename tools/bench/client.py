"""One benchmark WebSocket connection on asyncio: connect, send text, get text.

A connection has two modes. While a room is set up, incoming messages queue in an
inbox and `receive()` awaits them. Under load, `on_text` is set to a plain function
that runs inside `data_received`, with no task switch, no queue and no decoding, so
the per-message cost of the load generator stays a few microseconds.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import wire


@dataclass(frozen=True)
class Endpoint:
    """Where to connect, resolved once so that connecting never waits on DNS."""

    url: str
    ip: str
    port: int
    host_header: str
    path: str
    server_hostname: str | None
    tls: ssl.SSLContext | None
    # Where the members of a room are put among several workers, from the URL's
    # fragment (never sent): "apart:N" or "seated:N" (rooms.open_room); "" as it comes.
    placement: str = ""

    @classmethod
    def resolve(cls, url: str, insecure: bool = False) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"not a ws:// or wss:// URL: {url}")
        secure = parts.scheme == "wss"
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if secure else 80)
        ip = str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0])
        tls = None
        if secure:
            tls = ssl.create_default_context()
            if insecure:
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(url, ip, port, parts.netloc, path, host if secure else None, tls, parts.fragment)


class Closed(Exception):
    """The connection ended while we waited on it."""


# rtcserver gives every client a session (docs/PROTOCOL.md) before the answer to its
# first message; the Node baseline has none. Neither side of a load needs it.
SESSION_PREFIX = b'{"type":"SESSION"'


class Connection(asyncio.Protocol):
    on_text: Callable[[bytes], None] | None

    def __init__(self, endpoint: Endpoint) -> None:
        self.transport: asyncio.Transport | None = None
        self._endpoint = endpoint
        self.keep_sessions = False  # rooms._placed reads a session's id: its worker
        self._masker = wire.Masker()
        self._reader = wire.FrameReader()
        self._head = b""
        self._accept = b""
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.is_open = False
        self.close_received = False
        self.close_code: int | None = None  # the server's, from its close frame
        self.on_text = None
        self._inbox: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._poison: Exception | None = None

    # asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request, self._accept = wire.handshake_request(
            self._endpoint.host_header, self._endpoint.path
        )
        transport.write(request)

    def data_received(self, data: bytes) -> None:
        if not self.is_open:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > 65536:
                    self._fail(wire.ProtocolError("handshake response too long"))
                return
            head, data = self._head[:end], self._head[end + 4 :]
            self._head = b""
            try:
                wire.check_handshake_response(head, self._accept)
            except wire.ProtocolError as exc:
                self._fail(exc)
                return
            self.is_open = True
            self.opened.set_result(None)
            if not data:
                return
        try:
            frames = self._reader.feed(data)
        except wire.ProtocolError as exc:
            self._fail(exc)
            return
        for opcode, payload in frames:
            if opcode == wire.OP_TEXT:
                if payload.startswith(SESSION_PREFIX) and not self.keep_sessions:
                    continue  # rtcserver's session, given unasked: the benchmark never resumes
                handler = self.on_text
                if handler is not None:
                    handler(payload)
                else:
                    self._inbox.append(payload)
                    if self._waiter is not None and not self._waiter.done():
                        self._waiter.set_result(None)
            elif opcode == wire.OP_PING:
                self._write(wire.OP_PONG, payload)
            elif opcode == wire.OP_CLOSE:
                if len(payload) >= 2 and self.close_code is None:
                    self.close_code = int.from_bytes(payload[:2], "big")
                if not self.close_received:
                    self.close_received = True
                    self._write(wire.OP_CLOSE, payload[:2])
                assert self.transport is not None
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        if not self.opened.done():
            self.opened.set_exception(Closed(f"connection lost during handshake: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # the benchmark's side -------------------------------------------------------

    def send(self, text: bytes) -> None:
        """Send one text message (UTF-8 bytes). Never blocks: asyncio buffers."""
        assert self.transport is not None
        self.transport.write(self._masker.frame(wire.OP_TEXT, text))

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(json.dumps(message, separators=(",", ":")).encode())

    async def receive(self) -> dict[str, Any]:
        """The next queued text message, decoded; raises Closed, or what `poison` gave.

        No deadline of its own: callers put one deadline around a whole exchange.
        """
        while not self._inbox:
            if self._poison is not None:
                raise self._poison
            if self.lost.done():
                raise Closed("connection closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message: dict[str, Any] = json.loads(self._inbox.popleft())
        return message

    async def receive_type(self, kind: str) -> dict[str, Any]:
        """Skip queued messages until one of `kind`; an ERROR or WRONGROOM raises."""
        while True:
            message = await self.receive()
            if message.get("type") == kind:
                return message
            if message.get("type") in ("ERROR", "WRONGROOM"):
                raise Closed(f"expected {kind}, got {message}")

    def poison(self, exc: Exception) -> None:
        """Make the pending (or next) `receive` raise `exc`: another connection failed."""
        self._poison = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def begin_close(self) -> None:
        """Send a close frame; the server answers it and closes TCP first."""
        if self.is_open and not self.close_received and self.transport is not None:
            self._write(wire.OP_CLOSE, (1000).to_bytes(2, "big"))

    async def close(self, timeout: float = 2.0) -> None:
        """Close politely, and for good after `timeout` whatever the server does."""
        await close_all([self], timeout)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _write(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(self._masker.frame(opcode, payload))

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        assert self.transport is not None
        self.transport.abort()


async def connect(endpoint: Endpoint) -> Connection:
    """Open a TCP (or TLS) connection and complete the WebSocket upgrade.

    No deadline of its own: callers put one around the whole exchange.
    """
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: Connection(endpoint),
        endpoint.ip,
        endpoint.port,
        ssl=endpoint.tls,
        server_hostname=endpoint.server_hostname,
    )
    try:
        await conn.opened
    except BaseException:
        conn.abort()
        raise
    return conn


async def close_all(connections: Sequence[Connection], timeout: float = 2.0) -> None:
    """Close many at once: close frames out, wait for the server's side, then close TCP.

    The load's handlers are detached first: a PEERLEFT that a closing room sends to the
    member still open is the end of the run, not an unexpected message during it."""
    for conn in connections:
        conn.on_text = None
        conn.begin_close()
    pending = [conn.lost for conn in connections if not conn.lost.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    for conn in connections:
        if conn.transport is not None:
            conn.transport.close()
