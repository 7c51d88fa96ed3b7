"""Which in-process worker owns a room, when the suites run as several workers
(`RTCSERVER_TEST_WORKERS`, tests/conftest.py): a test that looks inside the server
looks inside the room's owner."""

from __future__ import annotations

from rtcserver.app import Server
from rtcserver.rooms.registry import Registry

# The first worker's Server -> every worker's, in index order (filled by conftest).
SIBLINGS: dict[Server, list[Server]] = {}


def workers_of(server: Server) -> list[Server]:
    """Every worker of `server`'s group (`server` alone with one)."""
    return SIBLINGS.get(server, [server])


def owner(server: Server, room: int) -> Server:
    """The worker of `server`'s group that owns `room` (`server` itself with one)."""
    workers = SIBLINGS.get(server, [server])
    return workers[server.state.workers.owner(room)] if len(workers) > 1 else server


def registry(server: Server, room: int) -> Registry:  # type: ignore[type-arg]
    return owner(server, room).state.registry


async def shutdown(server: Server) -> None:
    """Shut the whole server down: every worker of `server`'s group."""
    for worker in SIBLINGS.get(server, [server]):
        await worker.shutdown()
