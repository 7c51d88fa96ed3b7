"""Passing a live socket to another process: one datagram, one descriptor.

The workers of one server (`--workers N`) each have an *inbox*: a Unix datagram socket
bound to an abstract address (Linux: no file to clean up, gone with the process). A
handover is one datagram: a small header the receiver decodes, and the connection's
file descriptor as SCM_RIGHTS ancillary data. Unix datagrams are reliable and keep
their boundaries; a full inbox makes the sender wait (`wait_writable`), and a dead
worker's address refuses at once (ConnectionRefusedError, FileNotFoundError).
"""

from __future__ import annotations

import array
import os
import socket
import struct
from typing import Final

import trio

# A header carries the messages read together with the one that caused the handover
# (at most one read: 64 KiB) and a few fields; datagrams this large fit the defaults.
MAX_DATAGRAM: Final = 192 * 1024
_FD_SPACE: Final = socket.CMSG_SPACE(4 * array.array("i", [0]).itemsize)
# The sender's credentials, which the kernel attaches to every datagram (SO_PASSCRED):
# pid, uid, gid. An abstract address has no file permissions, so anyone on the machine
# may send to it: only datagrams from this server's own user are taken.
_CREDENTIALS: Final = struct.Struct("iII")
_CRED_SPACE: Final = socket.CMSG_SPACE(_CREDENTIALS.size)


class Unreachable(Exception):
    """No worker listens at that address (it died, or is restarting)."""


async def open_inbox(address: bytes) -> trio.socket.SocketType:
    """Bind this worker's inbox. Raises OSError if another process holds the address."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MAX_DATAGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MAX_DATAGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        await sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def send(address: bytes, header: bytes, fd: int | None = None) -> None:
    """Send `header` (and a duplicate of descriptor `fd`) to the inbox at `address`.
    Raises Unreachable when nobody listens there, ValueError when `header` is too big.
    Each send has a socket of its own: a full inbox makes senders wait (its queue is
    short: net.unix.max_dgram_qlen), and Trio lets only one task wait on a socket."""
    if len(header) > MAX_DATAGRAM:
        raise ValueError(f"a handover header of {len(header)} bytes is too large")
    ancillary = []
    if fd is not None:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
    with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MAX_DATAGRAM)
        try:
            await sock.sendmsg([header], ancillary, 0, address)
        except (ConnectionRefusedError, FileNotFoundError) as gone:
            raise Unreachable(str(gone)) from gone


async def receive(sock: trio.socket.SocketType) -> tuple[bytes, list[int]]:
    """The next datagram from a process of this user: its header and the descriptors
    that came with it (now ours). Datagrams of other users are dropped (and the
    descriptors they carried closed) unread."""
    while True:
        data, ancillary, _flags, _address = await sock.recvmsg(
            MAX_DATAGRAM, _FD_SPACE + _CRED_SPACE
        )
        fds: list[int] = []
        uid: int | None = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                fds.extend(received)
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                _pid, uid, _gid = _CREDENTIALS.unpack_from(payload)
        if uid == os.getuid():
            return data, fds
        for fd in fds:
            os.close(fd)
