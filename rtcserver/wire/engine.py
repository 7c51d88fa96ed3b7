"""The WebSocket engine: a thin Trio shell around websockets' sans-I/O protocol.

`websockets.server.ServerProtocol` owns RFC 6455: the opening handshake's checks,
framing, unmasking (in C), control frames, the closing handshake, size limits. It
never touches a socket. This module owns the socket, and nothing else: it feeds the
protocol what one `receive_some` read, hands back the complete messages, and writes
whatever the protocol has queued as one `send_all`.

There is no task in here. The connection actor (connection/lifecycle.py) reads on its own task
and writes on one writer task; the one `WebSocket` object is shared by both, which
is safe because every protocol call is synchronous (Trio switches only at awaits).
Measured reason (docs/ARCHITECTURE.md): trio-websocket's reader task, channel, lock
and per-message cancel scopes cost about twice the CPU per message of this loop.
"""

from __future__ import annotations

import logging
import os
import select
from collections.abc import Callable
from typing import Final, final

import trio
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Event, Protocol, State
from websockets.server import ServerProtocol

# A read size that takes a whole SDP offer (or a burst of small frames) in one call.
RECEIVE_SIZE: Final = 64 * 1024
# A large write goes out in slices of this size, reporting progress after each, so a
# write deadline can mean "no progress for so long" rather than "all of it by then".
WRITE_SLICE: Final = 64 * 1024

# websockets logs every open and close at INFO; rtcserver logs its own line per event.
_protocol_log = logging.getLogger("rtcserver.websocket")
_protocol_log.setLevel(logging.WARNING)

_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_CONT: Final = Opcode.CONT
_CLOSE: Final = Opcode.CLOSE
_OPEN: Final = State.OPEN


class Closed(Exception):
    """The WebSocket is over for reading: a close frame, EOF, or a broken socket."""


class UnreadableUpgrade(Exception):
    """The request head that h11 accepted is not one websockets can parse (for
    example HTTP/1.0): nothing was sent; the caller answers 400."""


