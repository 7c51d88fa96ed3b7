"""Fixtures for the fault tests: an in-process server with short timers, and the
fault injector wrapped around it (installed before the server starts)."""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator

import pytest
import trio

from rtcserver.app import Server, serve

from .harness import FAULT_SETTINGS
from .inject import FaultInjector


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards `wanted` (up to the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@pytest.fixture
def injector(monkeypatch: pytest.MonkeyPatch) -> FaultInjector:
    return FaultInjector().install(monkeypatch)


@pytest.fixture
async def server(injector: FaultInjector) -> AsyncIterator[Server]:
    async with trio.open_nursery() as nursery:
        srv: Server = await nursery.start(serve, FAULT_SETTINGS)
        yield srv
        await srv.shutdown()
