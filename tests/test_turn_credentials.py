"""TURN REST API credentials (rtcserver/security/turn.py), checked without a TURN server.

The known answers were computed once, independently of this code, with
`printf '%s' USERNAME | openssl dgst -sha1 -hmac SECRET -binary | base64`.
tests/test_coturn_credentials.py checks the same credentials against a real coturn.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rtcserver.security.turn import ice_servers, turn_credential, turn_password

STUN = ["stun:stun.example.org:3478"]
TURN = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]


@pytest.mark.parametrize(
    ("secret", "username", "password"),
    [
        ("north-wind-secret", "1700000000:alice", "r/l6ttQtMIfbS2lfULS0mDRRNUg="),
        ("correct horse battery staple", "1700003600:bob", "/lwTU2KJWjMUOAqTk/lS+rW9xDc="),
    ],
)
def test_password_matches_openssl_hmac_sha1(secret: str, username: str, password: str) -> None:
    assert turn_password(secret, username) == password


def test_username_is_expiry_colon_user_id() -> None:
    cred = turn_credential("north-wind-secret", "alice", lifetime=600, now=1_699_999_400)
    assert cred.username == "1700000000:alice"
    assert cred.password == "r/l6ttQtMIfbS2lfULS0mDRRNUg="
    assert cred.expires_at == 1_700_000_000


def test_expiry_rounds_up_so_a_credential_never_lives_shorter_than_asked() -> None:
    cred = turn_credential("s", "alice", lifetime=600, now=1_699_999_399.2)
    assert cred.expires_at == 1_700_000_000


def test_password_is_not_in_the_repr() -> None:
    cred = turn_credential("s", "alice", lifetime=600, now=0)
    assert cred.password not in repr(cred)


def test_ice_servers_gives_stun_as_is_and_turn_with_credentials() -> None:
    servers = ice_servers(STUN, TURN, "north-wind-secret", 600, "alice", now=1_699_999_400)
    assert servers == [
        {"urls": STUN},
        {
            "urls": TURN,
            "username": "1700000000:alice",
            "credential": "r/l6ttQtMIfbS2lfULS0mDRRNUg=",
        },
    ]


def test_ice_servers_copies_the_url_lists() -> None:
    stun = list(STUN)
    servers = ice_servers(stun, [], "", 600, "alice", now=0)
    servers[0]["urls"].append("stun:evil.example")
    assert stun == STUN


@pytest.mark.parametrize(
    ("stun", "turn", "kinds"),
    [
        ([], [], []),
        (STUN, [], ["stun"]),
        ([], TURN, ["turn"]),
    ],
)
def test_empty_url_lists_contribute_nothing(
    stun: list[str], turn: list[str], kinds: list[str]
) -> None:
    servers = ice_servers(stun, turn, "secret", 600, "alice", now=0)
    assert ["turn" if "credential" in s else "stun" for s in servers] == kinds


def test_stun_servers_get_no_credentials() -> None:
    (server,) = ice_servers(STUN, [], "secret", 600, "alice", now=0)
    assert set(server) == {"urls"}


@given(
    secret=st.text(min_size=16),
    user_id=st.text(st.characters(min_codepoint=0x20, exclude_characters="\x7f"), max_size=64),
    now=st.integers(min_value=0, max_value=2**33),
    lifetime=st.integers(min_value=1, max_value=10**7),
)
def test_secret_never_appears_in_the_ice_servers(
    secret: str, user_id: str, now: int, lifetime: int
) -> None:
    assume(secret not in user_id)  # only the caller could put it there
    servers = ice_servers(STUN, TURN, secret, lifetime, user_id, now)
    text = json.dumps(servers, ensure_ascii=False)
    assert secret not in text
    assert servers[1]["username"] == f"{now + lifetime}:{user_id}"
    assert servers[1]["credential"] == turn_password(secret, servers[1]["username"])


@given(
    user_id=st.text(
        st.characters(min_codepoint=0x20, exclude_characters="\x7f", exclude_categories=["Cs"]),
        max_size=64,
    ),  # no lone surrogates: no JSON text or name can hold one
    later=st.integers(min_value=1, max_value=10**6),
)
def test_any_change_to_the_username_changes_the_password(user_id: str, later: int) -> None:
    cred = turn_credential("north-wind-secret", user_id, 600, now=1_699_999_400)
    extended = cred.username.replace(str(cred.expires_at), str(cred.expires_at + later), 1)
    assert turn_password("north-wind-secret", extended) != cred.password


def test_another_secret_gives_another_password() -> None:
    a = turn_credential("north-wind-secret", "alice", 600, now=1_699_999_400)
    b = turn_credential("north-wind-secreT", "alice", 600, now=1_699_999_400)
    assert a.username == b.username
    assert a.password != b.password


@pytest.mark.parametrize("lifetime", [0, -1])
def test_lifetime_must_be_positive(lifetime: int) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        turn_credential("secret", "alice", lifetime, now=0)


def test_turn_urls_without_a_secret_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        ice_servers([], TURN, "", 600, "alice", now=0)


@pytest.mark.parametrize(
    ("stun", "turn"),
    [
        (["turn:example.org"], []),
        (["http://example.org"], []),
        ([], ["stun:example.org"]),
        ([], ["example.org:3478"]),
    ],
)
def test_urls_with_the_wrong_scheme_are_refused(stun: list[str], turn: list[str]) -> None:
    with pytest.raises(ValueError, match="should start with"):
        ice_servers(stun, turn, "secret", 600, "alice", now=0)


def test_a_single_string_is_not_taken_for_a_list_of_urls() -> None:
    with pytest.raises(TypeError):
        ice_servers("stun:example.org", [], "secret", 600, "alice", now=0)


@pytest.mark.parametrize("user_id", ["alice\n", "a\x00b", "\x7f"])
def test_user_id_with_control_characters_is_refused(user_id: str) -> None:
    with pytest.raises(ValueError, match="control"):
        turn_credential("secret", user_id, 600, now=0)


def test_username_must_fit_in_a_stun_attribute() -> None:
    turn_credential("secret", "a" * 500, 600, now=1_700_000_000)
    with pytest.raises(ValueError, match="512 bytes"):
        turn_credential("secret", "a" * 502, 600, now=1_700_000_000)
