"""End to end: the room page on a server in token mode (`--auth-secret`).

Each person opens the page with their own `?token=`; the page puts it on the
WebSocket URL, and the share link does not carry it. With authentication on,
/config.json carries no TURN credentials, so the page must ask for its ICE
servers over the socket (GETCONFIG). The server is also `--relay-only` through a
private coturn: the call can only connect with the credentials that came in
CONFIG, made for the authenticated user.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rtcserver.security.tokens import Claims, mint
from tests.browser.conftest import LoopbackNamespace, OpenPage
from tests.browser.turnpage import RECORD_CANDIDATES, assert_relayed_only
from tests.support.coturn import Coturn, running_coturn
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser

AUTH_SECRET = "browser-token-secret-0123456789abcdef"  # at least 32 bytes
TURN_SECRET = "browser-token-turn-secret-5e7d"


def token(name: str, ttl: int = 600) -> str:
    now = int(time.time())
    return mint(AUTH_SECRET, Claims(exp=now + ttl, iat=now - 5, sub=name))


@pytest.fixture(scope="module")
def coturn(
    tmp_path_factory: pytest.TempPathFactory, loopback_namespace: LoopbackNamespace
) -> Iterator[Coturn]:
    with running_coturn(
        tmp_path_factory.mktemp("coturn"), TURN_SECRET, enter=loopback_namespace.enter
    ) as server:
        yield server


@pytest.fixture(scope="module")
def server(coturn: Coturn) -> Iterator[ServerProcess]:
    # Overrides conftest's `server` for this module (site_url and open_page use it).
    env = {"RTCSERVER_AUTH_SECRET": AUTH_SECRET, "RTCSERVER_TURN_SECRET": TURN_SECRET}
    args = ["--stun", "", "--turn", coturn.turn_url, "--relay-only"]
    with running_server(*args, env=env) as srv:
        yield srv


def test_token_call_gets_turn_credentials_over_the_socket(
    open_page: OpenPage, site_url: str, server: ServerProcess, coturn: Coturn
) -> None:
    a = open_page(f"{site_url}/?token={token('alice')}", RECORD_CANDIDATES)
    config = a.evaluate("fetch('/config.json').then((r) => r.json())")
    assert config["auth"] == "token"
    assert not any("turn:" in str(entry) for entry in config["iceServers"]), config

    link = a.share_link()
    assert "token" not in link  # a token is personal: the link is for anyone
    b = open_page(f"{link}&token={token('bob')}", RECORD_CANDIDATES)
    a.wait_connected()
    b.wait_connected()
    for page, name in ((a, "alice"), (b, "bob")):
        # The TURN credentials came in CONFIG, minted for this authenticated user.
        servers = page.evaluate("window.rtc.pc.getConfiguration().iceServers")
        turn = [s for s in servers if any(u.startswith("turn:") for u in s["urls"])]
        assert len(turn) == 1 and f":{name}-" in turn[0]["username"], servers
        page.wait_media_flowing()
        assert_relayed_only(page, coturn.relay_ports)
    # The token went on the WebSocket URL: the server knew who opened each socket.
    out = server.read_output().decode(errors="replace")
    assert "event=open user=alice" in out and "event=open user=bob" in out


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "sign-in token"),  # no token at all: the page says what is needed
        (f"?token={token('carol', ttl=-60)}", "refused"),  # expired: HTTP 401 at the upgrade
    ],
)
def test_missing_or_refused_token_is_explained(
    query: str, expected: str, open_page: OpenPage, site_url: str
) -> None:
    page = open_page(f"{site_url}/{query}")
    page.page.wait_for_selector("#ended", state="visible")
    assert expected in page.page.inner_text("#ended-message")
    assert page.status() == "Not signed in"
    assert page.page.is_hidden("#rejoin")
    assert page.evaluate("window.rtc.finished") is True
