"""Credentials from rtcserver/security/turn.py against a real coturn (`use-auth-secret`).

A private coturn runs on 127.0.0.1 for this module (tests/support/coturn.py). Each test
makes a real TURN Allocate with the long-term credential mechanism
(tests/support/stun.py): fresh credentials get a relay, while expired or forged ones
get 401 even though they were presented correctly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcserver.security.turn import ice_servers, turn_credential, turn_password
from tests.support.coturn import Coturn, running_coturn
from tests.support.stun import Allocated, Refused, StunClient

SECRET = "coturn-test-secret-3f9a"
LIFETIME = 600


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    with running_coturn(tmp_path_factory.mktemp("coturn"), secret=SECRET) as server:
        yield server


def allocate(coturn: Coturn, username: str, password: str) -> Allocated | Refused:
    with StunClient(coturn.address) as client:
        return client.allocate(username, password)


def assert_allocated(result: Allocated | Refused, coturn: Coturn) -> None:
    assert isinstance(result, Allocated), f"{result}\n{coturn.log()}"
    host, port = result.relayed
    assert host == "127.0.0.1"
    assert port in coturn.relay_ports
    assert 0 < result.lifetime <= LIFETIME


def assert_unauthorized(result: Allocated | Refused, coturn: Coturn) -> None:
    assert result == Refused(401, "Unauthorized"), coturn.log()


def test_ice_servers_credentials_get_a_relay(coturn: Coturn) -> None:
    stun_url = f"stun:{coturn.host}:{coturn.port}"
    _, turn_entry = ice_servers(
        [stun_url], [coturn.turn_url], SECRET, LIFETIME, "alice", now=time.time()
    )
    assert turn_entry["urls"] == [coturn.turn_url]
    result = allocate(coturn, turn_entry["username"], turn_entry["credential"])
    assert_allocated(result, coturn)


def test_credentials_near_the_end_of_their_life_still_work(coturn: Coturn) -> None:
    cred = turn_credential(SECRET, "bob", 30, now=time.time())
    assert_allocated(allocate(coturn, cred.username, cred.password), coturn)


def test_expired_credentials_are_refused(coturn: Coturn) -> None:
    cred = turn_credential(SECRET, "alice", LIFETIME, now=time.time() - LIFETIME - 60)
    assert cred.expires_at < time.time()
    assert_unauthorized(allocate(coturn, cred.username, cred.password), coturn)


def test_credentials_from_another_secret_are_refused(coturn: Coturn) -> None:
    cred = turn_credential("not-the-coturn-secret", "mallory", LIFETIME, now=time.time())
    assert_unauthorized(allocate(coturn, cred.username, cred.password), coturn)


def test_username_with_a_pushed_back_expiry_is_refused(coturn: Coturn) -> None:
    expired = turn_credential(SECRET, "alice", LIFETIME, now=time.time() - LIFETIME - 60)
    extended = f"{expired.expires_at + 86_400}:alice"
    assert_unauthorized(allocate(coturn, extended, expired.password), coturn)


def test_username_with_another_user_id_is_refused(coturn: Coturn) -> None:
    cred = turn_credential(SECRET, "alice", LIFETIME, now=time.time())
    stolen = cred.username.replace(":alice", ":mallory")
    assert_unauthorized(allocate(coturn, stolen, cred.password), coturn)


def test_a_password_computed_for_the_username_is_all_coturn_needs(coturn: Coturn) -> None:
    # The server and coturn share nothing but the secret: no user list, no database rows.
    username = f"{int(time.time()) + LIFETIME}:anyone-at-all"
    assert_allocated(allocate(coturn, username, turn_password(SECRET, username)), coturn)


def test_harness_stops_its_coturn_and_leaves_the_port_silent(tmp_path: Path) -> None:
    with running_coturn(tmp_path, secret=SECRET) as server, StunClient(server.address) as client:
        assert client.binding(timeout=5) is not None
    assert server.proc.returncode is not None
    with StunClient(server.address) as client:
        assert client.binding(timeout=0.5) is None
