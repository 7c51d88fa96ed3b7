"""The admin REST API under /api/v1/: its routes, answers and errors (docs/API.md).

Off unless `--admin-token` is set (then every /api/ path is 404). Every request needs
`Authorization: Bearer <token>`, compared in constant time; a refusal is counted and
logged without the token. What the API reads and acts on is behind `AdminView`
(`adminview.py`), so a cluster or cross-worker implementation can stand in for this
process's `LocalAdmin`. `ROUTES` is the whole surface: the OpenAPI document
(`openapi.json`, served at /api/v1/openapi.json) is checked against it by the tests.
"""

from __future__ import annotations

import hmac
import importlib.resources
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import unquote

import orjson

from ..rooms.owners import Workers
from ..wire import logsafe
from ..wire.body import BodyRefused
from ..wire.http import response
from .adminview import (
    REMOVED_REASON,
    ROOM_CLOSED_REASON,
    SIGNED_OUT_REASON,
    AdminView,
    Listing,
    LocalAdmin,
    LocalState,
    RoomInfo,
    Unavailable,
    UserInfo,
)
from .clusteradmin import ClusterAdmin, ClusterPart
from .siblings import Siblings
from .workeradmin import WorkersAdmin

__all__ = [
    "REMOVED_REASON",
    "ROOM_CLOSED_REASON",
    "SIGNED_OUT_REASON",
    "LocalAdmin",
    "answer",
    "view_for",
]

log = logging.getLogger("rtcserver.admin")

PREFIX: Final = "/api/v1/"
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
# Every path the API answers, with its methods: `{…}` is one path segment.
ROUTES: Final = {
    "/api/v1/rooms": ("GET",),
    "/api/v1/rooms/{number}": ("GET", "DELETE"),
    "/api/v1/rooms/{number}/members/{id}": ("DELETE",),
    "/api/v1/rooms/{number}/messages": ("POST",),
    "/api/v1/users": ("GET",),
    "/api/v1/users/{name}": ("DELETE",),
    "/api/v1/openapi.json": ("GET",),
}

Headers = tuple[tuple[str, str], ...]
Item = TypeVar("Item")


class Body(Protocol):
    """The request's body, read only when a route needs it (`wire.body.BodyReader`)."""

    async def read(self, limit: int) -> bytes: ...


class Served(LocalState, Protocol):
    """What `view_for` needs to know of the server (`ServerState` gives it)."""

    @property
    def workers(self) -> Workers: ...

    @property
    def siblings(self) -> Siblings | None: ...

    @property
    def cluster(self) -> ClusterPart | None: ...


def view_for(state: Served) -> AdminView:
    """The view a request sees: the whole cluster's (any node, any of its workers), or
    the whole server's, whichever worker took it."""
    if state.cluster is not None:
        return ClusterAdmin(state, state.cluster)
    local = LocalAdmin(state)
    if state.siblings is not None:
        return WorkersAdmin(local, state.workers, state.siblings)
    return local


