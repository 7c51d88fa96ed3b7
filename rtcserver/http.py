"""The front door: one port for the page, the health check and the signaling socket.

h11 reads the request head (with a deadline: slowloris gets nothing). A WebSocket
upgrade goes to the engine (engine.py), which hands the bytes already read to
websockets' protocol; anything else is a small HTTP/1.1 exchange, answered and closed. Every
refusal carries its answer: 400 names the parse error, 404, 405, 408, 503.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import http
import ipaddress
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

from . import engine, logsafe, metrics, static
from .actor import Actor
from .auth import ANONYMOUS, AuthFailed, Identity, address_host, origin_allowed
from .config import ice_config
from .handler import run_actor
from .state import ServerState

log = logging.getLogger("rtcserver.http")

MAX_HEAD_SIZE: Final = 16 * 1024
LINGER_TIMEOUT: Final = 1.0
EARLY_LINGER: Final = 0.2

# The pages load only their own scripts and styles (no inline script anywhere), talk
# only to this server, and may not be framed: an injected script or a clickjacking
# frame has nothing to work with.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: Final = [
    ("X-Content-Type-Options", "nosniff"),
    # The room number in the URL is the key to the room: never leak it in a Referer.
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(self), microphone=(self), geolocation=(), payment=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
# Sent over TLS only (a browser ignores it over plain HTTP): one year, this host only.
HSTS_HEADER: Final = ("Strict-Transport-Security", "max-age=31536000")

# Short, fixed answers for a request we cannot parse: the request itself is never
# echoed back (it may hold anything), and h11's wording is an internal detail.
BAD_REQUEST_TEXTS: Final = {
    400: "malformed HTTP request",
    431: "malformed HTTP request: the request head is too large",
    505: "malformed HTTP request: only HTTP/1.0 and HTTP/1.1 are served",
}


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
            status = exc.error_status_hint if exc.error_status_hint in BAD_REQUEST_TEXTS else 400
            raise BadRequest(status, BAD_REQUEST_TEXTS[status]) from None
        if event is h11.NEED_DATA:
            data = bytes(await stream.receive_some(8192))
            raw += data
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            if event.http_version not in (b"1.0", b"1.1"):
                raise BadRequest(505, BAD_REQUEST_TEXTS[505])
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
    """The client's address for logs and per-address limits: `host:port` of the peer
    (`[v6]:port`), or with `trust_proxy` the last X-Forwarded-For entry (what our own
    proxy appended) when it is an IP address. Anything else there is the client's own
    say, so it is ignored: it never reaches a log line or a limit's key."""
    if trust_proxy and request is not None:
        forwarded = header(request, b"x-forwarded-for")
        if forwarded:
            last = forwarded.split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                log.warning("event=bad-x-forwarded-for value=%s", logsafe.clean(last))
    return peer_address(stream)


def peer_address(stream: trio.abc.Stream) -> str:
    """`host:port` (`[v6]:port`) of the TCP peer, or `?`."""
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
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return logsafe.clean(peer)


