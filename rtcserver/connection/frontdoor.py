"""The front door: one port for the page, the health check and the signaling socket.

Every accepted TCP connection comes here. The request head is read with a deadline
(`wire.http`: slowloris gets nothing); refusals that need the server's state (capacity,
per-address limits, Host, Origin, token) are decided here and answered with their
status; a WebSocket upgrade goes to the engine and then to the connection's actor
(`lifecycle.run_actor`); anything else is a small HTTP/1.1 exchange, answered and
closed: /healthz, /metrics, /config.json and the static pages.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import secrets
import time

import attrs
import h11
import orjson
import trio

from ..actors.actor import Actor
from ..security.auth import ANONYMOUS, AuthFailed, Identity, address_host, origin_allowed
from ..security.turn import ice_config
from ..server import admin, metrics
from ..server.state import ServerState
from ..wire import engine, logsafe, static
from ..wire.body import BodyReader
from ..wire.http import (
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
                reader = BodyReader(stream, raw, settings.handshake_timeout)
                await send_and_linger(stream, await plain_http(state, request, reader))
    finally:
        state.connection_closed()
        await trio.aclose_forcefully(stream)


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
            admin.LocalAdmin(state),
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
