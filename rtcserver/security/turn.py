"""Ephemeral TURN credentials (the TURN REST API scheme coturn calls `use-auth-secret`).

rtcserver and the TURN server share one secret and never talk to each other. For each
client we derive a username that carries its own expiry, ``"<unix-expiry>:<id>"``, and
a password that is ``base64(HMAC-SHA1(secret, username))``. The TURN server recomputes
the password from the username alone, so a leaked credential stops working at its
expiry and the secret itself never leaves the server. Pure: the clock is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict, final

import attrs

from ..settings import Settings

__all__ = ["IceServer", "TurnCredential", "ice_servers", "turn_credential", "turn_password"]

# STUN carries USERNAME in an attribute of at most 512 bytes (RFC 8489 §14.3).
_MAX_USERNAME_BYTES = 512
_STUN_SCHEMES = ("stun:", "stuns:")
_TURN_SCHEMES = ("turn:", "turns:")


class IceServer(TypedDict):
    """One RTCIceServer, exactly as `new RTCPeerConnection({iceServers})` takes it."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


@final
@attrs.frozen
class TurnCredential:
    """A username/password pair a TURN server with the same secret will accept until
    `expires_at` (unix seconds)."""

    username: str
    password: str = attrs.field(repr=False)
    expires_at: int


def turn_password(secret: str, username: str) -> str:
    """The password coturn expects for `username`: base64(HMAC-SHA1(secret, username)).

    SHA-1 is not our choice: it is what the TURN REST API draft and coturn specify.
    """
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_credential(secret: str, user_id: str, lifetime: int, now: float) -> TurnCredential:
    """Credentials for `user_id` valid from `now` for `lifetime` seconds.

    The expiry is rounded up to a whole second, so a credential is never shorter-lived
    than asked. `user_id` is only a label in the TURN server's logs; it needs no
    secrecy, but it must not contain control characters (it ends up in a log line).
    """
    if not secret:
        raise ValueError("the TURN secret must not be empty")
    if lifetime <= 0:
        raise ValueError(f"the TURN credential lifetime must be positive, not {lifetime}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in user_id):
        raise ValueError("a TURN user id must not contain control characters")
    expires_at = math.ceil(now) + lifetime
    username = f"{expires_at}:{user_id}"
    if len(username.encode()) > _MAX_USERNAME_BYTES:
        raise ValueError(f"a TURN username must fit in {_MAX_USERNAME_BYTES} bytes")
    return TurnCredential(
        username=username, password=turn_password(secret, username), expires_at=expires_at
    )


def ice_servers(
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    secret: str,
    lifetime: int,
    user_id: str,
    now: float,
) -> list[IceServer]:
    """The `iceServers` list for one client: STUN servers as they are, TURN servers with
    fresh credentials for `user_id`. Empty URL lists contribute nothing, so a server
    configured without STUN/TURN hands out `[]` (host candidates only).

    Raises ValueError for a URL with the wrong scheme, or TURN URLs without a secret:
    those are configuration mistakes, better caught when the settings are loaded than
    discovered by a browser that silently gathers no relay candidates.
    """
    servers: list[IceServer] = []
    _check_schemes(stun_urls, _STUN_SCHEMES)
    _check_schemes(turn_urls, _TURN_SCHEMES)
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls:
        cred = turn_credential(secret, user_id, lifetime, now)
        servers.append(
            {"urls": list(turn_urls), "username": cred.username, "credential": cred.password}
        )
    return servers


def _check_schemes(urls: Sequence[str], schemes: tuple[str, ...]) -> None:
    if isinstance(urls, str):
        # A bare string is a Sequence[str] too; iterating it would yield characters.
        raise TypeError("ICE server URLs must be a list of strings, not one string")
    for url in urls:
        if not url.startswith(schemes):
            raise ValueError(f"{url!r} should start with one of {', '.join(schemes)}")


def ice_config(settings: Settings, user_id: str, now: float) -> dict[str, Any]:
    """What a browser passes to `new RTCPeerConnection(...)`: STUN as configured, TURN
    with ephemeral credentials for `user_id` (the secret itself never leaves)."""
    servers = ice_servers(
        settings.stun, settings.turn, settings.turn_secret, settings.turn_ttl, user_id, now
    )
    return {
        "iceServers": [dict(server) for server in servers],
        "iceTransportPolicy": "relay" if settings.relay_only else "all",
    }
