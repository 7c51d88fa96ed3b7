"""Local links between the workers of one server: records over Unix stream sockets,
batched, many per write and many per read.

What cannot move with a handed-over socket travels here instead (connection/seats.py:
a logged-in user's seat in a room another worker owns). Each worker listens at an
abstract address (Linux: gone with the process) and opens one outgoing stream per
worker it talks to, lazily; records to one worker keep their order because one
writer task writes them, in the order queued, as one `send_all` per wake-up (never
a syscall pair per message, as Erlang distribution batches between nodes).

A record: `!IBB` (payload length, kind, key length), the key (UTF-8: whose record it
is), the payload. The parser is pure (`RecordParser`); `Links` is the I/O.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Final

import trio

log = logging.getLogger("rtcserver")

_HEADER: Final = struct.Struct("!IBB")
# What may wait unwritten for one worker before `send` says no: its writer is behind
# (the worker is stuck or gone). Bytes, like every other queue here.
QUEUE_LIMIT: Final = 32 * 1024 * 1024
_READ_SIZE: Final = 256 * 1024
CONNECT_TIMEOUT: Final = 2.0

Record = tuple[int, str, bytes]  # kind, key, payload
# The first record on every stream: the writer's worker index, so replies find it.
HELLO: Final = 0


def encode(kind: int, key: str, payload: bytes) -> bytes:
    raw_key = key.encode()
    return _HEADER.pack(len(payload), kind, len(raw_key)) + raw_key + payload


_PEER_CREDENTIALS: Final = struct.Struct("iII")  # pid, uid, gid


def _same_user(sock: trio.socket.SocketType) -> bool:
    """Whether the connecting process runs as this server's user (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEER_CREDENTIALS.size)
    _pid, uid, _gid = _PEER_CREDENTIALS.unpack(raw)
    return bool(uid == os.getuid())


class RecordParser:
    """Bytes in, complete records out, whatever the reads' boundaries were."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Record]:
        buffer = self._buffer
        buffer += data
        records: list[Record] = []
        offset = 0
        size = len(buffer)
        while size - offset >= _HEADER.size:
            length, kind, key_length = _HEADER.unpack_from(buffer, offset)
            end = offset + _HEADER.size + key_length + length
            if end > size:
                break
            start = offset + _HEADER.size
            key = bytes(buffer[start : start + key_length]).decode()
            records.append((kind, key, bytes(buffer[start + key_length : end])))
            offset = end
        del buffer[:offset]
        return records


class _Outbound:
    """The stream to one worker, and what waits to be written to it."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.size = 0
        self.wake = trio.Event()
        self.running = False
        self.stream: trio.SocketStream | None = None  # once connected


class Links:
    """This worker's links to the others: `send` queues a record (never blocks),
    `serve` takes the records the others send and hands each to `on_record`
    (source worker, kind, key, payload), synchronously, in order."""

    def __init__(
        self,
        index: int,
        address_of: Callable[[int], bytes],
        on_record: Callable[[int, int, str, bytes], None],
        on_lost: Callable[[int], None],
    ) -> None:
        self._index = index
        self._address_of = address_of
        self._on_record = on_record
        self._on_lost = on_lost  # a worker's link broke: what was queued for it is gone
        self._out: dict[int, _Outbound] = {}
        self._nursery: trio.Nursery | None = None
        self.records_sent = 0
        self.writes = 0

    def send(self, target: int, kind: int, key: str, payload: bytes) -> bool:
        """Queue a record for worker `target`. False (nothing queued) when the link is
        not serving, or is behind by more than `QUEUE_LIMIT` bytes."""
        if self._nursery is None:
            return False
        out = self._out.get(target)
        if out is None:
            out = self._out[target] = _Outbound()
        record = encode(kind, key, payload)
        if out.size + len(record) > QUEUE_LIMIT:
            return False
        out.pending.append(record)
        out.size += len(record)
        out.wake.set()
        if not out.running:
            out.running = True
            self._nursery.start_soon(self._write, target, out)  # connects first
        return True

    async def _write(self, target: int, out: _Outbound) -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                await sock.connect(self._address_of(target))
        except (OSError, trio.TooSlowError) as failure:
            sock.close()
            log.warning("event=link-failed worker=%d why=%s", target, failure)
            self._lost(target, out)
            return
        stream = out.stream = trio.SocketStream(sock)
        out.pending.insert(0, encode(HELLO, "", str(self._index).encode()))
        async with stream:
            try:
                while True:
                    await out.wake.wait()
                    out.wake = trio.Event()
                    batch, out.pending, out.size = out.pending, [], 0
                    self.records_sent += len(batch)
                    self.writes += 1
                    await stream.send_all(b"".join(batch))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as failure:
                log.warning("event=link-lost worker=%d why=%s", target, failure)
                self._lost(target, out)

    def _lost(self, target: int, out: _Outbound) -> None:
        if self._out.get(target) is out:
            del self._out[target]
        self._on_lost(target)

    async def serve(
        self, address: bytes, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with listener:
            await listener.bind(address)
            listener.listen(64)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                try:
                    while True:
                        sock, _ = await listener.accept()
                        if not _same_user(sock):  # an abstract address: anyone may connect
                            sock.close()
                            continue
                        nursery.start_soon(self._read, trio.SocketStream(sock))
                finally:
                    self._nursery = None

    async def _read(self, stream: trio.SocketStream) -> None:
        parser = RecordParser()
        source = -1
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(_READ_SIZE)
                except trio.BrokenResourceError:
                    data = b""
                if not data:
                    if source >= 0:
                        self._on_lost(source)
                    return
                for kind, key, payload in parser.feed(data):
                    if kind == HELLO:
                        source = int(payload)
                        continue
                    self._on_record(source, kind, key, payload)
