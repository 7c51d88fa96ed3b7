"""Settings -> listener -> supervised connections, and a bounded, orderly shutdown.

`serve` is what both `python -m rtcserver` and the in-process tests run. It reports a
`Server` through `task_status`, from which tests read the port and inspect the
registry, and which `shutdown()` drains: stop accepting, close every WebSocket with
1001, wait up to `drain_timeout`, then cut whatever is left.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl

import attrs
import trio

from .actors.keepalive import keepalive
from .actors.supervisor import Supervisor
from .connection.frontdoor import adopt_connection, handle_connection, slow_head_sweeper
from .connection.guests import serve_links
from .connection.resume import session_sweeper
from .directory.phone import presence_publisher, ring_timer
from .processes import WorkerPlace, supervisor_gone, tell_ready
from .protocol import CloseCode
from .rooms.owners import Workers
from .security import limits
from .security.expiry import expiry_timer
from .server import collector
from .server.state import ServerState
from .settings import Settings
from .wire import fdpass

log = logging.getLogger("rtcserver")


@attrs.define(eq=False)
class Server:
    state: ServerState
    supervisor: Supervisor
    listeners: list[trio.abc.Listener[trio.abc.Stream]]
    nursery: trio.Nursery
    accepting: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    # Several workers: the inbox for connections others hand over (cancelled as above).
    taking: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    @property
    def port(self) -> int:
        listener = self.listeners[0]
        if isinstance(listener, trio.SSLListener):
            listener = listener.transport_listener
        assert isinstance(listener, trio.SocketListener)
        return int(listener.socket.getsockname()[1])

    @property
    def settings(self) -> Settings:
        return self.state.settings

    async def shutdown(self) -> None:
        """Stop accepting, say goodbye (1001) to every client, exit in bounded time."""
        state = self.state
        if state.shutting_down:
            return
        state.shutting_down = True
        log.info("event=shutdown connections=%d", state.connections)
        self.accepting.cancel()
        self.taking.cancel()
        state.stop_handshakes()
        for actor in list(state.actors):
            actor.kick(CloseCode.GOING_AWAY, "server shutting down")
        with trio.move_on_after(state.settings.drain_timeout) as drain:
            while state.connections:
                await state.idle.wait()
        if drain.cancelled_caught:
            log.warning("event=drain-timeout connections=%d cut", state.connections)
        if state.cluster is not None:  # hand the lease back: peers elsewhere hear PEERLEFT now
            await state.cluster.leave(state.settings.drain_timeout)
        self.nursery.cancel_scope.cancel()


async def serve(
    settings: Settings,
    workers: Workers | None = None,
    *,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the server until `Server.shutdown()` (or a supervisor escalation) ends it.
    `workers`: this process is one of several that share the port (processes.py)."""
    limits.quiet_accept_errors()
    settings = limits.fit_file_limit(settings)
    if workers is not None:
        settings = workers.share(settings)  # N workers hold what one process would
    state = ServerState.create(settings, workers)
    supervisor = Supervisor()
    if state.workers.several:
        listeners = await open_shared_listeners(settings)
        state.inbox = await fdpass.open_inbox(state.workers.inbox(state.workers.index))
    else:
        listeners = await open_listeners(settings)
    try:
        async with trio.open_nursery() as nursery:
            server = Server(
                state=state, supervisor=supervisor, listeners=listeners, nursery=nursery
            )

            async def one_connection(stream: trio.abc.Stream) -> None:
                await supervisor.temporary("connection", handle_connection, state, stream)

            async def accept_loop() -> None:
                # serve_listeners closes what it serves when it stops; a restart after a
                # crash needs the sockets open, so it gets views that do not close them.
                kept = [_KeptOpen(listener) for listener in listeners]
                await trio.serve_listeners(one_connection, kept, handler_nursery=nursery)

            async def listen() -> None:
                # Cancelling `accepting` (shutdown) stops the listener for good, restarts too.
                with server.accepting:
                    await supervisor.permanent("listener", accept_loop)

            if state.cluster is not None:
                # Its services are permanent children; waits (boundedly) for the lease.
                wait = min(5.0, 2 * settings.lease_ttl + settings.redis_timeout)
                await nursery.start(state.cluster.run, supervisor, wait)
            nursery.start_soon(listen)
            nursery.start_soon(supervisor.permanent, "ring-timer", ring_timer, state)
            nursery.start_soon(
                supervisor.permanent, "presence-publisher", presence_publisher, state
            )
            nursery.start_soon(
                supervisor.permanent,
                "keepalive",
                keepalive,
                state,
                settings.keepalive_interval,
                settings.keepalive_timeout,
                settings.mailbox_soft_seconds,
            )
            nursery.start_soon(supervisor.permanent, "token-expiry", expiry_timer, state)
            nursery.start_soon(supervisor.permanent, "sessions", session_sweeper, state)
            nursery.start_soon(supervisor.permanent, "slow-heads", slow_head_sweeper, state)
            if state.inbox is not None:

                async def take_handovers() -> None:
                    with server.taking:  # a shutdown takes no more, as it accepts none
                        await supervisor.permanent(
                            "handovers", receive_handovers, state, supervisor, nursery
                        )

                nursery.start_soon(take_handovers)
                nursery.start_soon(supervisor.permanent, "links", serve_links, state)
            if state.webhooks is not None:
                nursery.start_soon(supervisor.permanent, "webhooks", state.webhooks.deliver)
            task_status.started(server)
    finally:
        # Also after an escalation: the port must not stay bound to a dead server.
        for listener in listeners:
            await trio.aclose_forcefully(listener)
        if state.inbox is not None:
            state.inbox.close()


