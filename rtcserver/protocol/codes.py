"""The protocol's codes: room-number bounds, ERROR codes, close codes, WRONGROOM reasons.

Shared by every layer (the engine closes with a `CloseCode`, the registry refuses with a
`WrongRoomReason`); pure, no I/O. docs/PROTOCOL.md lists each with what it means.
"""

from __future__ import annotations

import enum
from typing import Final

# Room numbers are JSON integers a browser keeps exact (Number.MAX_SAFE_INTEGER).
MAX_ROOM: Final = 2**53 - 1


class ErrorCode(enum.StrEnum):
    """The `code` of an ERROR message. The connection stays open after each of them."""

    BAD_JSON = "bad-json"  # the text is not JSON
    NOT_AN_OBJECT = "not-an-object"  # JSON, but not an object
    BAD_TYPE = "bad-type"  # `type` missing or not a string
    BINARY_UNSUPPORTED = "binary-unsupported"  # binary frame; the protocol is text
    NOT_IN_ROOM = "not-in-room"  # a relay message before GETROOM/ENTERROOM
    NO_PEER = "no-peer"  # a relay message while alone in the room: not delivered
    NO_SUCH_PEER = "no-such-peer"  # a relay message whose `to` names nobody in the room
    BAD_CAPACITY = "bad-capacity"  # GETROOM asking for a capacity outside 2..max_room_capacity
    FORBIDDEN = "forbidden"  # GETROOM with a token whose `rooms` claim lists the only rooms
    RESERVED_TYPE = "reserved-type"  # a type only the server sends: not relayed
    # Cluster mode (--redis): an operation that needs Redis or another node failed.
    CLUSTER_UNAVAILABLE = "cluster-unavailable"  # Redis unreachable, or this node's lease lost
    PEER_UNREACHABLE = "peer-unreachable"  # the peer's node is not listening: not delivered
    # Authentication (token or password mode); each is followed by close 1008.
    NOT_LOGGED_IN = "not-logged-in"  # CALL & co. before LOGIN (and outside any room)
    OTHER_DIALECT = "other-dialect"  # CALL to a user of the tutorial dialect (offers by name)
    AUTH_REQUIRED = "auth-required"  # the first message was not AUTH
    AUTH_FAILED = "auth-failed"  # unknown name or wrong password
    AUTH_THROTTLED = "auth-throttled"  # too many failed logins for this name or address
    TOKEN_MISSING = "token-missing"
    TOKEN_MALFORMED = "token-malformed"
    TOKEN_BAD_ALG = "token-bad-alg"  # anything but HS256, `none` included
    TOKEN_FORGED = "token-forged"  # the signature does not match
    TOKEN_CLAIMS_INVALID = "token-claims-invalid"
    TOKEN_EXPIRED = "token-expired"
    TOKEN_NOT_YET_VALID = "token-not-yet-valid"
    # Sessions (docs/PROTOCOL.md, "Sessions and resume").
    RESUME_FAILED = "resume-failed"  # unknown, ended or taken session, wrong secret, late
    RESUME_GAP = "resume-gap"  # what the client missed is no longer kept: session ended
    # Several worker processes (--workers N; docs/ARCHITECTURE.md, "Workers").
    WORKER_UNREACHABLE = "worker-unreachable"  # the room's (or names') worker is restarting
    WORKER_UNSUPPORTED = "worker-unsupported"  # a move between workers this one cannot make


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server sends, with what each one means."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down
    POLICY_VIOLATION = 1008  # authentication failed, or the token expired
    MESSAGE_TOO_BIG = 1009  # a message over max_message_size
    INTERNAL_ERROR = 1011  # the connection's actor crashed (logged); others unaffected
    SLOW_CONSUMER = 4000  # the client stopped reading: over its byte limits, or a write stuck
    KEEPALIVE_TIMEOUT = 4001  # no pong within keepalive_timeout
    RESUMED_ELSEWHERE = 4002  # the session was resumed on a newer connection
    ROOM_CLOSED = 4003  # the admin API closed the room (DELETE /api/v1/rooms/{n})
    REMOVED = 4004  # the admin API removed this member (DELETE .../members/{id})
    SIGNED_OUT = 4005  # the admin API ended this user's connection (DELETE /api/v1/users/{name})


class WrongRoomReason(enum.StrEnum):
    NO_SUCH_ROOM = "no-such-room"
    ROOM_FULL = "room-full"
    INVALID_ROOM = "invalid-room"  # not an integer in 1..2^53-1
    ALREADY_IN_ROOM = "already-in-room"
    FORBIDDEN = "forbidden"  # the client's token does not list this room
