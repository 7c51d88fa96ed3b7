"""HTTP/1.1 on the wire: the request head, the responses, and closing without a reset.

h11 reads the request head (the caller holds the deadline: slowloris gets nothing);
`response` builds a complete answer that closes the connection, with the security
headers. Every refusal carries its answer: 400 names the parse error, 426, 431, 505.
Knows nothing of rooms or actors: the routing is `connection/frontdoor.py`'s.
"""

from __future__ import annotations

import http
import ipaddress
import logging
from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qs

import h11
import trio

from . import logsafe

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
    csp: str = CONTENT_SECURITY_POLICY,
) -> bytes:
    """A complete HTTP/1.1 response that closes the connection. Every response carries
    the security headers (HSTS too when served over TLS) and `csp` as its
    Content-Security-Policy: the strict one, unless the caller serves the operator's
    own pages with the operator's policy ("": none)."""
    phrase = http.HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-cache",
        *(f"{k}: {v}" for k, v in SECURITY_HEADERS),
        *([f"Content-Security-Policy: {csp}"] if csp else []),
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
    await _send_and_drain(stream, data, LINGER_TIMEOUT, _CLOSED)


async def send_and_close(stream: trio.abc.Stream, data: bytes) -> None:
    """Send a refusal at once and close after a short drain (`EARLY_LINGER`): long
    enough that a client which already sent its request gets the answer, not a RST;
    short enough that a flood of refused connections holds few descriptors."""
    await _send_and_drain(stream, data, EARLY_LINGER, (*_CLOSED, OSError))


_CLOSED: Final = (trio.BrokenResourceError, trio.ClosedResourceError)


async def _send_and_drain(
    stream: trio.abc.Stream,
    data: bytes,
    timeout: float,
    ignored: tuple[type[BaseException], ...],
) -> None:
    """Send `data`, half-close, and read until the client closes or `timeout` ends."""
    with trio.move_on_after(timeout):
        try:
            await stream.send_all(data)
            if isinstance(stream, trio.SocketStream):
                await stream.send_eof()
            while await stream.receive_some(8192):
                pass
        except ignored:
            pass


def too_many(limit: int, per: str) -> bytes:
    return text_response(
        503, f"too many connections (limit {limit} per {per})", extra=[("Retry-After", "5")]
    )
