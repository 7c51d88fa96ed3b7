"""The wire protocol: what clients may send, what the server answers. Pure, no I/O.

Book-compatible (WebRTC Blueprints, ch. 1): GETROOM and ENTERROOM are handled by
the server, every other message is relayed verbatim to the room's other member.
Everything added (PEERJOINED, PEERLEFT, ERROR, reasons) is additive, so the book's
client, which ignores types it does not know, keeps working.

Decoding looks at the `type` key only, whatever the key order (the book's server
read the first key); the relay forwards the original text, never a re-encoding.

Long because it is the whole vocabulary, one attrs class per message, so that
docs/PROTOCOL.md maps onto one file; each class is a few lines, with no logic.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import attrs
import orjson
from cattrs.preconf.orjson import make_converter

from .codes import MAX_ROOM, ErrorCode, WrongRoomReason

# ---------------------------------------------------------------- server messages


# `type` comes first in every reply, as in the book's server; kw_only lets it lead
# (the class default is the only value it ever takes).


@attrs.frozen(kw_only=True)
class GetRoomReply:
    type: Literal["GETROOM"] = attrs.field(default="GETROOM")
    value: int


@attrs.frozen(kw_only=True)
class WrongRoom:
    type: Literal["WRONGROOM"] = attrs.field(default="WRONGROOM")
    reason: WrongRoomReason


@attrs.frozen(kw_only=True)
class SeatHeld:
    """WRONGROOM room-full when a seat is held by an away member (a closed tab's reload
    grace, a lost socket's resume grace): ENTERROOM again in `retry` seconds."""

    type: Literal["WRONGROOM"] = attrs.field(default="WRONGROOM")
    reason: WrongRoomReason
    retry: float


@attrs.frozen(kw_only=True)
class PeerJoined:
    type: Literal["PEERJOINED"] = attrs.field(default="PEERJOINED")


@attrs.frozen(kw_only=True)
class PeerLeft:
    type: Literal["PEERLEFT"] = attrs.field(default="PEERLEFT")


# Multi-party rooms (capacity above two) and rosters: every member has an id in its room.


@attrs.frozen(kw_only=True)
class Member:
    id: str
    name: str | None  # the LOGIN name, or null for a guest


@attrs.frozen(kw_only=True)
class Room:
    """To a member that got into a room: who it is there and who else is."""

    type: Literal["ROOM"] = attrs.field(default="ROOM")
    value: int
    id: str
    capacity: int
    members: list[Member]


@attrs.frozen(kw_only=True)
class MemberJoined:
    type: Literal["PEERJOINED"] = attrs.field(default="PEERJOINED")
    id: str
    name: str | None


@attrs.frozen(kw_only=True)
class MemberLeft:
    type: Literal["PEERLEFT"] = attrs.field(default="PEERLEFT")
    id: str


@attrs.frozen(kw_only=True)
class Error:
    type: Literal["ERROR"] = attrs.field(default="ERROR")
    code: ErrorCode
    message: str


@attrs.frozen(kw_only=True)
class AuthReply:
    type: Literal["AUTH"] = "AUTH"
    success: bool = True
    name: str | None


@attrs.frozen(kw_only=True)
class Config:
    """The ICE servers (with ephemeral TURN credentials) for this client's browser."""

    type: Literal["CONFIG"] = "CONFIG"
    iceServers: list[dict[str, Any]]
    iceTransportPolicy: Literal["all", "relay"]


@attrs.frozen(kw_only=True)
class LoginOk:
    type: Literal["LOGIN"] = "LOGIN"
    success: Literal[True] = True
    name: str


@attrs.frozen(kw_only=True)
class LoginRefused:
    type: Literal["LOGIN"] = "LOGIN"
    success: Literal[False] = False
    reason: str


@attrs.frozen(kw_only=True)
class UserEntry:
    name: str
    status: str


@attrs.frozen(kw_only=True)
class Users:
    type: Literal["USERS"] = "USERS"
    users: list[UserEntry]


@attrs.frozen(kw_only=True)
class UserJoined:
    type: Literal["USERJOINED"] = "USERJOINED"
    name: str
    status: str


@attrs.frozen(kw_only=True)
class UserLeft:
    type: Literal["USERLEFT"] = "USERLEFT"
    name: str


@attrs.frozen(kw_only=True)
class Presence:
    type: Literal["PRESENCE"] = "PRESENCE"
    name: str
    status: str


@attrs.frozen(kw_only=True)
class SessionGranted:
    """The answer to SESSION: what a later RESUME must present."""

    type: Literal["SESSION"] = "SESSION"
    session: str
    secret: str
    grace: float


@attrs.frozen(kw_only=True)
class Resumed:
    """The session is back on this socket; `secret` is the one for the next RESUME."""

    type: Literal["RESUMED"] = "RESUMED"
    session: str
    secret: str
    room: int | None
    peers: int  # how many others are in the room now


@attrs.frozen(kw_only=True)
class PeerAway:
    type: Literal["PEERAWAY"] = "PEERAWAY"


@attrs.frozen(kw_only=True)
class PeerBack:
    type: Literal["PEERBACK"] = "PEERBACK"


@attrs.frozen(kw_only=True)
class MemberAway:
    """PEERAWAY in a room whose members have ids: which one."""

    type: Literal["PEERAWAY"] = "PEERAWAY"
    id: str


@attrs.frozen(kw_only=True)
class MemberBack:
    type: Literal["PEERBACK"] = "PEERBACK"
    id: str


@attrs.frozen(kw_only=True)
class AdminMessage:
    """What the admin API posted to the room (POST /api/v1/rooms/{n}/messages): any
    JSON object, in `data`. Only the server sends it: no client can forge one."""

    type: Literal["ADMIN"] = "ADMIN"
    data: dict[str, Any]


ServerMessage = (
    AdminMessage
    | SessionGranted
    | Resumed
    | PeerAway
    | PeerBack
    | MemberAway
    | MemberBack
    | LoginOk
    | LoginRefused
    | Users
    | UserJoined
    | UserLeft
    | Presence
    | GetRoomReply
    | WrongRoom
    | SeatHeld
    | PeerJoined
    | PeerLeft
    | Room
    | MemberJoined
    | MemberLeft
    | Error
    | AuthReply
    | Config
)

_converter = make_converter()


def encode(message: ServerMessage) -> str:
    """Serialise a server message to the text of one WebSocket frame."""
    return orjson.dumps(_converter.unstructure(message)).decode()


# Messages with no fields are the same text every time: encode them once.
PEER_JOINED_TEXT: Final = encode(PeerJoined())
PEER_LEFT_TEXT: Final = encode(PeerLeft())
PEER_AWAY_TEXT: Final = encode(PeerAway())
PEER_BACK_TEXT: Final = encode(PeerBack())


def peer_joined_text(member_id: str | None, name: str | None) -> str:
    """PEERJOINED as a room of two has it (no id: the book's shape), or with the id."""
    if member_id is None:
        return PEER_JOINED_TEXT
    return encode(MemberJoined(id=member_id, name=name))


def peer_left_text(member_id: str | None) -> str:
    if member_id is None:
        return PEER_LEFT_TEXT
    return encode(MemberLeft(id=member_id))


def peer_away_text(member_id: str | None) -> str:
    if member_id is None:
        return PEER_AWAY_TEXT
    return encode(MemberAway(id=member_id))


def peer_back_text(member_id: str | None) -> str:
    if member_id is None:
        return PEER_BACK_TEXT
    return encode(MemberBack(id=member_id))


def from_suffix(member_id: str) -> str:
    """What closes a relayed object in a multi-party room: the sender's id, as its last
    key. JSON.parse and orjson keep the last of duplicate keys, so a `from` the sender
    wrote itself cannot pass for another member's."""
    return f',"from":{orjson.dumps(member_id).decode()}}}'


# ---------------------------------------------------------------- client messages


@attrs.frozen
class GetRoom:
    """`{"type":"GETROOM","value":""}`: make a new room and become its first member.
    `capacity` is what the client asked for (unchecked; absent: None); `roster` asks for
    ROOM even in a room of two."""

    capacity: object = None
    roster: bool = False


@attrs.frozen
class EnterRoom:
    """`{"type":"ENTERROOM","value":N}`: `room` is None when N is not a valid room number."""

    room: int | None
    roster: bool = False


@attrs.frozen
class Relay:
    """Any other type: forwarded verbatim to the other member(s)."""

    type: str
    fields: dict[str, Any]


@attrs.frozen
class Auth:
    """`{"type":"AUTH","token":T}` or `{"type":"AUTH","name":N,"password":P}`."""

    fields: dict[str, Any]


@attrs.frozen
class GetConfig:
    """`{"type":"GETCONFIG"}`: asks for a CONFIG message (ICE servers)."""


@attrs.frozen
class Login:
    """`{"type":"LOGIN","name":N}`: claim a name, to be called by it."""

    name: object


@attrs.frozen
class SessionRequest:
    """`{"type":"SESSION"}`: make this connection's session resumable."""


@attrs.frozen
class Resume:
    """`{"type":"RESUME","session":S,"secret":K,"received":N}`, first message only."""

    session: object
    secret: object
    received: object


# Types only the server sends. A peer could otherwise forge them through the relay (a
# CONFIG naming its own TURN server, a PEERLEFT, an INCOMINGCALL), so they are refused.
SERVER_ONLY_TYPES: Final = frozenset(
    {
        "PEERJOINED",
        "PEERLEFT",
        "ROOM",
        "WRONGROOM",
        "ERROR",
        "CONFIG",
        "USERS",
        "USERJOINED",
        "USERLEFT",
        "PRESENCE",
        "DIRECTORY",
        "RINGING",
        "INCOMINGCALL",
        "CALLACCEPTED",
        "REJECTED",
        "CANCELLED",
        "NOANSWER",
        "BUSY",
        "RESUMED",
        "PEERAWAY",
        "PEERBACK",
        "ADMIN",
    }
)

# Call control, handled by the server for logged-in connections (relayed otherwise).
CALL_CONTROL: Final = frozenset({"CALL", "ACCEPT", "REJECT", "CANCEL", "HANGUP"})


@attrs.frozen
class CallControl:
    type: str
    fields: dict[str, Any]


ClientMessage = (
    GetRoom | EnterRoom | Relay | Auth | GetConfig | Login | CallControl | SessionRequest | Resume
)


@attrs.frozen
class ProtocolError(Exception):
    """A message the server cannot act on; `reply` is the ERROR to answer with."""

    code: ErrorCode
    message: str

    @property
    def reply(self) -> Error:
        return Error(code=self.code, message=self.message)


def room_number(value: object) -> int | None:
    """The room number `value` names, or None. Only true JSON integers in range count:
    not bools, floats, strings, or numbers a browser would round."""
    if type(value) is int and 1 <= value <= MAX_ROOM:
        return value
    return None


def decode(text: str) -> ClientMessage:
    """Classify one text frame from a client. Raises ProtocolError for bad input."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            ErrorCode.NOT_AN_OBJECT, f"a message must be a JSON object, not {_json_kind(obj)}"
        )
    kind = obj.get("type")
    if not isinstance(kind, str):
        what = "missing" if "type" not in obj else f"a {_json_kind(kind)}"
        raise ProtocolError(ErrorCode.BAD_TYPE, f"`type` must be a string; it is {what}")
    if kind == "GETROOM":
        return GetRoom(capacity=obj.get("capacity"), roster=obj.get("roster") is True)
    if kind == "ENTERROOM":
        return EnterRoom(room=room_number(obj.get("value")), roster=obj.get("roster") is True)
    if kind == "AUTH":
        return Auth(fields=obj)
    if kind == "GETCONFIG":
        return GetConfig()
    if kind == "LOGIN":
        return Login(name=obj.get("name"))
    if kind == "SESSION":
        return SessionRequest()
    if kind == "RESUME":
        return Resume(
            session=obj.get("session"), secret=obj.get("secret"), received=obj.get("received")
        )
    if kind in CALL_CONTROL:
        return CallControl(type=kind, fields=obj)
    if kind in SERVER_ONLY_TYPES:
        raise ProtocolError(
            ErrorCode.RESERVED_TYPE, f"{kind!r} is sent by the server only: not relayed"
        )
    return Relay(type=kind, fields=obj)


def room_capacity(value: object, default: int, maximum: int) -> int | None:
    """The capacity a GETROOM asks for: `default` when absent, None when it is not a JSON
    integer in 2..maximum."""
    if value is None:
        return default
    if type(value) is int and 2 <= value <= maximum:
        return value
    return None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