@final
class WebSocket:
    """One open WebSocket: the stream, its protocol state, a message being reassembled."""

    __slots__ = ("_fragments", "_pending", "_socket", "protocol", "stream")

    def __init__(self, stream: trio.abc.Stream, protocol: ServerProtocol) -> None:
        self.stream = stream
        self.protocol = protocol
        # A plain TCP stream is read and written with direct non-blocking system calls
        # first (`_read_now`, `write_now`): Trio's stream layers cost several µs a call,
        # a large share of a relayed message. TLS goes through the stream.
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        # Frames the protocol parsed together with the handshake (a client may send
        # its first messages right behind the request head): read before the socket.
        self._pending: list[Event] = protocol.events_received()
        # A fragmented message in progress: its opcode and the payloads so far.
        self._fragments: tuple[Opcode, list[bytes]] | None = None

    # ------------------------------------------------------------------ reading

    async def receive(self) -> list[str | bytes]:
        """Read once and return the messages completed by it (text as str, binary as
        bytes), possibly none (a ping, half a frame). Raises Closed when the client
        closed, the stream ended, or the protocol failed (it has then queued the
        close frame that says why: 1002, 1007, 1009)."""
        protocol = self.protocol
        if self._pending:
            events, self._pending = self._pending, []
            return self._messages(events)
        if protocol.state is not _OPEN:
            raise Closed
        data: bytes | bytearray
        try:
            if self._socket is not None:
                data = await self._read()
            else:
                data = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            protocol.receive_eof()
            raise Closed
        protocol.receive_data(data)
        return self._messages(protocol.events_received())

    async def _read(self) -> bytes:
        """`receive_some` for a plain socket, as Trio does it (a cancellation point
        before, a yield that cannot lose the data after), without its layers."""
        socket = self._socket
        assert socket is not None
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            # fileno() is -1 once the socket was closed: never touch a reused number.
            # Nothing runs between this check and the read (no await in between).
            fd = socket.fileno()
            if fd < 0:
                raise trio.ClosedResourceError
            try:
                data = os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(socket)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    def _messages(self, events: list[Event]) -> list[str | bytes]:
        messages: list[str | bytes] = []
        for frame in events:
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is _TEXT and frame.fin:
                data = frame.data
            elif opcode is _TEXT or opcode is _BINARY:
                if frame.fin:
                    messages.append(bytes(frame.data))
                    continue
                self._fragments = (opcode, [bytes(frame.data)])
                continue
            elif opcode is _CONT:
                assert self._fragments is not None  # the protocol checks continuations
                kind, parts = self._fragments
                parts.append(bytes(frame.data))
                if not frame.fin:
                    continue
                self._fragments = None
                if kind is _BINARY:
                    messages.append(b"".join(parts))
                    continue
                data = b"".join(parts)
            else:
                continue  # ping (answered by the protocol), pong, close (state says)
            try:
                messages.append(str(data, "utf-8"))
            except UnicodeDecodeError as exc:
                self.protocol.fail(1007, f"invalid UTF-8 at position {exc.start}")
                break
        return messages

    def at_frame_boundary(self) -> bool:
        """Whether every byte read so far belongs to a message already returned: no
        half frame in the parser, no fragmented message, nothing parsed but unread.
        Only then can another process take the socket over (connection/handover.py)
        and start its own parser on the next byte."""
        if self._pending or self._fragments is not None or self.protocol.state is not _OPEN:
            return False
        # The frame parser waits in `reader.at_eof()` between frames, and only there
        # with an empty buffer; inside a frame it waits in `read_exact`.
        generator: object = self.protocol.parser
        while generator is not None:
            code = getattr(generator, "gi_code", None)
            if code is not None and code.co_name == "at_eof":
                return not self.protocol.reader.buffer
            generator = getattr(generator, "gi_yieldfrom", None)
        return False

    def has_output(self) -> bool:
        """Whether reading made the protocol queue bytes (a pong, a close) to send."""
        return bool(self.protocol.writes)

    @property
    def open(self) -> bool:
        return self.protocol.state is _OPEN

    def peer_gone(self) -> bool:
        """Whether the client has closed or reset the connection, asked without reading
        (the reader may be busy, e.g. waiting for a password check): the kernel's
        hang-up flags on the socket (Linux POLLRDHUP; elsewhere only a reset shows)."""
        if self.protocol.state is not _OPEN:
            return True
        stream = self.stream
        while isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        if not isinstance(stream, trio.SocketStream):
            return False
        gone = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR
        poller = select.poll()
        poller.register(stream.socket.fileno(), gone)
        return any(events & gone for _, events in poller.poll(0))

    def close_received(self) -> tuple[int, str] | None:
        close = self.protocol.close_rcvd
        return None if close is None else (int(close.code), close.reason)

    def close_sent(self) -> int | None:
        """The code of the close frame queued or sent to the client, if any (the
        protocol queues one itself when the client breaks it: 1002, 1007, 1009)."""
        close = self.protocol.close_sent
        return None if close is None else int(close.code)

    # ------------------------------------------------------------------ writing

    def queue_texts(self, batch: list[bytes]) -> None:
        """Frame each UTF-8 payload as a text message, to go out on the next flush.
        Once the closing handshake has begun nothing more can be sent: dropped."""
        protocol = self.protocol
        if protocol.state is not _OPEN:
            return
        send_text = protocol.send_text
        for data in batch:
            send_text(data)

    def write_now(self) -> bool:
        """Write what the protocol has queued with one non-blocking system call, if it
        all fits in the socket's buffer (the common case). True when nothing is left
        to write; otherwise nothing was taken and `flush` must do it. No await: a
        frame can never be cut here."""
        socket = self._socket
        protocol = self.protocol
        writes = protocol.writes
        if socket is None or len(writes) != 1 or not writes[0]:
            return not writes  # several chunks or an end-of-stream: `flush` does it
        data = writes[0]
        fd = socket.fileno()
        if fd < 0:
            return False
        try:
            sent = os.write(fd, data)
        except OSError:  # would block, or broken: `flush` finds out properly
            return False
        if sent < len(data):
            writes[0] = data[sent:]
            return False
        writes.clear()
        return True

    async def flush(self, progress: Callable[[], None] | None = None) -> None:
        """Write everything the protocol has queued as one `send_all` (one syscall
        for a whole burst); past `WRITE_SLICE` bytes, slice by slice, calling
        `progress` after each. An end-of-stream marker becomes a half-close."""
        chunks = self.protocol.data_to_send()
        if not chunks:
            await trio.lowlevel.checkpoint()
            return
        eof = chunks[-1] == b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        # The frames are all in `data` now: let them go before a write that may take
        # long (a client that does not read), or their bytes would be held twice while
        # the queue budget counts them once (docs/PROTOCOL.md, "Limits").
        del chunks
        if len(data) <= WRITE_SLICE or progress is None:
            if data:
                await self.stream.send_all(data)
        else:
            view = memoryview(data)
            for start in range(0, len(data), WRITE_SLICE):
                await self.stream.send_all(view[start : start + WRITE_SLICE])
                progress()
        if eof and isinstance(self.stream, trio.SocketStream):
            await self.stream.send_eof()

    async def ping(self) -> None:
        """Send a ping now. The pong is noticed by the reader as something heard."""
        if self.protocol.state is _OPEN:
            self.protocol.send_ping(b"")
        await self.flush()

    async def aclose(self, code: int, reason: str = "") -> None:
        """The closing handshake: our close frame (unless one was already sent), then
        wait for the client's answer (or EOF) so that closing the socket cannot reset
        the connection before the client has read the close frame. The caller bounds
        how long this may take; the caller also closes the stream."""
        protocol = self.protocol
        if protocol.state is _OPEN:
            # A close frame's reason has room for 123 bytes of UTF-8.
            reason = reason.encode()[:123].decode(errors="ignore")
            protocol.send_close(code, reason)
        try:
            await self.flush()
            while protocol.state is State.CLOSING and protocol.close_rcvd is None:
                data = await self.stream.receive_some(RECEIVE_SIZE)
                if not data:
                    protocol.receive_eof()
                    break
                protocol.receive_data(data)
            await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def accept(stream: trio.abc.Stream, head: bytes, max_message_size: int) -> WebSocket | None:
    """Complete the opening handshake for a request whose bytes (`head`, and anything
    the client sent after it) were already read. Returns the open WebSocket, or None
    after sending the refusal the protocol chose (400 naming the problem). Raises
    UnreadableUpgrade when the protocol cannot read the request at all."""
    protocol = ServerProtocol(max_size=max_message_size, logger=_protocol_log)
    protocol.receive_data(head)
    events = protocol.events_received()
    if not events or not isinstance(events[0], Request):
        raise UnreadableUpgrade(str(protocol.handshake_exc or "incomplete request"))
    response = protocol.accept(events[0])
    protocol.events = events[1:]  # frames that came with the head: read them first
    protocol.send_response(response)
    if response.status_code == 101 and head.endswith(b"\r\n\r\n"):
        # ServerProtocol's parser keeps the parsed request (headers and all) alive in
        # its generator frame for the connection's life; from here on it only parses
        # frames, which the base parser does alike. Nothing past the head was read,
        # so no frame is half-parsed: start the frame parser afresh (about 2 KB less
        # per idle connection).
        protocol.parser = Protocol.parse(protocol)
        next(protocol.parser)
    data = b"".join(protocol.data_to_send())
    await stream.send_all(data)
    if response.status_code != 101:
        return None
    return WebSocket(stream, protocol)


def adopt(stream: trio.abc.Stream, max_message_size: int) -> WebSocket:
    """An open WebSocket on a socket another process handed over at a frame
    boundary (`WebSocket.at_frame_boundary`): no handshake, the frame parser fresh."""
    protocol = ServerProtocol(max_size=max_message_size, logger=_protocol_log)
    protocol.state = _OPEN
    protocol.parser = Protocol.parse(protocol)
    next(protocol.parser)
    return WebSocket(stream, protocol)
