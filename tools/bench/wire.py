"""The client side of RFC 6455, as little of it as a load generator needs; no I/O.

Why hand-written instead of wsproto: the load generator must stay well under one
core while it drives a server at full speed, and a general-purpose state machine
costs several times more per frame than the few lines a client needs here: build
one handshake request, check one response, mask outgoing text frames, split
incoming unmasked frames. Ping is answered, close is echoed, fragments are joined.
"""

from __future__ import annotations

import base64
import hashlib
import os

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ProtocolError(Exception):
    """The server said something a WebSocket server must not say."""


def handshake_request(host_header: str, path: str) -> tuple[bytes, bytes]:
    """Return (request bytes, the Sec-WebSocket-Accept value the server must answer)."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()
    return request, accept


def check_handshake_response(head: bytes, accept: bytes) -> None:
    """Raise ProtocolError unless `head` (up to the blank line) accepts the upgrade."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"101":
        raise ProtocolError(f"upgrade refused: {lines[0].decode(errors='replace')}")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept":
            if value.strip() != accept:
                raise ProtocolError("wrong Sec-WebSocket-Accept")
            return
    raise ProtocolError("no Sec-WebSocket-Accept in the 101 response")


class Masker:
    """Client frames must be masked. XOR runs as one big-integer operation in C.

    The key is drawn once per connection rather than per frame: a server cannot tell
    the difference, and the load generator saves a system call per message.
    """

    __slots__ = ("_key", "_long")

    def __init__(self) -> None:
        self._key = os.urandom(4)
        self._long = self._key * 1024

    def frame(self, opcode: int, payload: bytes) -> bytes:
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
        mask = self._long[:n] if n <= len(self._long) else (self._key * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
        return head + self._key + masked


class FrameReader:
    """Split the server's byte stream into complete (opcode, payload) messages."""

    __slots__ = ("_buf", "_fragment_op", "_fragments")

    def __init__(self) -> None:
        self._buf = b""
        self._fragments: list[bytes] = []
        self._fragment_op = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end_of_data = len(buf)
        while end_of_data - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end_of_data - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end_of_data - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:
                raise ProtocolError("server sent a masked frame")
            end = pos + head + length
            if end > end_of_data:
                break
            payload = buf[pos + head : end]
            pos = end
            opcode = b0 & 0x0F
            # Control frames may sit between the fragments of a message.
            if opcode >= OP_CLOSE or (b0 & 0x80 and opcode != OP_CONTINUATION):
                out.append((opcode, payload))
            elif opcode != OP_CONTINUATION:
                self._fragment_op = opcode
                self._fragments = [payload]
            else:
                self._fragments.append(payload)
                if b0 & 0x80:
                    out.append((self._fragment_op, b"".join(self._fragments)))
                    self._fragments = []
        self._buf = buf[pos:]
        return out
