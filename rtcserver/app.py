"""Settings -> listener -> supervised connections, and a bounded, orderly shutdown.

`serve` is what both `python -m rtcserver` and the in-process tests run. It reports a
`Server` through `task_status`, from which tests read the port and inspect the
registry, and which `shutdown()` drains: stop accepting, close every WebSocket with
1001, wait up to `drain_timeout`, then cut whatever is left.
"""

from __future__ import annotations

import logging

import attrs
import trio

from .config import Settings
from .http import handle_connection
from .protocol import CloseCode
from .state import ServerState
from .supervisor import Supervisor

log = logging.getLogger("rtcserver")


@attrs.define(eq=False)
class Server:
    state: ServerState
    supervisor: Supervisor
    listeners: list[trio.SocketListener]
    nursery: trio.Nursery
    accepting: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    @property
    def port(self) -> int:
        return int(self.listeners[0].socket.getsockname()[1])

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
        for actor in list(state.actors):
            actor.kick(CloseCode.GOING_AWAY, "server shutting down")
        with trio.move_on_after(state.settings.drain_timeout) as drain:
            while state.connections:
                await state.idle.wait()
        if drain.cancelled_caught:
            log.warning("event=drain-timeout connections=%d cut", state.connections)
        self.nursery.cancel_scope.cancel()


async def serve(
    settings: Settings, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the server until `Server.shutdown()` (or a supervisor escalation) ends it."""
    state = ServerState.create(settings)
    supervisor = Supervisor()
    listeners = await trio.open_tcp_listeners(settings.port, host=settings.host or None)
    async with trio.open_nursery() as nursery:
        server = Server(state=state, supervisor=supervisor, listeners=listeners, nursery=nursery)

        async def one_connection(stream: trio.SocketStream) -> None:
            await supervisor.temporary("connection", handle_connection, state, stream)

        async def accept_loop() -> None:
            await trio.serve_listeners(one_connection, listeners, handler_nursery=nursery)

        async def listen() -> None:
            # Cancelling `accepting` (shutdown) stops the listener for good, restarts too.
            with server.accepting:
                await supervisor.permanent("listener", accept_loop)

        nursery.start_soon(listen)
        task_status.started(server)
    for listener in listeners:
        await listener.aclose()


def display_url(server: Server) -> str:
    host = server.settings.host
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}/"


async def main(settings: Settings) -> None:
    """The process: serve, and shut down on SIGINT/SIGTERM."""
    import signal

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            server: Server = await nursery.start(serve, settings)
            print(f"rtcserver listening on {display_url(server)}", flush=True)

            async def on_signal() -> None:
                async for signum in signals:
                    log.info("event=signal signal=%s", signal.Signals(signum).name)
                    await server.shutdown()
                    return

            nursery.start_soon(on_signal)