class Answer(Exception):
    """A finished response, raised from deep in a route (a bad parameter, a bad body)."""

    def __init__(self, status: int, message: str, extra: Headers = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def authorized(token: str, authorization: str | None) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def match(path: str) -> tuple[str, list[str]] | None:
    """The route `path` takes and the values of its `{…}` segments, or None."""
    parts = path.rstrip("/").split("/")
    for route in ROUTES:
        pattern = route.split("/")
        if len(pattern) == len(parts) and all(
            p == q or (p.startswith("{") and q) for p, q in zip(pattern, parts, strict=True)
        ):
            return route, [
                unquote(q) for p, q in zip(pattern, parts, strict=True) if p.startswith("{")
            ]
    return None


def openapi_document() -> bytes:
    return (importlib.resources.files(__package__) / "openapi.json").read_bytes()


def _json(status: int, value: object, tls: bool, extra: Headers = ()) -> bytes:
    return response(status, orjson.dumps(value), "application/json", extra=extra, tls=tls)


def _room_json(info: RoomInfo) -> dict[str, object]:
    return {
        "number": info.number,
        "capacity": info.capacity,
        "members": [{"id": m.id, "name": m.name} for m in info.members],
        "created_at": info.created_at,
        "bytes_relayed": info.bytes_relayed,
    }


def _user_json(info: UserInfo) -> dict[str, object]:
    call = info.call
    return {
        "name": info.name,
        "status": info.status,
        "call": None
        if call is None
        else {"id": call.id, "state": call.state, "with": call.peer, "room": call.room},
    }


def _paging(query: dict[str, str], parse_cursor: Callable[[str], Any]) -> tuple[Any, int]:
    """The `cursor` (the previous page's last key, or None) and `limit` of a list request."""
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
        cursor = parse_cursor(query["cursor"]) if "cursor" in query else None
    except ValueError:
        raise Answer(400, "limit must be an integer, and cursor a previous next_cursor") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise Answer(400, f"limit must be in 1..{MAX_LIMIT}")
    return cursor, limit


def _list(
    field: str, listing: Listing[Item], show: Callable[[Item], object], key: Callable[[Item], Any]
) -> dict[str, object]:
    items = listing.items
    shown: dict[str, object] = {
        field: [show(item) for item in items],
        "next_cursor": key(items[-1]) if listing.more and items else None,
    }
    if listing.answered is not None:  # several workers: say who answered
        missing = sorted(set(range(listing.of)) - set(listing.answered))
        shown["workers"] = {
            "count": listing.of,
            "answered": len(listing.answered),
            "missing": missing,
        }
    return shown


def _room_number(text: str) -> int:
    if text.isdigit() and 0 < int(text) < 2**53:
        return int(text)
    raise Answer(400, "a room number is an integer in 1..2^53-1")


async def _message(body: Body | None, limit: int) -> tuple[dict[str, Any], str | None]:
    """POST …/messages: `{"data": {…}, "to": "<member id>"}` (`to` optional)."""
    if body is None:
        raise Answer(400, "this request has no body to read")
    try:
        raw = await body.read(limit)
    except BodyRefused as refused:
        raise Answer(refused.status, refused.message) from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Answer(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise Answer(400, 'the body must be a JSON object: {"data": {...}, "to": optional id}')
    unknown = sorted(set(value) - {"data", "to"})
    if unknown:
        raise Answer(400, f"unknown field {unknown[0][:40]!r}: only data and to")
    data, to = value.get("data"), value.get("to")
    if not isinstance(data, dict):
        raise Answer(400, "data must be a JSON object")
    if to is not None and not isinstance(to, str):
        raise Answer(400, "to must be a member id (a string)")
    return data, to


async def _route(
    view: AdminView, method: str, path: str, query: dict[str, str], body: Body | None, limit: int
) -> tuple[int, object]:
    matched = match(path)
    if matched is None:
        raise Answer(404, f"no such endpoint: {path[:100]}")
    route, values = matched
    allowed = ROUTES[route]
    if method not in allowed:
        methods = ", ".join(allowed)
        raise Answer(405, f"{route}: {methods} only", (("Allow", methods),))
    match route, method, values:
        case "/api/v1/rooms", _, []:
            after, limit = _paging(query, int)
            rooms = await view.rooms(after, limit)
            return 200, _list("rooms", rooms, _room_json, lambda r: r.number)
        case "/api/v1/rooms/{number}", "GET", [number]:
            info = await view.room(_room_number(number))
            if info is None:
                raise Answer(404, f"no room {number}")
            return 200, _room_json(info)
        case "/api/v1/rooms/{number}", "DELETE", [number]:
            if not await view.close_room(_room_number(number)):
                raise Answer(404, f"no room {number}")
            return 200, {"closed": int(number)}
        case "/api/v1/rooms/{number}/members/{id}", _, [number, member]:
            if not await view.remove_member(_room_number(number), member):
                raise Answer(404, f"no member {member[:40]} in room {number}")
            return 200, {"removed": member, "room": int(number)}
        case "/api/v1/rooms/{number}/messages", _, [number]:
            room = _room_number(number)
            data, to = await _message(body, limit)
            told = await view.post(room, data, to)
            if told is None:
                who = f"no member {to[:40]} in room {room}" if to is not None else f"no room {room}"
                raise Answer(404, who)
            return 200, {"room": room, "delivered": told}
        case "/api/v1/users", _, []:
            after, limit = _paging(query, str)
            users = await view.users(after, limit)
            return 200, _list("users", users, _user_json, lambda u: u.name)
        case "/api/v1/users/{name}", _, [name]:
            if not await view.sign_out(name):
                raise Answer(404, f"no user {logsafe.clean(name[:60])} online")
            return 200, {"signed_out": name}
    raise AssertionError(f"route {route} {method} has no handler")


async def answer(
    view: AdminView,
    token: str,
    counters: dict[str, int],
    method: str,
    target: str,
    authorization: str | None,
    tls: bool = False,
    body: Body | None = None,
    body_limit: int = 64 * 1024,
) -> bytes:
    """The whole response to one /api/ request. The body, if any, is read only once the
    token has been checked and the route takes one."""
    path, _, query_text = target.partition("?")
    if not token:
        return response(404, b"not found\n", tls=tls)
    if not authorized(token, authorization):
        counters["refused:admin-token"] = counters.get("refused:admin-token", 0) + 1
        log.info("event=refused status=401 path=%s", logsafe.clean(path[:100]))
        return _json(
            401,
            {"error": "the admin API needs its bearer token"},
            tls,
            (("WWW-Authenticate", "Bearer"),),
        )
    if path == PREFIX + "openapi.json" and method == "GET":
        return response(200, openapi_document(), "application/json", tls=tls)
    query = {
        unquote(k): unquote(v)
        for k, _, v in (part.partition("=") for part in query_text.split("&") if part)
    }
    try:
        status, value = await _route(view, method, path, query, body, body_limit)
    except Answer as refused:
        return _json(refused.status, {"error": refused.message}, tls, refused.extra)
    except Unavailable as unavailable:
        log.warning("event=admin-unavailable %s", unavailable)
        return _json(503, {"error": str(unavailable), "unavailable": unavailable.where}, tls)
    if method != "GET":
        log.info(
            "event=admin method=%s path=%s status=%d", method, logsafe.clean(path[:100]), status
        )
    return _json(status, value, tls)
