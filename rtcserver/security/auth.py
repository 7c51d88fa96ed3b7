"""Who may connect: the Origin check, signed tokens and the users file.

The maths lives in the pure modules (`tokens.py`, `passwords.py`); this is the thin
shell the front door and the connection actor call. A refusal always names itself:
the `code` of `AuthFailed` is what the client is told (HTTP 401 body or ERROR code).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import trio

from ..settings import Settings
from . import passwords, tokens

# scrypt costs ~0.1 s of CPU and 32 MiB per check: at most two at once, off the loop.
SCRYPT_SLOTS = 2


@attrs.frozen
class Identity:
    """Who a connection speaks for, and what that lets it do (docs/PROTOCOL.md).

    With authentication off every connection is ANONYMOUS: any LOGIN name, any room.
    A token limits both. Its `sub` is the only name LOGIN may claim; without `sub` the
    holder stays anonymous and cannot LOGIN at all. Its `rooms`, when present, is the
    whole list of rooms the holder may be in: ENTERROOM to those only, and no GETROOM
    and no calls, since both make new rooms. A password login proves a name and
    allows any room.
    """

    name: str | None = None
    rooms: tuple[int, ...] | None = None
    expires: float | None = None  # unix time the token runs out; None: never
    any_name: bool = False  # authentication is off: LOGIN may claim any free name

    def may_enter(self, room: int) -> bool:
        return self.rooms is None or room in self.rooms

    @property
    def may_create_rooms(self) -> bool:
        return self.rooms is None

    def login_refusal(self, requested: str) -> str | None:
        """Why LOGIN as `requested` is not allowed (the LOGIN reply's reason), or None."""
        if self.any_name:
            return None
        if self.name is None:
            return "auth failed: your credentials name no user"
        if self.rooms is not None:
            return "auth failed: your token is limited to its rooms, and calls make new ones"
        if requested != self.name:
            return "auth failed: your credentials are for another name"
        return None


ANONYMOUS = Identity(any_name=True)


class AuthFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.define(eq=False)
class Gatekeeper:
    settings: Settings
    users: passwords.Users | None = None
    throttle: passwords.LoginThrottle = attrs.field(factory=passwords.LoginThrottle)
    hash_slots: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(SCRYPT_SLOTS)
    )
    # Password checks run, and those skipped because their client had gone (metrics).
    hashed: int = 0
    abandoned: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Gatekeeper:
        users = passwords.load_users(Path(settings.users_file)) if settings.users_file else None
        if settings.auth_secret:
            tokens.check_secret(settings.auth_secret)
        return cls(settings=settings, users=users)

    @property
    def mode(self) -> str | None:
        return self.settings.auth_mode

    def check_token(self, token: str | None) -> Identity:
        try:
            claims = tokens.verify(self.settings.auth_secret, token, now=time.time())
        except tokens.TokenError as error:
            raise AuthFailed(error.code, str(error)) from None
        return Identity(name=claims.sub, rooms=claims.rooms, expires=float(claims.exp))

    async def check_password(
        self,
        name: object,
        password: object,
        address: str,
        connected: Callable[[], bool] = lambda: True,
    ) -> Identity:
        """Check a name and password. The attempt is reserved in the throttle before
        anything is hashed, so checks still waiting count against the limits (and
        bound the queue: one address can have at most its bucket's burst waiting).
        `connected` is asked once a hashing slot is free: a client that has left by
        then costs no scrypt."""
        if self.users is None:
            raise AuthFailed("auth-failed", "this server has no users file")
        if not isinstance(name, str) or not isinstance(password, str):
            raise AuthFailed("auth-failed", "AUTH needs a string name and password")
        host = address_host(address)
        wait = self.throttle.reserve(name, host, trio.current_time())
        if wait > 0:
            raise AuthFailed("auth-throttled", f"too many failed logins: retry in {wait:.0f}s")
        users = self.users
        async with self.hash_slots:
            if not connected():
                self.abandoned += 1
                raise AuthFailed("auth-failed", "the connection closed before the check")
            self.hashed += 1
            ok = await trio.to_thread.run_sync(users.verify, name, password)
        if not ok:
            raise AuthFailed("auth-failed", "unknown name or wrong password")
        self.throttle.released(name, host, trio.current_time())
        return Identity(name=name)


def address_host(address: str) -> str:
    """The host part of a client address: `1.2.3.4:5` -> `1.2.3.4`, `[::1]:5` -> `::1`;
    a bare address (from X-Forwarded-For) is returned as it is."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") == 1:
        return address.partition(":")[0]
    return address


def _netloc(origin_or_host: str, scheme: str) -> str:
    """host[:port] in lower case, without the scheme's default port."""
    netloc = origin_or_host.lower()
    default = ":443" if scheme == "https" else ":80"
    return netloc.removesuffix(default)


def origin_allowed(
    origin: str | None, host: str | None, allowed: tuple[str, ...], require: bool
) -> bool:
    """The cross-site WebSocket hijacking check.

    A browser always sends `Origin` on a WebSocket upgrade; a page on a foreign site
    must not ride on the visitor's network position or cookies. Same-origin (the
    Origin's host:port is the Host the request was sent to) and the allow-list pass.
    No Origin at all is a non-browser client: allowed unless `require` says otherwise.
    """
    if origin is None:
        return not require
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return False
    return _netloc(parts.netloc, parts.scheme) == _netloc(host, parts.scheme)
