"""A small WebSocket client on raw Trio sockets and wsproto, built to misbehave.

trio-websocket's client is polite: it always reads, always answers pings and always
closes cleanly. The fault tests need a peer that can also stop reading, send half a
frame, reset the TCP connection or never finish the handshake, and thousands of idle
ones must stay cheap. This client does the protocol by hand so each of those is one
method call.
"""

from __future__ import annotations

import json
import math
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import trio
import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

HOST = "127.0.0.1"


class Closed(Exception):
    """The server closed the WebSocket (code/reason) or the TCP connection (code None)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed: {code} {reason!r}")
        self.code = code
        self.reason = reason


class HandshakeRefused(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class WsClient:
    """One client connection. Use `connect()`; read with `recv()` or `start_reader()`."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._send_lock = trio.Lock()
        self._parts: list[str] = []
        self.messages_send, self.messages = trio.open_memory_channel[str | Closed](math.inf)
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = trio.Event()
        host, port = stream.socket.getsockname()[:2]
        self.address = f"{host}:{port}"
        # The session the server gives unasked before the answer to the first message
        # (docs/PROTOCOL.md, "Sessions and resume") is kept here, not among `messages`,
        # unless `hide_unasked_session` is off or the client asked (SESSION, RESUME).
        self.session: dict[str, Any] | None = None
        self.hide_unasked_session = True
        self._asked_session = False

    # ------------------------------------------------------------ opening

    @classmethod
    async def open_tcp(cls, port: int) -> WsClient:
        return cls(await trio.open_tcp_stream(HOST, port))

    @classmethod
    async def connect(cls, port: int, path: str = "/ws") -> WsClient:
        client = await cls.open_tcp(port)
        try:
            await client.handshake(path)
        except BaseException:
            client.abort()
            raise
        return client

    async def handshake(self, path: str = "/ws") -> None:
        await self.send_raw(self.ws.send(Request(host=HOST, target=path)))
        await self.finish_handshake()

    async def finish_handshake(self) -> None:
        """Read the answer to an upgrade request already sent (`ws.send(Request(...))`)."""
        while True:
            events = await self._pump_once()
            for event in events:
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    body = b""
                    for more in self._events_until_reject_end(events):
                        body += more
                    raise HandshakeRefused(event.status_code, body)

    @staticmethod
    def _events_until_reject_end(events: list[Any]) -> list[bytes]:
        return [bytes(e.data) for e in events if isinstance(e, RejectData)]

    # ------------------------------------------------------------ sending

    async def send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def send(self, text: str) -> None:
        self._check_open()
        self._asked_session |= '"SESSION"' in text[:40] or '"RESUME"' in text[:40]
        await self.send_raw(self.ws.send(Message(data=text)))

    def _check_open(self) -> None:
        if self.ws.state is not ConnectionState.OPEN:
            raise Closed(self.close_code, self.close_reason)

    async def send_json(self, obj: Any) -> None:
        await self.send(json.dumps(obj))

    async def send_bytes(self, data: bytes) -> None:
        self._check_open()
        await self.send_raw(self.ws.send(Message(data=data)))

    async def close(self, code: int = 1000) -> None:
        """Start a clean close and wait (briefly) for the server's answer."""
        with trio.move_on_after(2):
            try:
                if self.ws.state is ConnectionState.OPEN:
                    await self.send_raw(self.ws.send(CloseConnection(code=code)))
                if self._has_reader:
                    await self.closed.wait()
                while not self.closed.is_set():
                    await self._pump_once()
            except (trio.BrokenResourceError, trio.ClosedResourceError, Closed):
                pass
        await trio.aclose_forcefully(self.stream)

    def abort(self) -> None:
        """Reset the TCP connection (RST): the peer vanishes without a goodbye."""
        sock = self.stream.socket
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    # ------------------------------------------------------------ receiving

    async def _pump_once(self) -> list[Any]:
        """Read once from the socket; answer pings and closes; queue messages."""
        if self.closed.is_set():
            raise Closed(self.close_code, self.close_reason)
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._mark_closed(self.close_code, self.close_reason)
            raise Closed(self.close_code, self.close_reason)
        self.ws.receive_data(data)
        events = list(self.ws.events())
        for event in events:
            if isinstance(event, Ping):
                if self.ws.state is not ConnectionState.OPEN:
                    continue
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self.send_raw(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await self.send_raw(self.ws.send(event.response()))
                self._mark_closed(event.code, event.reason or "")
            elif isinstance(event, TextMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    text = "".join(self._parts)
                    self._parts.clear()
                    if self._unasked_session(text):
                        self.session = json.loads(text)
                    else:
                        self.messages_send.send_nowait(text)
        return events

    def _unasked_session(self, text: str) -> bool:
        return (
            self.hide_unasked_session
            and self.session is None
            and not self._asked_session
            and text.startswith('{"type":"SESSION"')
        )

    def _mark_closed(self, code: int | None, reason: str) -> None:
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()
            self.messages_send.send_nowait(Closed(code, reason))

    async def read_forever(self) -> None:
        """The reader loop: run it in a task so pings are answered while the test acts."""
        try:
            while True:
                await self._pump_once()
        except Closed:
            pass

    async def recv(self, timeout: float = 5.0) -> str:
        """The next text message. Raises Closed once the connection has ended."""
        with trio.fail_after(timeout):
            while True:
                try:
                    item = self.messages.receive_nowait()
                except trio.WouldBlock:
                    if self.closed.is_set():
                        raise Closed(self.close_code, self.close_reason) from None
                    if self._has_reader:
                        item = await self.messages.receive()
                    else:
                        with suppress(Closed):
                            await self._pump_once()
                        continue
                if isinstance(item, Closed):
                    raise item
                return item

    async def recv_json(self, timeout: float = 5.0) -> Any:
        return json.loads(await self.recv(timeout))

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the end of the connection, skipping messages; the close code."""
        with trio.fail_after(timeout):
            while True:
                try:
                    await self.recv(timeout=math.inf)
                except Closed as closed:
                    return closed.code

    _has_reader = False

    def start_reader(self, nursery: trio.Nursery) -> None:
        self._has_reader = True
        nursery.start_soon(self.read_forever)


@asynccontextmanager
async def connected(port: int, path: str = "/ws") -> AsyncIterator[WsClient]:
    """A client with a background reader (pings answered), closed cleanly at the end."""
    client = await WsClient.connect(port, path)
    try:
        async with trio.open_nursery() as nursery:
            client.start_reader(nursery)
            yield client
            nursery.cancel_scope.cancel()
    finally:
        client._has_reader = False
        with trio.CancelScope(shield=True):
            await client.close()
