"""The "WebRTC tutorial" signaling dialect (login/offer/answer/candidate/leave). Pure.

Those tutorials' clients speak lower-case JSON types to a Node `ws` server and call
each other by user name. This module owns only the dialect's rules: which first
message opens it, and what each message turns into. It returns decisions (`Reply`
to the sender, `Relay` to a named peer, `Login`/`Leave` for the name registry) and
never touches a socket, so the connection shell stays thin and this is tested alone.
Names are checked by the caller's registry (one namespace with LOGIN names).
"""

from __future__ import annotations

from typing import Any, Final

import attrs

# The relayed payload field of each relayed type.
_PAYLOAD: Final = {"offer": "offer", "answer": "answer", "candidate": "candidate"}
MAX_NAME_LENGTH: Final = 64


def opens_dialect(message: object) -> bool:
    """Whether a connection's first message is the dialect's: `login` in lower case.

    The book protocol's types are upper case, and a lower-case `login` outside a room
    is an error there today, so claiming it breaks no book client.
    """
    return isinstance(message, dict) and message.get("type") == "login"


@attrs.frozen
class Reply:
    """A message to the sender itself."""

    message: dict[str, Any]


@attrs.frozen
class Relay:
    """A message to the peer logged in under `name` (an unknown name gets an error)."""

    name: str
    message: dict[str, Any]


@attrs.frozen
class Login:
    """Ask the registry for `name`; the caller answers `login` with success or not."""

    name: str


Decision = Reply | Relay | Login


def error(message: str) -> Reply:
    """The dialect's own error shape, naming the problem."""
    return Reply({"type": "error", "message": message})


def _name(message: dict[str, Any]) -> str | Reply:
    name = message.get("name")
    if not isinstance(name, str) or not name:
        return error(f"{message.get('type')}: 'name' must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        return error(f"{message.get('type')}: 'name' is longer than {MAX_NAME_LENGTH}")
    return name


@attrs.define
class Session:
    """One dialect connection: its login name and its current partner."""

    name: str | None = None
    partner: str | None = None

    def handle(self, message: object) -> list[Decision]:
        """Decide what one decoded message becomes."""
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return [error("messages must be JSON objects with a string 'type'")]
        kind: str = message["type"]
        if (kind in _PAYLOAD or kind == "leave") and self.name is None:
            return [error(f"{kind}: log in first")]
        if kind == "login":
            name = _name(message)
            if isinstance(name, Reply):
                return [Reply({"type": "login", "success": False}), name]
            if self.name is not None:
                return [error("login: already logged in as another name")]
            return [Login(name)]
        if kind in _PAYLOAD:
            peer = _name(message)
            if isinstance(peer, Reply):
                return [peer]
            payload = _PAYLOAD[kind]
            if payload not in message:
                return [error(f"{kind}: '{payload}' is missing")]
            out: dict[str, Any] = {"type": kind, payload: message[payload]}
            if kind == "offer":
                # The callee learns who calls; the sender becomes the callee's partner.
                out["name"] = self.name
                self.partner = peer
            elif kind == "answer":
                self.partner = peer
            return [Relay(peer, out)]
        if kind == "leave":
            peer = _name(message)
            if isinstance(peer, Reply):
                return [peer]
            self.partner = None
            return [Relay(peer, {"type": "leave"})]
        return [error(f"Command not found: {kind}")]

    def logged_in(self, name: str) -> None:
        """The registry granted `name`."""
        self.name = name

    def offered_by(self, caller: str) -> None:
        """A relayed offer arrived: the caller is now this session's partner."""
        self.partner = caller

    def undelivered(self, peer: str) -> None:
        """A relay to `peer` found nobody to take it: no call with them began."""
        if self.partner == peer:
            self.partner = None

    def left_by(self, peer: str) -> None:
        """`peer` sent `leave` or closed its socket: the call with them is over."""
        if self.partner == peer:
            self.partner = None

    @property
    def in_call(self) -> bool:
        return self.name is not None and self.partner is not None

    def closed(self) -> list[Relay]:
        """The socket closed: the partner, if any, hears `leave`."""
        if self.name is None or self.partner is None:
            return []
        return [Relay(self.partner, {"type": "leave"})]
