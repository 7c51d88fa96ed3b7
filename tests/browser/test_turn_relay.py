"""End to end through a real coturn: two room pages whose media may only be relayed.

The server hands out TURN REST credentials for a private coturn (`use-auth-secret`)
and tells the pages `iceTransportPolicy: "relay"` (`--relay-only`); there is no
STUN. coturn runs inside the browsers' loopback-only network namespace (it must be
reachable at 127.0.0.1 from Chromium; the server only signs its credentials), so
the relayed media stays on that namespace's loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.conftest import LoopbackNamespace, OpenPage
from tests.browser.turnpage import RECORD_CANDIDATES, assert_relayed_only
from tests.support.coturn import Coturn, running_coturn
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser

TURN_SECRET = "browser-turn-secret-81c2"


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
    args = ["--stun", "", "--turn", coturn.turn_url, "--turn-secret", TURN_SECRET]
    with running_server(*args, "--relay-only") as srv:
        yield srv


def test_relay_only_call_goes_through_coturn(
    open_page: OpenPage, site_url: str, coturn: Coturn
) -> None:
    a = open_page(site_url + "/", RECORD_CANDIDATES)
    config = a.evaluate("fetch('/config.json').then((r) => r.json())")
    assert config["iceTransportPolicy"] == "relay"
    assert config["auth"] is None
    b = open_page(a.share_link(), RECORD_CANDIDATES)
    a.wait_connected()
    b.wait_connected()
    for page in (a, b):
        assert page.evaluate("window.rtc.pc.getConfiguration().iceTransportPolicy") == "relay"
        page.wait_media_flowing()
    for page in (a, b):
        assert_relayed_only(page, coturn.relay_ports)
    # coturn itself saw the pages' allocations, under the server's ephemeral usernames.
    assert ":web-" in coturn.log(), coturn.log()[-3000:]
