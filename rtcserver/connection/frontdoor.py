"""The front door: one port for the page, the health check and the signaling socket.

Every accepted TCP connection comes here. The request head is read with a deadline
(`wire.http`: slowloris gets nothing), and a head still pending after a short grace
counts against its address (`limits.SlowHeads`, promoted by `slow_head_sweeper`);
refusals that need the server's state (capacity, per-address limits, Host, Origin,
token) are decided here, answered with their status, and counted and logged
(`state.refusals`); a WebSocket upgrade goes to the engine and then to the connection's actor
(`lifecycle.run_actor`); anything else is a small HTTP/1.1 exchange, answered and
closed: /healthz, /metrics, /config.json and the static pages.
"""

from __future__ import annotations

import array
import errno
import fcntl
import hmac
import logging
import secrets
import socket
import termios
import time

import attrs
import cattrs
import h11
import orjson
import trio

from ..actors.actor import Actor
from ..security.auth import ANONYMOUS, AuthFailed, Identity, address_host, origin_allowed
from ..security.limits import Progress
from ..security.turn import ice_config
from ..server import admin, metrics, siblings
from ..server.state import ServerState
from ..wire import engine, logsafe, static
from ..wire.body import BodyReader
from ..wire.http import (
    CONTENT_SECURITY_POLICY,
    BadRequest,
    client_address,
    header,
    is_websocket_upgrade,
    peer_address,
    query_parameter,
    read_head,
    response,
    send_and_close,
    send_and_linger,
    text_response,
    too_many,
    websocket_refusal,
)
from . import handover
from .lifecycle import run_actor

log = logging.getLogger("rtcserver.http")


async def handle_connection(state: ServerState, stream: trio.abc.Stream) -> None:
    """Everything that happens on one accepted TCP connection."""
    settings = state.settings
    state.connection_opened()
    # One deadline for the head and the upgrade together; shutdown cancels it too.
    deadline = trio.current_time() + settings.handshake_timeout
    try:
        peer_host = address_host(peer_address(stream))
        # Answered at once, before the head is read: waiting for it is what a flood wants.
        refusal = capacity_refusal(state, peer_host)
        if refusal is not None:
            await send_and_close(stream, refusal)
            return
        heard = HeardStream(stream)
        with (
            state.handshaking(deadline) as head_deadline,
            state.pending_head(peer_host, head_deadline, heard.progress) as pending,
        ):
            try:
                head = await read_head(heard)
            except BadRequest as bad:
                refuse(state, peer_host, bad.status, "bad-request")
                await send_and_linger(stream, text_response(bad.status, bad.reason))
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
        timed_out, slow = head_deadline.cancelled_caught, pending is not None and pending.refused
        del head_deadline, pending, heard  # held for the connection's life otherwise
        if timed_out:
            await send_and_linger(stream, unfinished_head_refusal(state, peer_host, slow))
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
            limit = settings.max_connections_per_address
            refuse(state, address, 503, "max-connections-per-address", f"limit={limit}")
            await send_and_linger(stream, too_many(limit, "address"))
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
                reader = BodyReader(stream, raw, settings.handshake_timeout)
                await send_and_linger(stream, await plain_http(state, request, reader))
    finally:
        state.connection_closed()
        await trio.aclose_forcefully(stream)


async def adopt_connection(state: ServerState, header: bytes, fd: int) -> None:
    """Serve a connection another worker handed over (handover.py), as if it had been
    accepted here: a temporary child of the supervisor, counted as any other."""
    sock = socket.socket(fileno=fd)  # ours now: the family and type come from the fd
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    state.connection_opened()
    try:
        try:
            handed = handover.decode(header)
        except (cattrs.BaseValidationError, orjson.JSONDecodeError, ValueError):
            log.exception("event=bad-handover")
            return
        with state.per_address.hold(state.per_address.open, handed.address):
            ws = engine.adopt(stream, state.settings.max_message_size)
            await run_actor(state, ws, state.new_actor(handed.address), handed.identity, handed)
    finally:
        state.connection_closed()
        await trio.aclose_forcefully(stream)


def refuse(state: ServerState, address: str, status: int, cause: str, detail: str = "") -> None:
    """Count and (at most once a second per address) log a refusal: `refusals.py`."""
    state.refusals.refuse(trio.current_time(), address, status, cause, detail)


def capacity_refusal(state: ServerState, address: str) -> bytes | None:
    """503 while shutting down or over max_connections, else None."""
    settings = state.settings
    if state.shutting_down:
        refuse(state, address, 503, "shutting-down")
        return text_response(503, "server is shutting down")
    if state.connections > settings.max_connections:
        refuse(state, address, 503, "max-connections", f"limit={settings.max_connections}")
        return text_response(
            503,
            f"too many connections (limit {settings.max_connections})",
            extra=[("Retry-After", "5")],
        )
    return None


