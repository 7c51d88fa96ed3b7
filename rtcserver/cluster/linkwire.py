"""What node-to-node links say on the wire, with no I/O: framing and the handshake.

A link is one TCP connection from a sending node to a receiving node. Both directions
carry *frames*: a 4-byte big-endian length, then that many bytes of UTF-8 text. From the
sender come the bus's frames (`bus.py`: M, J, L, E, P, A, ...), unchanged; from the
receiver, acknowledgements `a|<count>` (frames received and handed on so far), so the
sender knows which frames a broken link may have lost.

The handshake proves that both ends hold the cluster's link key (derived from the
secret the nodes share in Redis, `link_key`) without sending it:

    receiver -> sender   H|<receiver node>|<nonce>
    sender -> receiver   C|<sender node>|<nonce>|<proof>        proof of the sender
    receiver -> sender   K|<proof>   or   N|<why it refused>    proof of the receiver

A proof is an HMAC-SHA256 over both node ids and both nonces, with the role in front so
one side's proof cannot be replayed as the other's; proofs are compared in constant time
(`hmac.compare_digest`). The sender also checks that the node that answered is the node
it meant to reach (an address in Redis may be stale).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from typing import Final

HEADER: Final = struct.Struct("!I")
HANDSHAKE_MAX: Final = 1024  # bytes of one handshake frame at most


class LinkProtocolError(Exception):
    """The other end broke the link protocol (a frame too large, bad UTF-8, a bad
    handshake): the link is closed."""


def link_key(cluster_secret: bytes) -> bytes:
    """The links' key, derived from the secret every node reads from Redis (`idkey`), so
    the key never travels and a different cluster's node cannot connect."""
    return hmac.new(cluster_secret, b"rtcserver cluster link v1", hashlib.sha256).digest()


def encode(text: str) -> bytes:
    data = text.encode()
    return HEADER.pack(len(data)) + data


class FrameReader:
    """Bytes in, whole frames out: many frames per read, or one frame over many."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        buffer = self._buffer
        buffer += data
        frames: list[str] = []
        start, end = 0, len(buffer)
        while end - start >= 4:
            (size,) = HEADER.unpack_from(buffer, start)
            if size > self.max_frame:
                raise LinkProtocolError(f"a frame of {size} bytes (the limit is {self.max_frame})")
            if end - start - 4 < size:
                break
            try:
                frames.append(buffer[start + 4 : start + 4 + size].decode())
            except UnicodeDecodeError:
                raise LinkProtocolError("a frame that is not UTF-8") from None
            start += 4 + size
        if start:
            del buffer[:start]
        return frames


def nonce() -> str:
    return secrets.token_hex(16)


def _proof(key: bytes, role: str, receiver: str, sender: str, r_nonce: str, s_nonce: str) -> str:
    message = f"{role}|{receiver}|{sender}|{r_nonce}|{s_nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def hello(receiver: str, r_nonce: str) -> str:
    return f"H|{receiver}|{r_nonce}"


def parse_hello(frame: str) -> tuple[str, str]:
    kind, _, rest = frame.partition("|")
    receiver, _, r_nonce = rest.rpartition("|")
    if kind != "H" or not receiver or not r_nonce:
        raise LinkProtocolError("no hello from the other node")
    return receiver, r_nonce


def claim(key: bytes, receiver: str, r_nonce: str, sender: str) -> str:
    """The sender's answer to `hello`: who it is, with its proof."""
    s_nonce = nonce()
    proof = _proof(key, "sender", receiver, sender, r_nonce, s_nonce)
    return f"C|{sender}|{s_nonce}|{proof}"


def check_claim(key: bytes, receiver: str, r_nonce: str, frame: str) -> tuple[str, str] | None:
    """The receiver's check of a claim: (sender node, the receiver's own proof to send
    back), or None when the proof is wrong."""
    fields = frame.split("|")
    if len(fields) != 4 or fields[0] != "C":
        raise LinkProtocolError("a malformed claim")
    _, sender, s_nonce, proof = fields
    expected = _proof(key, "sender", receiver, sender, r_nonce, s_nonce)
    if not hmac.compare_digest(expected, proof):
        return None
    return sender, f"K|{_proof(key, 'receiver', receiver, sender, r_nonce, s_nonce)}"


def check_accept(key: bytes, receiver: str, r_nonce: str, claim_frame: str, frame: str) -> None:
    """The sender's check of the receiver's answer; raises unless it proves the key."""
    if frame.startswith("N|"):
        raise LinkProtocolError(f"refused by the other node: {frame[2:]}")
    _, sender, s_nonce, _ = claim_frame.split("|")
    expected = f"K|{_proof(key, 'receiver', receiver, sender, r_nonce, s_nonce)}"
    if not hmac.compare_digest(expected, frame):
        raise LinkProtocolError("the other node could not prove the cluster's link key")
