"""Access tokens (rtcserver/security/tokens.py): JWT-compatible HS256, and every way to refuse one.

Byte-compatibility with other JWT implementations is shown with the HS256 example of
RFC 7515, Appendix A.1 (key, header with a CR LF inside, and signature, verbatim).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcserver.security.tokens import (
    Claims,
    TokenAlgorithmRejected,
    TokenClaimsInvalid,
    TokenError,
    TokenExpired,
    TokenForged,
    TokenMalformed,
    TokenMissing,
    TokenNotYetValid,
    mint,
    verify,
)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "a test secret that is long enough for HS256"
NOW = 1_700_000_000

RFC7515_KEY = base64.urlsafe_b64decode(
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow=="
)
RFC7515_TOKEN = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
RFC7515_EXP = 1300819380


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: object, payload: object, key: bytes | str = SECRET) -> str:
    """A token signed independently of rtcserver.security.tokens, with any header and payload."""
    key = key.encode() if isinstance(key, str) else key
    head = b64(header if isinstance(header, bytes) else json.dumps(header).encode())
    body = b64(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def parts(token: str) -> list[object]:
    return [json.loads(base64.urlsafe_b64decode(p + "==")) for p in token.split(".")[:2]]


# --- compatibility -----------------------------------------------------------------


def test_rfc7515_a1_example_verifies() -> None:
    claims = verify(RFC7515_KEY, RFC7515_TOKEN, now=RFC7515_EXP - 1)
    assert claims == Claims(exp=RFC7515_EXP)


def test_rfc7515_a1_example_is_forged_under_another_key() -> None:
    other = bytes([RFC7515_KEY[0] ^ 1]) + RFC7515_KEY[1:]
    with pytest.raises(TokenForged):
        verify(other, RFC7515_TOKEN, now=RFC7515_EXP - 1)


def test_rfc7515_a1_example_expires_at_its_exp() -> None:
    with pytest.raises(TokenExpired):
        verify(RFC7515_KEY, RFC7515_TOKEN, now=RFC7515_EXP)


def test_minted_token_is_a_standard_hs256_jwt() -> None:
    token = mint(SECRET, Claims(exp=NOW + 60, iat=NOW, sub="alice", rooms=[12, 34]))
    header, payload = parts(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert payload == {"exp": NOW + 60, "iat": NOW, "sub": "alice", "rooms": [12, 34]}
    assert "=" not in token
    head, body, signature = token.split(".")
    mac = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert signature == b64(mac)


def test_absent_claims_are_left_out_of_the_payload() -> None:
    _, payload = parts(mint(SECRET, Claims(exp=NOW)))
    assert payload == {"exp": NOW}


def test_unknown_claims_are_ignored() -> None:
    token = signed({"alg": "HS256"}, {"exp": NOW + 1, "iss": "web", "aud": ["x"]})
    assert verify(SECRET, token, now=NOW) == Claims(exp=NOW + 1)


# --- round trips ---------------------------------------------------------------------

times = st.integers(min_value=0, max_value=2**40)
claims_strategy = st.builds(
    Claims,
    exp=times,
    iat=st.none() | times,
    nbf=st.none(),
    sub=st.none() | st.text(max_size=80),
    rooms=st.none() | st.lists(st.integers(min_value=-(2**53), max_value=2**53), max_size=20),
)


@given(claims=claims_strategy)
def test_mint_then_verify_gives_the_claims_back(claims: Claims) -> None:
    assert verify(SECRET, mint(SECRET, claims), now=claims.exp - 1) == claims


@given(claims=claims_strategy, data=st.data())
def test_changing_any_one_character_makes_the_token_invalid(
    claims: Claims, data: st.DataObject
) -> None:
    token = mint(SECRET, claims)
    i = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="position")
    alphabet = "ABCXYZabcxyz0189-_.=+/ "
    c = data.draw(st.sampled_from([ch for ch in alphabet if ch != token[i]]), label="char")
    with pytest.raises(TokenError):
        verify(SECRET, token[:i] + c + token[i + 1 :], now=claims.exp - 1)


# --- time ----------------------------------------------------------------------------


def test_valid_until_the_second_before_exp() -> None:
    token = mint(SECRET, Claims(exp=NOW + 60))
    assert verify(SECRET, token, now=NOW + 59.999).exp == NOW + 60
    with pytest.raises(TokenExpired) as info:
        verify(SECRET, token, now=NOW + 60)
    assert info.value.code == "token-expired"


def test_leeway_tolerates_a_slow_clock_on_either_side() -> None:
    token = mint(SECRET, Claims(exp=NOW + 60, nbf=NOW))
    verify(SECRET, token, now=NOW + 64, leeway=5)
    verify(SECRET, token, now=NOW - 5, leeway=5)
    with pytest.raises(TokenExpired):
        verify(SECRET, token, now=NOW + 65, leeway=5)


def test_not_valid_before_nbf() -> None:
    token = mint(SECRET, Claims(exp=NOW + 60, nbf=NOW + 10))
    with pytest.raises(TokenNotYetValid) as info:
        verify(SECRET, token, now=NOW + 9)
    assert info.value.code == "token-not-yet-valid"
    assert verify(SECRET, token, now=NOW + 10).nbf == NOW + 10


# --- forgery -------------------------------------------------------------------------


def test_token_from_another_secret_is_forged() -> None:
    token = mint("another secret, just as long as the first", Claims(exp=NOW + 60))
    with pytest.raises(TokenForged) as info:
        verify(SECRET, token, now=NOW)
    assert info.value.code == "token-forged"


def test_payload_swapped_under_a_valid_signature_is_forged() -> None:
    mine = mint(SECRET, Claims(exp=NOW + 60, sub="mallory", rooms=[1]))
    wanted = mint(SECRET, Claims(exp=NOW + 10**6, sub="mallory"))
    head, _, sig = mine.split(".")
    with pytest.raises(TokenForged):
        verify(SECRET, f"{head}.{wanted.split('.')[1]}.{sig}", now=NOW)


def test_signature_check_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = mint(SECRET, Claims(exp=NOW + 60))
    verify(SECRET, token, now=NOW)
    raw_signature = base64.urlsafe_b64decode(token.split(".")[2] + "=")
    assert seen == [(raw_signature, raw_signature)]


def test_a_second_spelling_of_the_same_signature_is_refused() -> None:
    # The last base64url character of a 32-byte signature carries 2 unused bits.
    token = mint(SECRET, Claims(exp=NOW + 60))
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert base64.urlsafe_b64decode(token.split(".")[2][:-1] + twin + "=") == (
        base64.urlsafe_b64decode(token.split(".")[2] + "=")
    )
    with pytest.raises(TokenMalformed):
        verify(SECRET, token[:-1] + twin, now=NOW)


def test_a_padded_spelling_of_a_valid_token_is_refused() -> None:
    token = mint(SECRET, Claims(exp=NOW + 60))
    with pytest.raises(TokenMalformed):
        verify(SECRET, token + "=", now=NOW)


# --- algorithms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none", "typ": "JWT"},
        {"alg": "None"},
        {"alg": "hs256"},
        {"alg": "HS512"},
        {"alg": "RS256"},
        {"typ": "JWT"},
        {"alg": ["HS256"]},
    ],
)
def test_only_hs256_is_accepted(header: dict[str, object]) -> None:
    token = signed(header, {"exp": NOW + 60})
    with pytest.raises(TokenAlgorithmRejected) as info:
        verify(SECRET, token, now=NOW)
    assert info.value.code == "token-bad-alg"


def test_unsigned_alg_none_token_is_refused() -> None:
    header, payload = b64(b'{"alg":"none"}'), b64(json.dumps({"exp": NOW + 60}).encode())
    unsigned = f"{header}.{payload}."
    with pytest.raises(TokenAlgorithmRejected):
        verify(SECRET, unsigned, now=NOW)


@pytest.mark.parametrize(
    "header", [{"alg": "HS256", "typ": "JWE"}, {"alg": "HS256", "crit": ["exp"]}]
)
def test_headers_asking_for_more_than_we_understand_are_refused(header: dict[str, object]) -> None:
    with pytest.raises(TokenMalformed):
        verify(SECRET, signed(header, {"exp": NOW + 60}), now=NOW)


# --- malformed input -------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_missing(token: str | None) -> None:
    with pytest.raises(TokenMissing) as info:
        verify(SECRET, token, now=NOW)
    assert info.value.code == "token-missing"


VALID = signed({"alg": "HS256"}, {"exp": NOW + 60})


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b",
        VALID + ".x",
        VALID.replace(".", "..", 1),
        "eyJhbGciOiJIUzI1NiJ9=.e30.x",  # padding
        "eyJhbGciOiJIUzI1NiJ9!." + VALID.split(".", 1)[1],  # outside the alphabet
        "eyJhbGciOiJIUzI1N.e30.x",  # impossible length
        b64(b"not json") + ".e30.x",
        b64(b"[1, 2]") + ".e30.x",
        b64(b"\xff\xfe") + ".e30.x",
        "x" * 5000,
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenMalformed) as info:
        verify(SECRET, token, now=NOW)
    assert info.value.code == "token-malformed"


def test_a_payload_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(TokenMalformed):
        verify(SECRET, signed({"alg": "HS256"}, b"[]"), now=NOW)


def test_of_duplicate_members_the_last_counts() -> None:
    # RFC 7515 §5.2 allows refusing them or taking the lexically last; PyJWT takes the last.
    with pytest.raises(TokenAlgorithmRejected):
        verify(SECRET, signed(b'{"alg":"HS256","alg":"none"}', {"exp": NOW + 60}), now=NOW)
    with pytest.raises(TokenExpired):
        verify(SECRET, signed({"alg": "HS256"}, b'{"exp": 1700000060, "exp": 1}'), now=NOW)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"sub": "alice"},
        {"exp": "1700000060"},
        {"exp": 1700000060.5},
        {"exp": True},
        {"exp": -1},
        b'{"exp": NaN}',
        {"exp": NOW + 60, "nbf": "soon"},
        {"exp": NOW + 60, "sub": 7},
        {"exp": NOW + 60, "rooms": 12},
        {"exp": NOW + 60, "rooms": "12"},
        {"exp": NOW + 60, "rooms": ["12"]},
        {"exp": NOW + 60, "rooms": [True]},
    ],
)
def test_signed_claims_of_the_wrong_shape_are_refused(payload: dict[str, object] | bytes) -> None:
    with pytest.raises(TokenClaimsInvalid) as info:
        verify(SECRET, signed({"alg": "HS256"}, payload), now=NOW)
    assert info.value.code == "token-claims-invalid"


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"exp": NOW + 60, "sub": 123}, "sub must be a string"),
        ({"exp": "tomorrow"}, "exp must be a non-negative integer"),
        ({"exp": NOW + 60, "nbf": [1]}, "nbf must be a non-negative integer"),
        ({"exp": NOW + 60, "rooms": {"a": 1}}, "rooms must be a list of room numbers"),
        ({"exp": NOW + 60, "rooms": ["<script>"]}, "rooms must be a list of room numbers"),
        ({"sub": "alice"}, "exp is required"),
    ],
)
def test_refusals_have_short_fixed_texts(payload: dict[str, object], text: str) -> None:
    with pytest.raises(TokenClaimsInvalid) as info:
        verify(SECRET, signed({"alg": "HS256"}, payload), now=NOW)
    assert str(info.value) == text


def test_every_refusal_has_its_own_code() -> None:
    kinds = [
        TokenMissing,
        TokenMalformed,
        TokenAlgorithmRejected,
        TokenForged,
        TokenClaimsInvalid,
        TokenExpired,
        TokenNotYetValid,
    ]
    codes = [kind.code for kind in kinds]
    assert len(set(codes)) == len(codes)
    assert all(code.startswith("token-") for code in codes)
    assert all(issubclass(kind, TokenError) for kind in kinds)


# --- secrets and rooms -----------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, b"x" * 31])
def test_a_secret_shorter_than_256_bits_is_refused(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        mint(secret, Claims(exp=NOW))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        verify(secret, VALID, now=NOW)


def test_no_rooms_claim_allows_every_room() -> None:
    assert Claims(exp=NOW).allows_room(1234)


def test_rooms_claim_allows_only_those_rooms() -> None:
    claims = verify(SECRET, mint(SECRET, Claims(exp=NOW + 60, rooms=[12, 34])), now=NOW)
    assert claims.allows_room(12)
    assert claims.allows_room(34)
    assert not claims.allows_room(56)


def test_empty_rooms_claim_allows_no_room() -> None:
    assert not Claims(exp=NOW, rooms=[]).allows_room(12)


# --- tools/mint_token.py ---------------------------------------------------------------


def run_mint_token(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "RTCSERVER_AUTH_SECRET"}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mint_token.py"), *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_mint_token_tool_output_verifies() -> None:
    before = int(time.time())
    result = run_mint_token(
        "--secret", SECRET, "--name", "alice", "--rooms", "12,34", "--ttl", "3600"
    )
    assert result.returncode == 0, result.stderr
    claims = verify(SECRET, result.stdout.strip(), now=time.time())
    assert claims.sub == "alice"
    assert claims.rooms == (12, 34)
    assert before + 3600 <= claims.exp <= int(time.time()) + 3600


def test_mint_token_tool_reads_the_secret_from_the_environment() -> None:
    result = run_mint_token("--ttl", "60", env={"RTCSERVER_AUTH_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    claims = verify(SECRET, result.stdout.strip(), now=time.time())
    assert (claims.sub, claims.rooms) == (None, None)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--secret", "short"],
        ["--secret", SECRET, "--rooms", "12,lobby"],
        ["--secret", SECRET, "--ttl", "0"],
    ],
)
def test_mint_token_tool_refuses_bad_arguments(args: list[str]) -> None:
    result = run_mint_token(*args)
    assert result.returncode == 2
    assert result.stdout == ""
