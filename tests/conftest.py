"""Shared fixtures: a real server on an ephemeral port, in the test's own Trio loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio

from rtcserver.app import Server, serve
from rtcserver.settings import Settings
from tests.support.artifacts import Artifacts, build_and_install

StartServer = Callable[..., Awaitable[Server]]


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
        server: Server = await nursery.start(serve, settings_for_tests(**overrides))
        started.append(server)
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
