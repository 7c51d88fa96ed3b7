"""Signed, expiring access tokens: JWTs (RFC 7519) with HS256 only, on PyJWT.

A token says who may connect (`sub`), until when (`exp`, required), from when (`nbf`)
and to which rooms (`rooms`; absent means any room). Whoever holds the shared secret
can mint one, e.g. a web app that already knows its users, or `tools/mint_token.py`.
What `sub` and `rooms` allow is enforced in `auth.Identity` (docs/PROTOCOL.md).

PyJWT parses and checks the signature; the algorithm is pinned to HS256, never taken
from the token's header (that is how `alg: none` and key-confusion attacks work). This
module adds what PyJWT leaves to its caller: the shape of our claims, and the clock as
an argument, so it stays pure. Every rejection is a `TokenError` whose `.code` is the
answer to send and whose text is fixed: nothing from the token is echoed back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, final

import attrs
import jwt
from jwt.algorithms import HMACAlgorithm

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
ALGORITHMS = ["HS256"]
# PyJWT checks the signature and that `exp` is there. Time claims are checked here
# against the `now` argument (PyJWT would read the clock); claims we do not use
# (`iss`, `aud`, `jti`, ...) are ignored, as RFC 7519 §4 lets us.
_UNCHECKED = ("exp", "nbf", "iat", "iss", "aud", "sub", "jti")
_DECODE_OPTIONS: Any = {"require": ["exp"]} | {f"verify_{name}": False for name in _UNCHECKED}


class TokenError(Exception):
    """A token was refused. `code` is the machine-readable reason sent to the client;
    the message is a fixed text for the client and the log."""

    code: ClassVar[str] = "token-invalid"


class TokenMissing(TokenError):
    code = "token-missing"


class TokenMalformed(TokenError):
    """Not three unpadded base64url parts, a header that is not a JSON object, or a
    header asking for what we do not understand (`typ` other than JWT, `crit`)."""

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
        raise ValueError(f"{attribute.name} must be a non-negative integer")


def _check_sub(_: object, __: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError("sub must be a string")


def _check_rooms(_: object, __: attrs.Attribute[Any], value: tuple[int, ...] | None) -> None:
    if value is not None and not all(type(room) is int for room in value):
        raise ValueError("rooms must be a list of room numbers")


def _to_rooms(value: Iterable[int] | None) -> tuple[int, ...] | None:
    # Accept any iterable (a list from JSON, a set from code) but store a tuple, so
    # Claims stays hashable and mint() writes the rooms in the order they were given.
    return None if value is None else tuple(value)


@final
@attrs.frozen
class Claims:
    """What a verified token grants. Times are integer unix seconds (NumericDate).
    The validators' texts are fixed: a refused token's 401 body quotes them."""

    exp: int = attrs.field(validator=_check_time)
    iat: int | None = attrs.field(default=None, validator=_check_time)
    nbf: int | None = attrs.field(default=None, validator=_check_time)
    sub: str | None = attrs.field(default=None, validator=_check_sub)
    rooms: tuple[int, ...] | None = attrs.field(
        default=None, converter=_to_rooms, validator=_check_rooms
    )

    def allows_room(self, room: int) -> bool:
        """Whether this token may enter `room`; no `rooms` claim means any."""
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
    try:  # PyJWT refuses secrets that look like PEM keys: say so at start, not per token
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(key)
    except jwt.InvalidKeyError as exc:
        raise ValueError(f"the token secret is not usable: {exc}") from None
    return key


def mint(secret: str | bytes, claims: Claims) -> str:
    """Sign `claims` into a compact JWT (`header.payload.signature`)."""
    return jwt.encode(claims.to_json(), check_secret(secret), algorithm="HS256")


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
    if "=" in token:
        # PyJWT accepts padded base64url too; one spelling per token is all we mint.
        raise TokenMalformed("not unpadded base64url")
    decoded = _decode(key, token)
    header = decoded["header"]
    if header.get("typ", "JWT") != "JWT":
        raise TokenMalformed("unsupported header (typ other than JWT)")
    claims = _claims(decoded["payload"])
    if now >= claims.exp + leeway:
        raise TokenExpired("expired")
    if claims.nbf is not None and now + leeway < claims.nbf:
        raise TokenNotYetValid("not valid yet")
    return claims


def _decode(key: bytes, token: str) -> dict[str, Any]:
    """PyJWT's checks, its exceptions turned into ours (with fixed texts)."""
    try:
        return jwt.api_jwt.decode_complete(
            token, key, algorithms=ALGORITHMS, options=_DECODE_OPTIONS
        )
    except jwt.InvalidAlgorithmError:
        raise TokenAlgorithmRejected("alg is not HS256") from None
    except jwt.InvalidSignatureError:  # before DecodeError: it is one
        raise TokenForged("signature does not match") from None
    except jwt.MissingRequiredClaimError:
        raise TokenClaimsInvalid("exp is required") from None
    except jwt.DecodeError:
        raise TokenMalformed("not a JWT: three base64url parts of JSON objects") from None
    except jwt.InvalidTokenError:  # e.g. a `crit` header naming extensions we lack
        raise TokenMalformed("unsupported header") from None


def _claims(payload: dict[str, Any]) -> Claims:
    # Unknown claims are ignored (RFC 7519 §4), known ones must have our types. The
    # validators' texts are fixed, so str(exc) never echoes the token's values.
    try:
        rooms = payload.get("rooms")
        if rooms is not None and not isinstance(rooms, list):
            raise ValueError("rooms must be a list of room numbers")
        return Claims(
            exp=payload["exp"],
            iat=payload.get("iat"),
            nbf=payload.get("nbf"),
            sub=payload.get("sub"),
            rooms=rooms,
        )
    except (TypeError, ValueError) as exc:
        raise TokenClaimsInvalid(str(exc)) from None
