"""Shared fixtures: a real server on an ephemeral port, in the test's own Trio loop."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio

from rtcserver.app import Server, serve
from rtcserver.rooms.owners import Workers
from rtcserver.settings import Settings
from tests.support import owners
from tests.support.artifacts import Artifacts, build_and_install

StartServer = Callable[..., Awaitable[Server]]
# The suites also run as several workers (docs/ARCHITECTURE.md, "Workers"): tools/test.sh
# runs the protocol, resume, directory and conference tests again with 2.
TEST_WORKERS = int(os.environ.get("RTCSERVER_TEST_WORKERS", "1"))


def settings_for_tests(**overrides: Any) -> Settings:
    """Settings for tests: loopback, a free port, no public STUN servers."""
    base: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "stun": ()}
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """The wheel and sdist of this tree, the wheel installed in a fresh venv (slow: once)."""
    return build_and_install(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture
async def start_server(nursery: trio.Nursery) -> AsyncIterator[StartServer]:
    """Start servers with setting overrides; each is shut down after the test."""
    started: list[Server] = []

    async def start(**overrides: Any) -> Server:
        settings = settings_for_tests(**overrides)
        count = int(overrides.get("workers", TEST_WORKERS))
        count = 1 if settings.tls else count
        if count == 1:
            server: Server = await nursery.start(serve, settings)
            started.append(server)
            return server
        # Several workers in this process: as many servers on one port, each owning
        # its rooms (rooms/owners.py), handing connections over as worker processes do.
        group = f"test{secrets.token_hex(4)}"
        server = await nursery.start(serve, settings, Workers(index=0, count=count, group=group))
        started.append(server)
        same_port = attrs.evolve(settings, port=server.port)
        workers = [server]
        for index in range(1, count):
            other = Workers(index=index, count=count, group=group)
            workers.append(await nursery.start(serve, same_port, other))
        started.extend(workers[1:])
        owners.SIBLINGS[server] = workers
        return server

    yield start
    for server in started:
        await server.shutdown()


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    return await start_server()


@pytest.fixture
def ws_url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"
