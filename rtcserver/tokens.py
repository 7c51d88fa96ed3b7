"""Signed, expiring access tokens: JWTs (RFC 7519) in JWS compact form with HS256 only.

A token says who may connect (`sub`), until when (`exp`, required), from when (`nbf`)
and to which rooms (`rooms`; absent means any room). Whoever holds the shared secret
can mint one, e.g. a web app that already knows its users, or `tools/mint_token.py`.

Only HS256 is accepted. The algorithm named in a token's header is never trusted to pick
the verification: that is how `alg: none` and key-confusion attacks work. The signature
is checked, in constant time, before the payload is even decoded. Every rejection is a
`TokenError` whose `.code` is the answer to send. Pure: the clock is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import Any, ClassVar, final

import attrs

__all__ = [
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
    "Claims",
    "TokenAlgorithmRejected",
    "TokenClaimsInvalid",
    "TokenError",
    "TokenExpired",
    "TokenForged",
    "TokenMalformed",
    "TokenMissing",
    "TokenNotYetValid",
    "check_secret",
    "mint",
    "verify",
]

# RFC 7518 §3.2: an HS256 key MUST be at least as long as the hash output (256 bits).
MIN_SECRET_BYTES = 32
# Far above any token we mint (about 200 bytes with a few rooms); bounds the work a
# stranger can make us do before the signature check.
MAX_TOKEN_LENGTH = 4096

_HEADER: dict[str, object] = {"alg": "HS256", "typ": "JWT"}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(Exception):
    """A token was refused. `code` is the machine-readable reason sent to the client;
    the message is for the server's log."""

    code: ClassVar[str] = "token-invalid"


class TokenMissing(TokenError):
    code = "token-missing"


class TokenMalformed(TokenError):
    """Not three base64url parts, or a header that is not a JSON object."""

    code = "token-malformed"


class TokenAlgorithmRejected(TokenError):
    """The header names an algorithm other than HS256 (`none` included)."""

    code = "token-bad-alg"


class TokenForged(TokenError):
    """The signature does not match: wrong secret, or header/payload changed."""

    code = "token-forged"


class TokenClaimsInvalid(TokenError):
    """Correctly signed, but the claims are not what we mint (e.g. no `exp`)."""

    code = "token-claims-invalid"


class TokenExpired(TokenError):
    code = "token-expired"


class TokenNotYetValid(TokenError):
    code = "token-not-yet-valid"


def _check_time(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise ValueError(f"{attribute.name} must be a non-negative integer, not {value!r}")


def _check_rooms(_: object, __: attrs.Attribute[Any], value: tuple[int, ...] | None) -> None:
    if value is not None and not all(type(room) is int for room in value):
        raise ValueError(f"rooms must be integers, not {value!r}")


def _to_rooms(value: Iterable[int] | None) -> tuple[int, ...] | None:
    # Accept any iterable (a list from JSON, a set from code) but store a tuple, so
    # Claims stays hashable and mint() writes the rooms in the order they were given.
    return None if value is None else tuple(value)


@final
@attrs.frozen
class Claims:
    """What a verified token grants. Times are integer unix seconds (NumericDate)."""

    exp: int = attrs.field(validator=_check_time)
    iat: int | None = attrs.field(default=None, validator=_check_time)
    nbf: int | None = attrs.field(default=None, validator=_check_time)
    sub: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )
    rooms: tuple[int, ...] | None = attrs.field(
        default=None, converter=_to_rooms, validator=_check_rooms
    )

    def allows_room(self, room: int) -> bool:
        """Whether this token may enter (or create) `room`; no `rooms` claim means any."""
        return self.rooms is None or room in self.rooms

    def to_json(self) -> dict[str, object]:
        """The JWT claims set, without the claims that are absent."""
        payload: dict[str, object] = {"exp": self.exp}
        for name in ("iat", "nbf", "sub"):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        if self.rooms is not None:
            payload["rooms"] = list(self.rooms)
        return payload


def check_secret(secret: str | bytes) -> bytes:
    """The secret as key bytes, or ValueError if it is too short to be an HS256 key.

    Call it when the settings are loaded, so a weak secret stops the server at start.
    """
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the token secret must be at least {MIN_SECRET_BYTES} bytes, not {len(key)}"
            " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return key


def mint(secret: str | bytes, claims: Claims) -> str:
    """Sign `claims` into a compact JWT (`header.payload.signature`)."""
    key = check_secret(secret)
    header, payload = _json_bytes(_HEADER), _json_bytes(claims.to_json())
    signing_input = _b64encode(header) + "." + _b64encode(payload)
    return signing_input + "." + _sign(key, signing_input)


def verify(secret: str | bytes, token: str | None, now: float, leeway: float = 0.0) -> Claims:
    """The claims of `token` if it is well-formed, signed with `secret` and valid at
    `now` (unix seconds, give or take `leeway` for clock skew); else a TokenError.

    Expiry follows RFC 7519: a token is expired from the second `exp` itself.
    """
    key = check_secret(secret)
    if not token:
        raise TokenMissing("no token given")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenMalformed(f"token longer than {MAX_TOKEN_LENGTH} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenMalformed(f"a token has 3 dot-separated parts, this one has {len(parts)}")
    header_b64, payload_b64, signature_b64 = parts
    header = _decode_json_object(header_b64, "header")
    if header.get("alg") != "HS256":
        raise TokenAlgorithmRejected(f"alg {header.get('alg')!r} is not HS256")
    if header.get("typ", "JWT") != "JWT" or "crit" in header:
        # `crit` names extensions the verifier must understand; we understand none.
        raise TokenMalformed("unsupported header (typ other than JWT, or crit)")
    expected = _sign(key, header_b64 + "." + payload_b64)
    # Comparing the base64url text (not decoded bytes) also refuses a second spelling
    # of the same signature; both sides are ASCII, so compare_digest takes them as is.
    if not hmac.compare_digest(expected.encode(), signature_b64.encode()):
        raise TokenForged("signature does not match")
    claims = _claims(_decode_json_object(payload_b64, "payload"))
    if now >= claims.exp + leeway:
        raise TokenExpired(f"expired at {claims.exp}")
    if claims.nbf is not None and now + leeway < claims.nbf:
        raise TokenNotYetValid(f"not valid before {claims.nbf}")
    return claims


def _claims(payload: dict[str, Any]) -> Claims:
    # Unknown claims are ignored (RFC 7519 §4), known ones must have our types.
    try:
        if "exp" not in payload:
            raise ValueError("exp is required")
        rooms = payload.get("rooms")
        if rooms is not None and not isinstance(rooms, list):
            raise ValueError(f"rooms must be a list, not {rooms!r}")
        return Claims(
            exp=payload["exp"],
            iat=payload.get("iat"),
            nbf=payload.get("nbf"),
            sub=payload.get("sub"),
            rooms=rooms,
        )
    except (TypeError, ValueError) as exc:
        raise TokenClaimsInvalid(str(exc)) from None


def _sign(key: bytes, signing_input: str) -> str:
    return _b64encode(hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest())


def _json_bytes(value: dict[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str, part: str) -> bytes:
    # The stdlib decoder silently skips characters outside the alphabet; refuse them.
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise TokenMalformed(f"the {part} is not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decode_json_object(text: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(
            _b64decode(text, part),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constants,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise TokenMalformed(f"the {part} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TokenMalformed(f"the {part} is not a JSON object")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two `exp` members could be read differently by two parsers (RFC 7515 §5.2).
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _no_constants(name: str) -> float:
    # The stdlib accepts NaN and Infinity, which are not JSON.
    raise ValueError(f"{name} is not JSON")
