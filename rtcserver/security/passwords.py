"""The users file (salted scrypt hashes, never plaintext) and the login-failure throttle.

One line per user::

    alice:scrypt$32768$8$1$<salt, base64>$<hash, base64>

The cost parameters travel with each hash, so raising them later only affects new
and changed passwords; old lines keep verifying. Parsing, hashing and checking are
pure; `load_users` and `save_users` are the only I/O, and saving replaces the file
atomically so a crash never leaves half a users file.

`LoginThrottle` slows down password guessing: a token bucket per user name and one per
client address, each failure takes a token, and an empty bucket means "retry later".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import final

import attrs

__all__ = [
    "DEFAULT_SCRYPT",
    "NAME_PATTERN",
    "PER_ADDRESS_LIMIT",
    "PER_NAME_LIMIT",
    "BucketPolicy",
    "LoginThrottle",
    "PasswordHash",
    "ScryptParams",
    "Users",
    "UsersFileError",
    "check_password",
    "hash_password",
    "load_users",
    "parse_users",
    "save_users",
]

# Letters, digits and . _ @ + -: safe in a users file line, a log line and a URL.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
# A password longer than this is refused without hashing: it bounds the work one login
# attempt can cost, and no one types more.
MAX_PASSWORD_LENGTH = 1024
MAX_SCRYPT_MEMORY = 2**28
_SALT_BYTES = 16
_HASH_BYTES = 32


class UsersFileError(ValueError):
    """The users file (or one hash in it) cannot be read; the message names the line."""


@final
@attrs.frozen
class ScryptParams:
    """scrypt cost: `n` (CPU/memory, a power of two), `r` (block size), `p` (lanes).

    Memory is about 128 * n * r bytes. The bounds keep a hand-edited or hostile users
    file from making one login attempt take gigabytes or minutes.
    """

    n: int = attrs.field()
    r: int = attrs.field(
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(32))
    )
    p: int = attrs.field(
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(16))
    )

    @n.validator
    def _n_is_a_power_of_two(self, _: attrs.Attribute[int], n: int) -> None:
        if n < 2 or n & (n - 1) or n > 2**20:
            raise ValueError(f"scrypt n must be a power of two in [2, 2**20], not {n}")

    def __attrs_post_init__(self) -> None:
        if self.memory > MAX_SCRYPT_MEMORY:
            raise ValueError(f"scrypt n={self.n}, r={self.r} needs more than 256 MiB")
        if self.n * self.r * self.p > 2**22:
            raise ValueError("scrypt n * r * p is above 2**22 (16 times the default work)")

    @property
    def memory(self) -> int:
        return 128 * self.n * self.r


# 2**15 * 8 * 128 bytes = 32 MiB and about 0.1 s per hash on a laptop core: expensive
# for a guesser with a copy of the file, cheap enough for an occasional login.
DEFAULT_SCRYPT = ScryptParams(n=2**15, r=8, p=1)


@final
@attrs.frozen
class PasswordHash:
    """A salted scrypt hash, as stored after the `name:` of a users file line."""

    params: ScryptParams
    salt: bytes = attrs.field(repr=False)
    digest: bytes = attrs.field(repr=False)

    def encode(self) -> str:
        p = self.params
        salt = base64.b64encode(self.salt).decode()
        digest = base64.b64encode(self.digest).decode()
        return f"scrypt${p.n}${p.r}${p.p}${salt}${digest}"

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        fields = text.split("$")
        if len(fields) != 6 or fields[0] != "scrypt":
            raise UsersFileError("not a scrypt$n$r$p$salt$hash string")
        try:
            n, r, p = (int(f) for f in fields[1:4])
            salt = base64.b64decode(fields[4], validate=True)
            digest = base64.b64decode(fields[5], validate=True)
            params = ScryptParams(n=n, r=r, p=p)
        except (ValueError, binascii.Error) as exc:
            raise UsersFileError(f"bad scrypt hash: {exc}") from None
        if len(salt) < 8 or len(digest) < 16:
            raise UsersFileError("scrypt salt or hash too short")
        return cls(params=params, salt=salt, digest=digest)


def hash_password(
    password: str, params: ScryptParams = DEFAULT_SCRYPT, salt: bytes | None = None
) -> PasswordHash:
    """A new hash of `password` with a random salt (or the given one, for tests)."""
    if not password:
        raise ValueError("the password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    return PasswordHash(params, salt, _scrypt(password, params, salt, _HASH_BYTES))


def check_password(hashed: PasswordHash, password: str) -> bool:
    """Whether `password` matches `hashed`; the final comparison is constant-time."""
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        return False
    candidate = _scrypt(password, hashed.params, hashed.salt, len(hashed.digest))
    return hmac.compare_digest(candidate, hashed.digest)


def _scrypt(password: str, params: ScryptParams, salt: bytes, length: int) -> bytes:
    # NFKC so that the same password typed on two keyboards (composed or decomposed
    # accents, full-width digits) hashes the same (NIST SP 800-63B §5.1.1.2).
    secret = unicodedata.normalize("NFKC", password).encode()
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.memory + 2**20,
        dklen=length,
    )


# Checked against when a name is unknown, so that "no such user" takes as long as
# "wrong password" and response times do not reveal which names exist.
_DECOY = PasswordHash(DEFAULT_SCRYPT, b"\0" * _SALT_BYTES, b"\0" * _HASH_BYTES)


def _frozen_copy(entries: Mapping[str, PasswordHash]) -> Mapping[str, PasswordHash]:
    return MappingProxyType(dict(entries))


@final
@attrs.frozen(eq=False)  # Mapping already compares by contents
class Users(Mapping[str, PasswordHash]):
    """The users file's contents: an immutable map from name to hash.

    Changes return a new `Users`; `save_users` writes one out.
    """

    _entries: Mapping[str, PasswordHash] = attrs.field(factory=dict, converter=_frozen_copy)

    def __getitem__(self, name: str) -> PasswordHash:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, name: str, password: str) -> bool:
        """Whether `name` exists and `password` is theirs, taking the same time for an
        unknown name as for a wrong password."""
        hashed = self._entries.get(name)
        ok = check_password(hashed if hashed is not None else _DECOY, password)
        return ok and hashed is not None

    def with_password(self, name: str, hashed: PasswordHash) -> Users:
        """These users plus `name` (new, or with a changed password)."""
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"a user name is 1-64 of A-Z a-z 0-9 . _ @ + -, not {name!r}")
        return Users({**self._entries, name: hashed})

    def without(self, name: str) -> Users:
        if name not in self._entries:
            raise KeyError(name)
        return Users({k: v for k, v in self._entries.items() if k != name})

    def format(self) -> str:
        """The users file text, one `name:hash` line per user, sorted by name."""
        return "".join(f"{name}:{self._entries[name].encode()}\n" for name in sorted(self))


def parse_users(text: str) -> Users:
    """Read users file text. Blank lines are skipped; anything else must be a valid
    `name:scrypt$...` line, and a name may appear only once."""
    entries: dict[str, PasswordHash] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, rest = line.strip().partition(":")
        try:
            if not sep or not NAME_PATTERN.fullmatch(name):
                raise UsersFileError("expected name:scrypt$n$r$p$salt$hash")
            if name in entries:
                raise UsersFileError(f"user {name!r} appears twice")
            entries[name] = PasswordHash.parse(rest)
        except UsersFileError as exc:
            raise UsersFileError(f"line {number}: {exc}") from None
    return Users(entries)


def load_users(path: Path) -> Users:
    """The users in `path`; a missing file is an error, not an empty set of users."""
    try:
        return parse_users(path.read_text(encoding="utf-8"))
    except UsersFileError as exc:
        raise UsersFileError(f"{path}: {exc}") from None


def save_users(path: Path, users: Users) -> None:
    """Replace `path` with `users`, atomically: readers see the old file or the new
    one, never a mix. The file is created readable by its owner only (0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(users.format())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@final
@attrs.frozen
class BucketPolicy:
    """A token bucket: `burst` failures allowed at once, then one more every
    `refill_seconds`."""

    burst: int = attrs.field(validator=attrs.validators.ge(1))
    refill_seconds: float = attrs.field(validator=attrs.validators.gt(0))


# Five wrong passwords for one name, then one try a minute: a person who mistypes is
# not bothered, a guesser gets about 1,440 tries a day instead of millions.
PER_NAME_LIMIT = BucketPolicy(burst=5, refill_seconds=60.0)
# One address may fail more often (a shared NAT holds many users), but spraying many
# names from one address still hits a wall quickly.
PER_ADDRESS_LIMIT = BucketPolicy(burst=20, refill_seconds=10.0)


@attrs.define
class _Bucket:
    tokens: float
    updated: float


@final
@attrs.define
class LoginThrottle:
    """Decides whether a login attempt may be checked at all, from past failures.

    Usage: `wait = throttle.reserve(name, addr, now)`; if `wait > 0` refuse without
    checking the password; else the attempt has already taken its token from both
    buckets (so checks still pending count against the limit: 100 concurrent guesses
    get 5 checks, not 100), check it, and on success call `released` (the address gets
    its token back, the name's record is forgotten). A failure needs no further call.
    `retry_after` + `failed` is the same without the reservation. Pure and synchronous:
    `now` is a monotonic clock reading passed in.

    Memory is bounded by `max_tracked` keys: full buckets carry no information and are
    dropped first, then the oldest. Under a flood of distinct names or addresses beyond
    that, the oldest limits are forgotten (the other kind of bucket still applies).
    """

    per_name: BucketPolicy = PER_NAME_LIMIT
    per_address: BucketPolicy = PER_ADDRESS_LIMIT
    max_tracked: int = 10_000
    _buckets: dict[tuple[str, str], _Bucket] = attrs.field(factory=dict, init=False)

    def retry_after(self, name: str, address: str, now: float) -> float:
        """Seconds until an attempt for `name` from `address` may be checked; 0 = now."""
        return max(
            self._wait(("name", name), self.per_name, now),
            self._wait(("addr", address), self.per_address, now),
        )

    def reserve(self, name: str, address: str, now: float) -> float:
        """Take a token for an attempt about to be checked, before the check: 0 when it
        may go ahead (its token is taken), else the seconds to wait (nothing taken)."""
        wait = self.retry_after(name, address, now)
        if wait == 0:
            self.failed(name, address, now)
        return wait

    def released(self, name: str, address: str, now: float) -> None:
        """A reserved attempt succeeded: forget the name's failures and give the address
        back the token the attempt took (people behind one NAT logging in are no guessers)."""
        self.succeeded(name, address, now)
        key = ("addr", address)
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(
                float(self.per_address.burst), self._level(key, self.per_address, now) + 1.0
            )
            bucket.updated = now

    def failed(self, name: str, address: str, now: float) -> None:
        self._take(("name", name), self.per_name, now)
        self._take(("addr", address), self.per_address, now)
        self._prune(now)

    def succeeded(self, name: str, address: str, now: float) -> None:
        """The owner of `name` proved themselves: forget that name's failures. The
        address keeps its record, or a guesser could clear it with their own account."""
        self._buckets.pop(("name", name), None)

    def tracked(self) -> int:
        """How many names and addresses have a record (for metrics)."""
        return len(self._buckets)

    def _level(self, key: tuple[str, str], policy: BucketPolicy, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(policy.burst)
        elapsed = max(0.0, now - bucket.updated)
        return min(float(policy.burst), bucket.tokens + elapsed / policy.refill_seconds)

    def _wait(self, key: tuple[str, str], policy: BucketPolicy, now: float) -> float:
        missing = 1.0 - self._level(key, policy, now)
        return max(0.0, missing * policy.refill_seconds)

    def _take(self, key: tuple[str, str], policy: BucketPolicy, now: float) -> None:
        tokens = max(0.0, self._level(key, policy, now) - 1.0)
        self._buckets.pop(key, None)  # re-insert: dict order is then least recently failed
        self._buckets[key] = _Bucket(tokens=tokens, updated=now)

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self.max_tracked:
            return
        policies = {"name": self.per_name, "addr": self.per_address}
        full = [
            key
            for key in self._buckets
            if self._level(key, policies[key[0]], now) >= policies[key[0]].burst
        ]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > self.max_tracked:
            del self._buckets[next(iter(self._buckets))]
