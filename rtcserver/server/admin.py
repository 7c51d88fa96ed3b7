"""The admin REST API under /api/v1/: what an app reads of the rooms and acts on.

Off unless `--admin-token` is set (then every /api/ path is 404). Every request needs
`Authorization: Bearer <token>`, compared in constant time; a refusal is counted and
logged without the token. What the API reads and acts on is behind `AdminView`, so a
cluster or cross-worker implementation can stand in for this process's `LocalAdmin`.
"""

from __future__ import annotations

import hmac
import logging
from typing import Protocol

import attrs
import orjson

from ..protocol.codes import CloseCode
from ..rooms.peers import Peer
from ..rooms.registry import Registry
from ..wire import logsafe
from ..wire.http import response

log = logging.getLogger("rtcserver.admin")

PREFIX = "/api/v1/"
ROOM_CLOSED_REASON = "The room was closed"
REMOVED_REASON = "Removed from the room"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@attrs.frozen
class MemberInfo:
    id: str
    name: str | None


@attrs.frozen
class RoomInfo:
    number: int
    capacity: int
    members: tuple[MemberInfo, ...]


class AdminView(Protocol):
    """What the API needs of the server: rooms to read, rooms and members to end."""

    def rooms(self) -> list[RoomInfo]: ...
    def room(self, number: int) -> RoomInfo | None: ...
    def close_room(self, number: int) -> bool: ...
    def remove_member(self, number: int, member_id: str) -> bool: ...


class Kickable(Protocol):
    def kick(self, code: CloseCode, reason: str, cause: str = "") -> None: ...


class LocalState(Protocol):
    """The part of `ServerState` that `LocalAdmin` reads."""

    @property
    def registry(self) -> Registry[Peer]: ...


@attrs.frozen
class LocalAdmin:
    """`AdminView` over this process's registry: its members are actors it can kick."""

    state: LocalState

    def rooms(self) -> list[RoomInfo]:
        found = (self.room(number) for number in sorted(self.state.registry.rooms()))
        return [info for info in found if info is not None]

    def room(self, number: int) -> RoomInfo | None:
        registry = self.state.registry
        if number not in registry.rooms():
            return None
        members = tuple(
            MemberInfo(member_id, registry.name_of(peer))
            for member_id, peer in registry.roster(number)
        )
        return RoomInfo(number, registry.capacity_of(number), members)

    def close_room(self, number: int) -> bool:
        members = self.state.registry.rooms().get(number)
        if members is None:
            return False
        for peer in members:
            _kick(peer, CloseCode.ROOM_CLOSED, ROOM_CLOSED_REASON)
        return True

    def remove_member(self, number: int, member_id: str) -> bool:
        registry = self.state.registry
        if number not in registry.rooms():
            return False
        for found_id, peer in registry.roster(number):
            if found_id == member_id:
                _kick(peer, CloseCode.REMOVED, REMOVED_REASON)
                return True
        return False


def _kick(peer: Peer, code: CloseCode, reason: str) -> None:
    # Local members are actors; the actor's finally leaves the room (PEERLEFT) and,
    # as these codes are not parkable, ends its session: RESUME cannot undo it.
    kick = getattr(peer, "kick", None)
    if kick is not None:
        kick(code, reason, cause="admin")


def authorized(token: str, authorization: str | None) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _json(status: int, value: object, tls: bool, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    return response(status, orjson.dumps(value), "application/json", extra=extra, tls=tls)


def _error(status: int, message: str, tls: bool, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    return _json(status, {"error": message}, tls, extra)


def _room_json(info: RoomInfo) -> dict[str, object]:
    return {
        "number": info.number,
        "capacity": info.capacity,
        "members": [{"id": m.id, "name": m.name} for m in info.members],
    }


def _page(
    items: list[RoomInfo], query: dict[str, str], tls: bool
) -> tuple[list[RoomInfo], int | None] | bytes:
    """`limit` and `cursor` (the last room number of the previous page)."""
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
        cursor = int(query["cursor"]) if "cursor" in query else None
    except ValueError:
        return _error(400, "limit and cursor must be integers", tls)
    if not 1 <= limit <= MAX_LIMIT:
        return _error(400, f"limit must be in 1..{MAX_LIMIT}", tls)
    if cursor is not None:
        items = [info for info in items if info.number > cursor]
    page = items[:limit]
    more = len(items) > limit
    return page, (page[-1].number if more and page else None)


def _room_number(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 2**53 else None


def answer(
    view: AdminView,
    token: str,
    counters: dict[str, int],
    method: str,
    target: str,
    authorization: str | None,
    tls: bool = False,
) -> bytes:
    """The whole response to one /api/ request."""
    path, _, query_text = target.partition("?")
    if not token:
        return response(404, b"not found\n", tls=tls)
    if not authorized(token, authorization):
        counters["refused:admin-token"] = counters.get("refused:admin-token", 0) + 1
        log.info("event=refused status=401 path=%s", logsafe.clean(path[:100]))
        return _error(
            401, "the admin API needs its bearer token", tls, (("WWW-Authenticate", "Bearer"),)
        )
    if not path.startswith(PREFIX):
        return _error(404, f"no such endpoint: {path[:100]}", tls)
    query = dict(part.partition("=")[::2] for part in query_text.split("&") if part)
    parts = path[len(PREFIX) :].strip("/").split("/")
    if parts == ["rooms"]:
        if method != "GET":
            return _error(405, "rooms: GET only", tls, (("Allow", "GET"),))
        paged = _page(view.rooms(), query, tls)
        if isinstance(paged, bytes):
            return paged
        page, next_cursor = paged
        return _json(200, {"rooms": [_room_json(r) for r in page], "next_cursor": next_cursor}, tls)
    if len(parts) in (2, 4) and parts[0] == "rooms":
        number = _room_number(parts[1])
        if number is None:
            return _error(400, "a room number is an integer in 1..2^53-1", tls)
        if len(parts) == 2:
            if method == "GET":
                info = view.room(number)
                if info is None:
                    return _error(404, f"no room {number}", tls)
                return _json(200, _room_json(info), tls)
            if method == "DELETE":
                if not view.close_room(number):
                    return _error(404, f"no room {number}", tls)
                return _json(200, {"closed": number}, tls)
            return _error(405, "a room: GET or DELETE", tls, (("Allow", "GET, DELETE"),))
        if parts[2] == "members":
            if method != "DELETE":
                return _error(405, "a member: DELETE only", tls, (("Allow", "DELETE"),))
            if not view.remove_member(number, parts[3]):
                return _error(404, f"no member {parts[3][:40]} in room {number}", tls)
            return _json(200, {"removed": parts[3][:40], "room": number}, tls)
    return _error(404, f"no such endpoint: {path[:100]}", tls)
