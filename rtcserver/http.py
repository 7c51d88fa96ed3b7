"""The front door: one port for the page, the health check and the signaling socket.

h11 reads the request head (with a deadline: slowloris gets nothing). A WebSocket
upgrade goes to the engine (engine.py), which hands the bytes already read to
websockets' protocol; anything else is a small HTTP/1.1 exchange, answered and closed. Every
refusal carries its answer: 400 names the parse error, 404, 405, 408, 503.
"""

from __future__ import annotations

import http
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qs

import attrs
import h11
import orjson
import trio

from . import engine, metrics, static
from .actor import Actor, next_actor_id
from .auth import ANONYMOUS, AuthFailed, Identity, origin_allowed
from .config import ice_config
from .handler import run_actor
from .state import ServerState

log = logging.getLogger("rtcserver.http")

MAX_HEAD_SIZE: Final = 16 * 1024
LINGER_TIMEOUT: Final = 1.0

SECURITY_HEADERS: Final = [
    ("X-Content-Type-Options", "nosniff"),
    # The room number in the URL is the key to the room: never leak it in a Referer.
    ("Referrer-Policy", "no-referrer"),
]


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_head(stream: trio.abc.Stream) -> tuple[h11.Request, bytes] | None:
    """Read one request head. None if the client closed first; BadRequest if garbage."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_SIZE)
    raw = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise BadRequest(exc.error_status_hint, f"malformed HTTP request: {exc}") from None
        if event is h11.NEED_DATA:
            data = bytes(await stream.receive_some(8192))
            raw += data
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            if event.http_version not in (b"1.0", b"1.1"):
                version = event.http_version.decode("latin-1")
                raise BadRequest(505, f"malformed HTTP request: unsupported HTTP/{version}")
            return event, bytes(raw)
        return None  # ConnectionClosed before a whole head arrived


def header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def query_parameter(target: bytes, name: str) -> str | None:
    query = target.decode("latin-1").partition("?")[2]
    values = parse_qs(query, keep_blank_values=True).get(name)
    return values[-1] if values else None


def is_websocket_upgrade(request: h11.Request) -> bool:
    upgrade = (header(request, b"upgrade") or "").lower()
    connection = (header(request, b"connection") or "").lower()
    return (
        request.method == b"GET"
        and "websocket" in upgrade
        and "upgrade" in [token.strip() for token in connection.split(",")]
    )


def websocket_refusal(request: h11.Request) -> bytes | None:
    """The answer to an upgrade request the protocol would refuse, or None if it is
    fine: checked before the engine so the answer names the problem (426 with the
    version the server speaks, 400 with the missing header)."""
    version = header(request, b"sec-websocket-version")
    if version != "13":
        status = 426 if version else 400
        return text_response(
            status, "Sec-WebSocket-Version: 13 is required", extra=[("Sec-WebSocket-Version", "13")]
        )
    if header(request, b"sec-websocket-key") is None:
        return text_response(400, "Sec-WebSocket-Key is required")
    if (header(request, b"upgrade") or "").strip().lower() != "websocket":
        return text_response(400, "Upgrade: websocket is required")
    return None


def client_address(stream: trio.abc.Stream, request: h11.Request | None, trust_proxy: bool) -> str:
    if trust_proxy and request is not None:
        forwarded = header(request, b"x-forwarded-for")
        if forwarded:
            # Our own proxy appends the address it saw; earlier entries are the client's say.
            return forwarded.split(",")[-1].strip()
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    socket = getattr(stream, "socket", None)
    if socket is None:
        return "?"
    try:
        peer = socket.getpeername()
    except OSError:
        return "?"
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def response(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    extra: Iterable[tuple[str, str]] = (),
    head_only: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    phrase = http.HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-cache",
        *(f"{k}: {v}" for k, v in SECURITY_HEADERS),
        *(f"{k}: {v}" for k, v in extra),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def text_response(
    status: int,
    message: str,
    extra: Iterable[tuple[str, str]] = (),
    head_only: bool = False,
) -> bytes:
    body = (message + "\n").encode()
    return response(status, body, extra=extra, head_only=head_only)


async def send_and_linger(stream: trio.abc.Stream, data: bytes) -> None:
    """Send a response, then drain what the client still sends so close() is no RST."""
    with trio.move_on_after(LINGER_TIMEOUT):
        try:
            await stream.send_all(data)
            if isinstance(stream, trio.SocketStream):
                await stream.send_eof()
            while await stream.receive_some(8192):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def handle_connection(state: ServerState, stream: trio.abc.Stream) -> None:
    """Everything that happens on one accepted TCP connection."""
    settings = state.settings
    state.connection_opened()
    # One deadline for the head and the upgrade together; shutdown cancels it too.
    deadline = trio.current_time() + settings.handshake_timeout
    try:
        with state.handshaking(deadline) as head_deadline:
            try:
                head = await read_head(stream)
            except BadRequest as bad:
                await send_and_linger(stream, text_response(bad.status, bad.reason))
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
        if head_deadline.cancelled_caught:
            if state.shutting_down:
                await send_and_linger(stream, text_response(503, "server is shutting down"))
            else:
                await send_and_linger(
                    stream,
                    text_response(
                        408, f"request head not received within {settings.handshake_timeout:g}s"
                    ),
                )
            return
        if head is None:
            return
        request, raw = head
        if state.shutting_down:
            await send_and_linger(stream, text_response(503, "server is shutting down"))
            return
        if state.connections > settings.max_connections:
            state.counters["refused:max-connections"] += 1
            await send_and_linger(
                stream,
                text_response(
                    503,
                    f"too many connections (limit {settings.max_connections})",
                    extra=[("Retry-After", "5")],
                ),
            )
            return
        if is_websocket_upgrade(request):
            opened = await open_websocket(state, stream, request, raw, deadline)
            # Nothing of the handshake (the head, h11's request) outlives it: idle
            # connections are most connections, and their memory is the cost.
            del head, request, raw
            if opened is not None:
                await run_actor(state, *opened)
        else:
            await send_and_linger(stream, await plain_http(state, request))
    finally:
        state.connection_closed()
        await trio.aclose_forcefully(stream)


async def open_websocket(
    state: ServerState,
    stream: trio.abc.Stream,
    request: h11.Request,
    raw: bytes,
    deadline: float,
) -> tuple[engine.WebSocket, Actor, Identity | None] | None:
    """Check an upgrade request (origin, token, headers) and complete the handshake.
    Returns what the actor needs, or None once the refusal has been sent."""
    settings = state.settings
    address = client_address(stream, request, settings.trust_proxy)
    origin = header(request, b"origin")
    if not origin_allowed(
        origin, header(request, b"host"), settings.allowed_origins, settings.require_origin
    ):
        state.counters["refused:origin"] += 1
        log.info("addr=%s event=refused status=403 origin=%r", address, origin)
        await send_and_linger(stream, text_response(403, f"origin not allowed: {origin}"))
        return None
    identity: Identity | None = ANONYMOUS
    if state.gatekeeper.mode is not None:
        identity = None  # until a token in the URL or a first AUTH message says who
        token = query_parameter(request.target, "token")
        if token is not None:
            try:
                identity = state.gatekeeper.check_token(token)
            except AuthFailed as failure:
                state.counters[f"refused:{failure.code}"] += 1
                log.info("addr=%s event=refused status=401 code=%s", address, failure.code)
                await send_and_linger(
                    stream, text_response(401, f"{failure.code}: {failure.message}")
                )
                return None
    refusal = websocket_refusal(request)
    if refusal is not None:
        state.counters["refused:bad-upgrade"] += 1
        await send_and_linger(stream, refusal)
        return None
    ws: engine.WebSocket | None = None
    with state.handshaking(deadline):
        try:
            ws = await engine.accept(stream, raw, settings.max_message_size)
        except engine.UnreadableUpgrade as unreadable:
            state.counters["refused:bad-upgrade"] += 1
            await send_and_linger(
                stream, text_response(400, f"malformed WebSocket upgrade: {unreadable}")
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    if ws is None:
        return None
    actor = Actor(id=next_actor_id(), address=address, mailbox_size=settings.mailbox_size)
    return ws, actor, identity


async def plain_http(state: ServerState, request: h11.Request) -> bytes:
    method = request.method
    target = request.target.decode("latin-1")
    path = target.split("?", 1)[0]
    head_only = method == b"HEAD"
    if method not in (b"GET", b"HEAD"):
        return text_response(
            405, "only GET and HEAD are served here", extra=[("Allow", "GET, HEAD")]
        )
    if path == "/healthz":
        stats = state.registry.statistics()
        health: dict[str, object] = {
            "status": "ok",
            "connections": len(state.actors),
            "rooms": stats.rooms,
        }
        if state.cluster is not None:
            health["node"] = state.cluster.node
            health["cluster"] = "up" if state.cluster.available else "down"
        body = orjson.dumps(health)
        return response(200, body, "application/json", head_only=head_only)
    if path == "/metrics":
        return response(200, state.metrics.render(), metrics.CONTENT_TYPE, head_only=head_only)
    if path == "/config.json":
        return response(
            200, orjson.dumps(client_config(state)), "application/json", head_only=head_only
        )
    file = static.resolve(state.settings.www, target)
    if file is None:
        return text_response(404, "not found", head_only=head_only)
    body = await trio.Path(file).read_bytes()
    return response(200, body, static.content_type(file), head_only=head_only)


def client_config(state: ServerState) -> dict[str, object]:
    """/config.json: the page's ICE servers and whether it must authenticate. With
    authentication on, TURN credentials go only to authenticated sockets (GETCONFIG)."""
    settings = state.settings
    if settings.auth_mode is None:
        config = ice_config(settings, f"web-{secrets.token_hex(4)}", time.time())
    else:
        config = ice_config(attrs.evolve(settings, turn=()), "-", time.time())
    config["auth"] = settings.auth_mode
    return config
