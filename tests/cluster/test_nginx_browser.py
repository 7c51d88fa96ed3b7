"""Two headless Chromium pages, through a real nginx round-robining two nodes, land on
different nodes and still see and hear each other."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import conftest as browser_tests
from tests.browser.conftest import LoopbackNamespace, OpenPage
from tests.cluster.conftest import cluster_nodes
from tests.cluster.services import Nginx, RedisServer, running_nginx
from tests.support.process import ServerProcess

pytestmark = pytest.mark.browser

# The browser tests' fixtures: Chromium in a loopback-only namespace, one context per page.
browser_home = browser_tests.browser_home
loopback_namespace = browser_tests.loopback_namespace
browser = browser_tests.browser
open_page = browser_tests.open_page


def _healthz(node: ServerProcess) -> dict[str, object]:
    with urllib.request.urlopen(f"{node.http_url}/healthz", timeout=5) as reply:
        value = json.loads(reply.read())
    assert isinstance(value, dict)
    return value


@pytest.fixture
def two_nodes_behind_nginx(
    redis: RedisServer, tmp_path: Path
) -> Iterator[tuple[list[ServerProcess], Nginx]]:
    with (
        cluster_nodes(redis, 2, "--trust-proxy") as nodes,
        running_nginx(tmp_path / "nginx", [node.port for node in nodes]) as nginx,
    ):
        yield nodes, nginx


@pytest.fixture
def server(two_nodes_behind_nginx: tuple[list[ServerProcess], Nginx]) -> ServerProcess:
    """Overrides the browser tests' single server (open_page prints its output)."""
    return two_nodes_behind_nginx[0][0]


def test_two_pages_on_different_nodes_behind_nginx_connect_with_media(
    two_nodes_behind_nginx: tuple[list[ServerProcess], Nginx],
    loopback_namespace: LoopbackNamespace,
    open_page: OpenPage,
) -> None:
    nodes, nginx = two_nodes_behind_nginx
    bridge = loopback_namespace.bridge
    bridge.target = ("127.0.0.1", nginx.port)
    try:
        site = loopback_namespace.gate_url
        a = open_page(site + "/")
        link = a.share_link()  # A's socket is open and its room made
        b = open_page(link)
        a.wait_connected()
        b.wait_connected()
        # One WebSocket on each node: the call's signaling crossed nodes through Redis.
        connections = [_healthz(node)["connections"] for node in nodes]
        assert connections == [1, 1], connections
        assert len({_healthz(node)["node"] for node in nodes}) == 2
        for page in (a, b):
            page.wait_media_flowing()
        a.send_chat("across the cluster")
        b.wait_chat_from_peer("across the cluster")
    finally:
        bridge.target = None
