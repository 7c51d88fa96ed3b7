"""A door between a loopback-only network namespace and the test's own network.

Why: on a machine with a real interface, Chromium pairs its non-loopback host
address with the peer's 127.0.0.1 candidate, even when the page signals only
127.0.0.1 candidates; the media then flows from that address (seen in practice:
local 192.0.2.2 -> remote 127.0.0.1). So the browser runs in a network namespace
that has nothing but `lo`, where 127.0.0.1 is the only address there is.

The server under test stays in the test's namespace. Two halves of one pipe join
them through a Unix socket (the filesystem is shared, the network is not):

    Chromium --TCP 127.0.0.1:P (inside)--> gate --Unix socket--> Bridge --TCP--> rtcserver

Run as a script (stdlib only) inside the namespace, this module is the gate: it
brings `lo` up, listens on 127.0.0.1 (a free port), prints
``gate listening on 127.0.0.1:PORT`` and runs until its stdin closes. Imported,
it provides `Bridge`, the half that runs in the test process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def bring_up_loopback() -> None:
    """`ip link set lo up`, without needing iproute2: a new namespace starts with lo down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def splice(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both directions end, then close both sockets."""
    other_way = threading.Thread(target=_pump, args=(b, a), daemon=True)
    other_way.start()
    _pump(a, b)
    other_way.join()
    a.close()
    b.close()


def serve(listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
    """Accept until the listener is closed; splice each connection to a new `connect()`."""
    while True:
        try:
            downstream, _ = listener.accept()
        except OSError:
            return  # listener closed
        try:
            upstream = connect()
        except OSError:
            downstream.close()
            continue
        threading.Thread(target=splice, args=(downstream, upstream), daemon=True).start()


class Bridge:
    """Test-side half: accept on a Unix socket, connect each to `target` (host, port)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.target: tuple[str, int] | None = None
        # Every connection made to the server, in order (`sever` cuts some), and
        # whether new ones are refused (a network that is down).
        self.upstreams: list[socket.socket] = []
        self.refusing = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(64)
        self._thread = threading.Thread(
            target=serve, args=(self._listener, self._connect), daemon=True
        )
        self._thread.start()

    def _connect(self) -> socket.socket:
        if self.target is None:
            raise OSError("no server to bridge to")
        if self.refusing:
            raise OSError("the network is down (refusing)")
        upstream = socket.create_connection(self.target, timeout=5)
        # The timeout was for connecting only: left on, it would also end any stream
        # that stays quiet for 5 s (a WebSocket waiting for a call to be answered).
        upstream.settimeout(None)
        self.upstreams.append(upstream)
        return upstream

    def sever(self, upstreams: list[socket.socket]) -> None:
        """Cut these connections as a network change does: the server gets a TCP reset,
        the browser a bare end of stream (WebSocket 1006), neither a close frame."""
        for upstream in upstreams:
            with contextlib.suppress(OSError):
                upstream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                upstream.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone does not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _unix_connector(path: str) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError:
            s.close()
            raise
        return s

    return connect


def main(unix_path: str) -> None:
    bring_up_loopback()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    threading.Thread(target=serve, args=(listener, _unix_connector(unix_path)), daemon=True).start()
    print(f"gate listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    sys.stdin.read()  # the test process holds our stdin: EOF means it is done (or dead)


if __name__ == "__main__":
    main(sys.argv[1])
