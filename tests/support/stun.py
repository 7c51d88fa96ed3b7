"""A tiny STUN/TURN client (RFC 8489, RFC 8656): just enough to ask a real TURN server
"would you relay for these credentials?" and to tell when it is up.

Messages are built and parsed by pure functions; `StunClient` adds one UDP socket and
retransmits a request until an answer with the same transaction id arrives or the
deadline passes. Authentication is the long-term credential mechanism: the request
carries USERNAME, REALM and NONCE, and MESSAGE-INTEGRITY keyed with
MD5(username:realm:password); the server's answer is signed the same way, which we check.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
import struct
import time
import zlib
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import attrs

MAGIC_COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E

BINDING_REQUEST, BINDING_SUCCESS = 0x0001, 0x0101
ALLOCATE_REQUEST, ALLOCATE_SUCCESS, ALLOCATE_ERROR = 0x0003, 0x0103, 0x0113
REFRESH_REQUEST = 0x0004

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
LIFETIME = 0x000D
REALM = 0x0014
NONCE = 0x0015
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_TRANSPORT = 0x0019
XOR_MAPPED_ADDRESS = 0x0020
FINGERPRINT = 0x8028

UDP = 17


@attrs.frozen
class StunMessage:
    type: int
    txid: bytes
    attributes: tuple[tuple[int, bytes], ...]
    raw: bytes

    def get(self, attr_type: int) -> bytes | None:
        for kind, value in self.attributes:
            if kind == attr_type:
                return value
        return None

    def error(self) -> tuple[int, str] | None:
        """(code, reason) from ERROR-CODE, e.g. (401, 'Unauthorized')."""
        value = self.get(ERROR_CODE)
        if value is None:
            return None
        return (value[2] & 0x7) * 100 + value[3], value[4:].decode(errors="replace")

    def xor_address(self, attr_type: int) -> tuple[str, int] | None:
        value = self.get(attr_type)
        if value is None:
            return None
        family, xport = struct.unpack("!xBH", value[:4])
        port = xport ^ (MAGIC_COOKIE >> 16)
        mask = struct.pack("!I", MAGIC_COOKIE) + (self.txid if family == 2 else b"")
        addr = bytes(a ^ b for a, b in zip(value[4:], mask, strict=False))
        return str(ipaddress.ip_address(addr)), port

    def integrity_ok(self, key: bytes) -> bool:
        """Whether MESSAGE-INTEGRITY is present and was made with `key`."""
        offset = _attribute_offset(self.raw, MESSAGE_INTEGRITY)
        if offset is None:
            return False
        signed = _with_length(self.raw[:offset], offset - 20 + 24)
        expected = hmac.new(key, signed, hashlib.sha1).digest()
        return hmac.compare_digest(expected, self.raw[offset + 4 : offset + 24])


def long_term_key(username: str, realm: str, password: str) -> bytes:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()


def encode(
    msg_type: int,
    txid: bytes,
    attributes: Iterable[tuple[int, bytes]] = (),
    key: bytes | None = None,
) -> bytes:
    """A STUN message, signed with `key` if given, always ending in FINGERPRINT."""
    body = b"".join(_attribute(kind, value) for kind, value in attributes)
    header = struct.pack("!HHI", msg_type, 0, MAGIC_COOKIE) + txid
    message = header + body
    if key is not None:
        mac = hmac.new(key, _with_length(message, len(body) + 24), hashlib.sha1).digest()
        message += _attribute(MESSAGE_INTEGRITY, mac)
    crc_input = _with_length(message, len(message) - 20 + 8)
    crc = (zlib.crc32(crc_input) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
    return _with_length(message + _attribute(FINGERPRINT, struct.pack("!I", crc)), None)


def decode(data: bytes) -> StunMessage:
    if len(data) < 20:
        raise ValueError("shorter than a STUN header")
    msg_type, length, cookie = struct.unpack("!HHI", data[:8])
    if cookie != MAGIC_COOKIE or length + 20 != len(data):
        raise ValueError("not a STUN message")
    attributes = []
    offset = 20
    while offset < len(data):
        kind, size = struct.unpack("!HH", data[offset : offset + 4])
        attributes.append((kind, data[offset + 4 : offset + 4 + size]))
        offset += 4 + size + (-size % 4)
    return StunMessage(msg_type, data[8:20], tuple(attributes), data)


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def _with_length(message: bytes, length: int | None) -> bytes:
    """`message` with its header's length field set (None: its actual body length)."""
    if length is None:
        length = len(message) - 20
    return message[:2] + struct.pack("!H", length) + message[4:]