class HeardStream(trio.abc.Stream):
    """The client's stream while its head is read, noting whether a byte came: how a
    head stands when its grace ends (`limits.Progress`) is the slow-head rule's input."""

    __slots__ = ("heard", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.heard = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.stream.receive_some(max_bytes)
        self.heard = self.heard or bool(data)
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()

    def progress(self) -> Progress:
        if has_unread(self.stream):
            return Progress.UNREAD
        return Progress.STALLED if self.heard else Progress.SILENT


def has_unread(stream: trio.abc.Stream) -> bool:
    """Whether the kernel holds bytes from the client that the server has not read yet
    (FIONREAD on the TCP socket, under TLS too). False when it cannot tell."""
    while not isinstance(stream, trio.SocketStream):
        inner = getattr(stream, "transport_stream", None)
        if not isinstance(inner, trio.abc.Stream):
            return False
        stream = inner
    count = array.array("i", [0])
    try:
        fcntl.ioctl(stream.socket.fileno(), termios.FIONREAD, count, True)
    except OSError:
        return False
    return count[0] > 0


def status_of(answer: bytes) -> int:
    """The status code of an HTTP response (`HTTP/1.1 426 ...`)."""
    return int(answer.split(b" ", 2)[1])


def unfinished_head_refusal(state: ServerState, address: str, slow: bool) -> bytes:
    """The answer to a head cut short: its address had no place for another slow head
    (503), shutdown began (503), or the handshake timeout ended (408)."""
    settings = state.settings
    if slow:
        limit = settings.max_handshakes_per_address
        grace = f"grace={settings.slow_head_grace:g}s"
        refuse(state, address, 503, "max-handshakes-per-address", f"limit={limit} {grace}")
        return too_many(limit, "address still sending its request")
    if state.shutting_down:
        refuse(state, address, 503, "shutting-down")
        return text_response(503, "server is shutting down")
    timeout = settings.handshake_timeout
    refuse(state, address, 408, "handshake-timeout", f"timeout={timeout:g}s")
    return text_response(408, f"request head not received within {timeout:g}s")


def head_refusal(state: ServerState, stream: trio.abc.Stream, request: h11.Request) -> bytes | None:
    """The answer to a request refused on its head alone (shutdown, the connection
    limit, an unknown Host), or None."""
    settings = state.settings
    address = address_host(client_address(stream, request, settings.trust_proxy))
    refusal = capacity_refusal(state, address)
    if refusal is not None:
        return refusal
    host = header(request, b"host")
    if not state.hosts.allows(host):
        refuse(state, address, 421, "host", f"host={logsafe.clean(host)}")
        return text_response(421, "unknown host: see --allowed-hosts")
    return None


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
    host = address_host(address)
    origin = header(request, b"origin")
    if not origin_allowed(
        origin, header(request, b"host"), settings.allowed_origins, settings.require_origin
    ):
        refuse(state, host, 403, "origin", f"origin={logsafe.clean(origin)}")
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
                refuse(state, host, 401, failure.code)
                await send_and_linger(
                    stream, text_response(401, f"{failure.code}: {failure.message}")
                )
                return None
    refusal = websocket_refusal(request)
    if refusal is not None:
        refuse(state, host, status_of(refusal), "bad-upgrade")
        await send_and_linger(stream, refusal)
        return None
    ws: engine.WebSocket | None = None
    with state.handshaking(deadline):
        try:
            ws = await engine.accept(stream, raw, settings.max_message_size)
        except engine.UnreadableUpgrade as unreadable:
            refuse(state, host, 400, "bad-upgrade")
            await send_and_linger(
                stream, text_response(400, f"malformed WebSocket upgrade: {unreadable}")
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    if ws is None:
        return None
    return ws, state.new_actor(address), identity


async def plain_http(
    state: ServerState, request: h11.Request, reader: BodyReader | None = None
) -> bytes:
    method = request.method
    target = request.target.decode("latin-1")
    path = target.split("?", 1)[0]
    head_only = method == b"HEAD"
    tls = state.settings.tls
    if path.startswith("/api/"):  # the admin REST API (server/admin.py) answers it all
        return await admin.answer(
            admin.view_for(state),
            state.settings.admin_token,
            state.counters,
            method.decode("latin-1"),
            target,
            header(request, b"authorization"),
            tls,
            reader,
            state.settings.max_message_size,  # what it posts must fit a message
        )
    if method not in (b"GET", b"HEAD"):
        return text_response(
            405, "only GET and HEAD are served here", extra=[("Allow", "GET, HEAD")]
        )
    if path == "/healthz":
        health = state.health_figures()
        if state.siblings is not None:  # several workers: for the whole server
            others = await state.siblings.ask()
            health = siblings.merged_health(health, state.workers.index, others)
        body = orjson.dumps(health)
        return response(200, body, "application/json", head_only=head_only, tls=tls)
    if path == "/metrics":
        if not metrics_allowed(state.settings.metrics_token, header(request, b"authorization")):
            state.counters["refused:metrics-token"] += 1
            return text_response(
                401, "/metrics needs its bearer token", extra=[("WWW-Authenticate", "Bearer")]
            )
        body = state.metrics_text()
        if state.siblings is not None:  # several workers: every worker's, labelled
            texts = {i: a["metrics"] for i, a in (await state.siblings.ask()).items()}
            body = siblings.merged_metrics({state.workers.index: body.decode(), **texts})
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
    settings = state.settings
    # rtcserver's own pages run under the strict policy; pages of the operator's own
    # --www DIR (the book's, the tutorials', with inline scripts) under --csp (none).
    csp = CONTENT_SECURITY_POLICY if settings.own_pages else settings.csp
    return response(200, body, static.content_type(file), head_only=head_only, tls=tls, csp=csp)


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
    # What a GETROOM without `capacity` gets: above two, the main page hands a new
    # room's creator to the group page, which shows everyone.
    config["roomCapacity"] = settings.room_capacity
    return config


async def slow_head_sweeper(state: ServerState) -> None:
    """One task for all pending heads: when a head's grace ends, it becomes slow, and
    if its address has no place left it is refused (its wait for the head is cancelled;
    `unfinished_head_refusal` answers it). Sleeps while no head is pending."""
    heads = state.slow_heads
    while True:
        await state.wait_for_head()
        due = heads.next_due()
        if due is not None:
            await trio.sleep_until(due)
        for head in heads.promote(trio.current_time()):
            head.refuse()