async def receive_handovers(
    state: ServerState, supervisor: Supervisor, nursery: trio.Nursery
) -> None:
    """Take the connections other workers hand over: each one is served here as if
    accepted here (a temporary child, like an accepted connection)."""
    assert state.inbox is not None
    while True:
        header, fds = await fdpass.receive(state.inbox)
        if not fds:  # a question or an answer between workers (server/siblings.py)
            if state.siblings is not None:
                nursery.start_soon(state.siblings.take, header, state)
            continue
        for extra in fds[1:]:
            os.close(extra)
        nursery.start_soon(
            supervisor.temporary, "connection", adopt_connection, state, header, fds[0]
        )


async def open_shared_listeners(settings: Settings) -> list[trio.abc.Listener[trio.abc.Stream]]:
    """TCP listeners on a port that the other workers listen on too (SO_REUSEPORT:
    the kernel spreads new connections over them)."""
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = []
    for family, kind, proto, _, address in await trio.socket.getaddrinfo(
        settings.host or None, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        sock = trio.socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            await sock.bind(address)
            sock.listen(socket.SOMAXCONN)
        except OSError:
            sock.close()
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            raise
        listeners.append(trio.SocketListener(sock))
    return listeners


class _KeptOpen(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose `aclose` leaves the real one open (`serve` closes that)."""

    def __init__(self, inner: trio.abc.Listener[trio.abc.Stream]) -> None:
        self.inner = inner

    async def accept(self) -> trio.abc.Stream:
        return await self.inner.accept()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def open_listeners(settings: Settings) -> list[trio.abc.Listener[trio.abc.Stream]]:
    """TCP listeners, wrapped in TLS when a certificate is configured (HTTPS and WSS
    then share the port, as HTTP and WS do without it)."""
    host = settings.host or None
    if not settings.tls:
        return list(await trio.open_tcp_listeners(settings.port, host=host))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    context.set_alpn_protocols(["http/1.1"])
    return list(
        await trio.open_ssl_over_tcp_listeners(
            settings.port, context, host=host, https_compatible=True
        )
    )


def display_url(settings: Settings, port: int | str) -> str:
    host = settings.host
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls else "http"
    return f"{scheme}://{host}:{port}/"


async def main(settings: Settings, place: WorkerPlace | None = None) -> None:
    """The process: serve, and shut down on SIGINT/SIGTERM. `place`: this process is
    one of several workers (processes.py), whose supervisor says "listening"."""
    import signal

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            workers = None if place is None else place.workers

            async def serve_then_stop(task_status: trio.TaskStatus[Server]) -> None:
                await serve(settings, workers, task_status=task_status)
                nursery.cancel_scope.cancel()  # the signal and supervisor watchers too

            server: Server = await nursery.start(serve_then_stop)
            collector.tune(settings, server.state.metrics)  # after start-up: what lives
            if place is None:
                print(f"rtcserver listening on {display_url(settings, server.port)}", flush=True)
            else:
                tell_ready(place)

                async def orphaned() -> None:
                    await supervisor_gone(place)
                    log.warning("event=supervisor-gone: this worker stops")
                    await server.shutdown()

                nursery.start_soon(orphaned)

            async def on_signal() -> None:
                async for signum in signals:
                    log.info("event=signal signal=%s", signal.Signals(signum).name)
                    await server.shutdown()
                    return

            nursery.start_soon(on_signal)