def response(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    extra: Iterable[tuple[str, str]] = (),
    head_only: bool = False,
    tls: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response that closes the connection. Every response carries
    the security headers (HSTS too when served over TLS)."""
    phrase = http.HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-cache",
        *(f"{k}: {v}" for k, v in SECURITY_HEADERS),
        *([f"{HSTS_HEADER[0]}: {HSTS_HEADER[1]}"] if tls else []),
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
        peer_host = address_host(peer_address(stream))
        refusal = early_refusal(state, peer_host)
        if refusal is not None:
            await send_and_close(stream, refusal)
            return
        with contextlib.ExitStack() as holding:
            if not settings.trust_proxy:  # behind a proxy, every client has its address
                holding.enter_context(
                    state.per_address.hold(state.per_address.handshaking, peer_host)
                )
            with state.handshaking(deadline) as head_deadline:
                try:
                    head = await read_head(stream)
                except BadRequest as bad:
                    await send_and_linger(stream, text_response(bad.status, bad.reason))
                    return
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
        del holding  # held for the connection's life otherwise (a deque: most of a KB)
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
        refusal = head_refusal(state, stream, request)
        if refusal is not None:
            await send_and_linger(stream, refusal)
            return
        address = address_host(client_address(stream, request, settings.trust_proxy))
        if state.per_address.open[address] >= settings.max_connections_per_address:
            state.counters["refused:max-connections-per-address"] += 1
            await send_and_linger(stream, too_many(settings.max_connections_per_address, "address"))
            return
        with state.per_address.hold(state.per_address.open, address):
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


def too_many(limit: int, per: str) -> bytes:
    return text_response(
        503, f"too many connections (limit {limit} per {per})", extra=[("Retry-After", "5")]
    )


def capacity_refusal(state: ServerState) -> bytes | None:
    """503 while shutting down or over max_connections, else None."""
    settings = state.settings
    if state.shutting_down:
        return text_response(503, "server is shutting down")
    if state.connections > settings.max_connections:
        state.counters["refused:max-connections"] += 1
        return text_response(
            503,
            f"too many connections (limit {settings.max_connections})",
            extra=[("Retry-After", "5")],
        )
    return None


def early_refusal(state: ServerState, peer_host: str) -> bytes | None:
    """The answer to a connection refused before its head is read, or None. Such a
    connection is answered at once: waiting for its head is what a flood wants."""
    settings = state.settings
    refusal = capacity_refusal(state)
    if refusal is not None:
        return refusal
    if (
        not settings.trust_proxy
        and state.per_address.handshaking[peer_host] >= settings.max_handshakes_per_address
    ):
        state.counters["refused:max-handshakes-per-address"] += 1
        return too_many(settings.max_handshakes_per_address, "address still sending its request")
    return None


def head_refusal(state: ServerState, stream: trio.abc.Stream, request: h11.Request) -> bytes | None:
    """The answer to a request refused on its head alone (shutdown, the connection
    limit, an unknown Host), or None."""
    settings = state.settings
    refusal = capacity_refusal(state)
    if refusal is not None:
        return refusal
    host = header(request, b"host")
    if not state.hosts.allows(host):
        state.counters["refused:host"] += 1
        log.info(
            "addr=%s event=refused status=421 host=%s",
            client_address(stream, request, settings.trust_proxy),
            logsafe.clean(host),
        )
        return text_response(421, "unknown host: see --allowed-hosts")
    return None


async def send_and_close(stream: trio.abc.Stream, data: bytes) -> None:
    """Send a refusal at once and close after a short drain (`EARLY_LINGER`): long
    enough that a client which already sent its request gets the answer, not a RST;
    short enough that a flood of refused connections holds few descriptors."""
    with trio.move_on_after(EARLY_LINGER):
        try:
            await stream.send_all(data)
            if isinstance(stream, trio.SocketStream):
                await stream.send_eof()
            while await stream.receive_some(8192):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


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
        log.info("addr=%s event=refused status=403 origin=%s", address, logsafe.clean(origin))
        await send_and_linger(stream, text_response(403, "origin not allowed"))
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
    return ws, state.new_actor(address), identity


async def plain_http(state: ServerState, request: h11.Request) -> bytes:
    method = request.method
    target = request.target.decode("latin-1")
    path = target.split("?", 1)[0]
    head_only = method == b"HEAD"
    tls = state.settings.tls
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
        return response(200, body, "application/json", head_only=head_only, tls=tls)
    if path == "/metrics":
        if not metrics_allowed(state.settings.metrics_token, header(request, b"authorization")):
            state.counters["refused:metrics-token"] += 1
            return text_response(
                401, "/metrics needs its bearer token", extra=[("WWW-Authenticate", "Bearer")]
            )
        body = state.metrics.render()
        return response(200, body, metrics.CONTENT_TYPE, head_only=head_only, tls=tls)
    if path == "/config.json":
        body = orjson.dumps(client_config(state))
        return response(200, body, "application/json", head_only=head_only, tls=tls)
    file = static.resolve(state.settings.www, target)
    if file is None:
        return text_response(404, "not found", head_only=head_only)
    try:
        body = await trio.Path(file).read_bytes()
    except OSError as error:
        if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            state.counters["refused:out-of-files"] += 1
            return text_response(503, "server busy", extra=[("Retry-After", "5")])
        return text_response(404, "not found", head_only=head_only)
    return response(200, body, static.content_type(file), head_only=head_only, tls=tls)


def metrics_allowed(token: str, authorization: str | None) -> bool:
    """Whether a /metrics request may read: always without `--metrics-token`, else only
    with `Authorization: Bearer <token>` (compared in constant time)."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


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
