"""Fixtures for the cluster tests: a real redis-server and real `python -m rtcserver`
nodes (subprocesses) pointed at it, all on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.services import RedisServer, running_redis
from tests.support.process import ServerProcess, running_server

# Short leases keep the failure tests fast: a dead node is reaped within ~1.4 s.
LEASE_TTL = 1.0
NODE_ARGS = (
    "--lease-ttl",
    str(LEASE_TTL),
    "--stun",
    "",
    "--rate-limit",
    "0",
    "--log-level",
    "warning",
)


@contextlib.contextmanager
def cluster_nodes(redis: RedisServer, count: int, *extra: str) -> Iterator[list[ServerProcess]]:
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(running_server(*NODE_ARGS, "--redis", redis.url, *extra))
            for _ in range(count)
        ]
        yield nodes


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def three_nodes(shared_redis: RedisServer) -> Iterator[list[ServerProcess]]:
    """Three nodes on one Redis, shared by the tests that leave them healthy."""
    with cluster_nodes(shared_redis, 3) as nodes:
        yield nodes