def _attribute_offset(raw: bytes, wanted: int) -> int | None:
    offset = 20
    while offset + 4 <= len(raw):
        kind, size = struct.unpack("!HH", raw[offset : offset + 4])
        if kind == wanted:
            return offset
        offset += 4 + size + (-size % 4)
    return None


@attrs.frozen
class Allocated:
    relayed: tuple[str, int]
    lifetime: int


@attrs.frozen
class Refused:
    code: int
    reason: str


class StunClient:
    """One UDP socket talking to one STUN/TURN server (one 5-tuple, so one allocation)."""

    def __init__(self, server: tuple[str, int], timeout: float = 5.0) -> None:
        self.server = server
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Not connected: ICMP "port unreachable" then cannot abort a readiness probe.
        self.sock.bind(("127.0.0.1", 0))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.sock.close()

    def request(self, message: bytes, timeout: float | None = None) -> StunMessage | None:
        """Send `message` and return the answer with its transaction id, retransmitting
        every 0.25 s; None if nothing came back within `timeout`."""
        txid = message[8:20]
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.sendto(message, self.server)
            retransmit_at = time.monotonic() + min(0.25, remaining)
            while (wait := retransmit_at - time.monotonic()) > 0:
                self.sock.settimeout(wait)
                try:
                    data, _ = self.sock.recvfrom(65536)
                except TimeoutError:
                    break
                try:
                    answer = decode(data)
                except ValueError:
                    continue
                if answer.txid == txid:
                    return answer
        return None

    def binding(self, timeout: float | None = None) -> StunMessage | None:
        return self.request(encode(BINDING_REQUEST, _txid()), timeout)

    def allocate(self, username: str, password: str) -> Allocated | Refused:
        """Try a UDP relay allocation with these credentials. On success, release it
        again (Refresh with LIFETIME 0) so tests leave no allocation behind."""
        transport = [(REQUESTED_TRANSPORT, bytes([UDP, 0, 0, 0]))]
        challenge = self._expect(encode(ALLOCATE_REQUEST, _txid(), transport))
        first = challenge.error()
        if first is None or first[0] != 401:
            raise AssertionError(f"expected a 401 challenge, got {challenge}")
        refusal = Refused(*first)
        for _ in range(2):  # a second round only if the nonce went stale (438)
            realm = _text(challenge, REALM)
            key = long_term_key(username, realm, password)
            credentials = [
                (USERNAME, username.encode()),
                (REALM, realm.encode()),
                (NONCE, _text(challenge, NONCE).encode()),
            ]
            answer = self._expect(encode(ALLOCATE_REQUEST, _txid(), transport + credentials, key))
            if answer.type == ALLOCATE_SUCCESS:
                if not answer.integrity_ok(key):
                    raise AssertionError("allocation granted, but not signed with our key")
                self._expect(
                    encode(REFRESH_REQUEST, _txid(), [(LIFETIME, bytes(4)), *credentials], key)
                )
                relayed = answer.xor_address(XOR_RELAYED_ADDRESS)
                lifetime = answer.get(LIFETIME)
                assert relayed is not None and lifetime is not None, answer
                return Allocated(relayed, struct.unpack("!I", lifetime)[0])
            error = answer.error()
            if answer.type != ALLOCATE_ERROR or error is None:
                raise AssertionError(f"unexpected answer to Allocate: {answer}")
            refusal = Refused(*error)
            if refusal.code != 438:
                return refusal
            challenge = answer
        return refusal

    def _expect(self, message: bytes) -> StunMessage:
        answer = self.request(message)
        if answer is None:
            raise AssertionError(f"no answer from {self.server} within {self.timeout}s")
        return answer


def _txid() -> bytes:
    return secrets.token_bytes(12)


def _text(message: StunMessage, attr_type: int) -> str:
    value = message.get(attr_type)
    if value is None:
        raise AssertionError(f"attribute {attr_type:#06x} missing from {message}")
    return value.decode()
