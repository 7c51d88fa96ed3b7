"""The users file and the login throttle (rtcserver/security/passwords.py), and tools/users.py.

Hashes here use tiny scrypt parameters (FAST) so the suite stays quick; the
known-answer test uses the RFC 7914 vector to show it is standard scrypt.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcserver.security.passwords import (
    DEFAULT_SCRYPT,
    PER_ADDRESS_LIMIT,
    PER_NAME_LIMIT,
    BucketPolicy,
    LoginThrottle,
    PasswordHash,
    ScryptParams,
    Users,
    UsersFileError,
    check_password,
    hash_password,
    load_users,
    parse_users,
    save_users,
)

ROOT = Path(__file__).resolve().parents[1]
FAST = ScryptParams(n=16, r=8, p=1)


# --- hashing ---------------------------------------------------------------------------


def test_scrypt_matches_rfc7914_test_vector() -> None:
    # RFC 7914 §12: scrypt(P="password", S="NaCl", N=1024, r=8, p=16, dkLen=64).
    expected = bytes.fromhex(
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
    )
    hashed = PasswordHash(ScryptParams(n=1024, r=8, p=16), b"NaCl", expected)
    assert check_password(hashed, "password")
    assert not check_password(hashed, "Password")


def test_right_password_verifies_and_wrong_one_does_not() -> None:
    hashed = hash_password("correct horse", FAST)
    assert check_password(hashed, "correct horse")
    assert not check_password(hashed, "correct horse ")
    assert not check_password(hashed, "")


def test_the_same_password_gets_a_new_salt_each_time() -> None:
    a, b = hash_password("pw", FAST), hash_password("pw", FAST)
    assert a.salt != b.salt
    assert a.digest != b.digest


def test_stored_form_holds_no_plaintext_and_round_trips() -> None:
    hashed = hash_password("hunter2-hunter2", FAST)
    text = hashed.encode()
    assert text.startswith("scrypt$16$8$1$")
    assert "hunter2" not in text
    assert PasswordHash.parse(text) == hashed


def test_default_cost_is_the_documented_one() -> None:
    hashed = hash_password("pw")
    assert hashed.params == DEFAULT_SCRYPT == ScryptParams(n=2**15, r=8, p=1)
    assert hashed.encode().startswith("scrypt$32768$8$1$")


def test_a_password_typed_composed_or_decomposed_is_the_same_password() -> None:
    hashed = hash_password("caf\u00e9 \ufb01", FAST)  # é as one code point, the fi ligature
    assert check_password(hashed, "cafe\u0301 fi")


def test_repr_shows_no_salt_or_hash() -> None:
    hashed = hash_password("pw", FAST)
    assert hashed.salt.hex() not in repr(hashed)
    assert repr(hashed) == "PasswordHash(params=ScryptParams(n=16, r=8, p=1))"


@pytest.mark.parametrize("password", ["", "x" * 1025])
def test_empty_or_huge_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValueError):
        hash_password(password, FAST)


def test_a_huge_password_is_refused_without_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = hash_password("pw", FAST)
    calls: list[object] = []
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: calls.append(a))
    assert not check_password(hashed, "x" * 100_000)
    assert calls == []


@pytest.mark.parametrize(
    ("n", "r", "p"),
    [(15, 8, 1), (0, 8, 1), (2**21, 1, 1), (2**20, 8, 1), (2**16, 8, 16), (16, 0, 1), (16, 8, 0)],
)
def test_scrypt_costs_outside_the_bounds_are_refused(n: int, r: int, p: int) -> None:
    with pytest.raises(ValueError):
        ScryptParams(n=n, r=r, p=p)


# --- the users file --------------------------------------------------------------------


def users_of(**names_and_passwords: str) -> Users:
    users = Users()
    for name, password in names_and_passwords.items():
        users = users.with_password(name, hash_password(password, FAST))
    return users


def test_users_verify_name_and_password_together() -> None:
    users = users_of(alice="wonderland", bob="builder")
    assert users.verify("alice", "wonderland")
    assert not users.verify("alice", "builder")
    assert not users.verify("carol", "wonderland")


def test_unknown_name_costs_the_same_scrypt_as_a_wrong_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = users_of(alice="wonderland")
    costs: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kw: int) -> bytes:
        costs.append((kw["n"], kw["r"], kw["p"]))
        return real(password, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counting)
    users.verify("nobody", "guess")
    (decoy,) = costs
    assert decoy == (DEFAULT_SCRYPT.n, DEFAULT_SCRYPT.r, DEFAULT_SCRYPT.p)


def test_format_then_parse_gives_the_same_users() -> None:
    users = users_of(bob="builder", alice="wonderland")
    text = users.format()
    assert [line.split(":")[0] for line in text.splitlines()] == ["alice", "bob"]
    assert parse_users(text) == users


def test_blank_lines_are_ignored() -> None:
    line = "alice:" + hash_password("pw", FAST).encode()
    assert list(parse_users(f"\n{line}\n\n  \n")) == ["alice"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alice:hunter2", "line 1"),
        ("alice", "line 1"),
        ("\n\nbad name:scrypt$16$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==", "line 3"),
        ("alice:scrypt$15$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==", "power of two"),
        ("alice:scrypt$1048576$32$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==", "256 MiB"),
        ("alice:scrypt$16$8$1$!!!$AAAAAAAAAAAAAAAAAAAAAA==", "bad scrypt hash"),
        ("alice:scrypt$16$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==", "too short"),
        ("alice:bcrypt$16$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==", "not a scrypt"),
        ("alice:scrypt$sixteen$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==", "bad scrypt hash"),
    ],
)
def test_unreadable_users_files_name_the_line_and_problem(text: str, problem: str) -> None:
    with pytest.raises(UsersFileError, match=problem):
        parse_users(text)


def test_a_name_may_appear_only_once() -> None:
    line = "alice:" + hash_password("pw", FAST).encode()
    with pytest.raises(UsersFileError, match="line 2: user 'alice' appears twice"):
        parse_users(f"{line}\n{line}\n")


@pytest.mark.parametrize("name", ["", "has space", "colon:name", "new\nline", "x" * 65, "é"])
def test_user_names_are_restricted_to_a_safe_alphabet(name: str) -> None:
    with pytest.raises(ValueError, match="user name"):
        Users().with_password(name, hash_password("pw", FAST))


def test_users_are_immutable_values() -> None:
    users = users_of(alice="wonderland")
    changed = users.with_password("alice", hash_password("new", FAST))
    assert users.verify("alice", "wonderland")
    assert changed.verify("alice", "new")
    assert list(users.without("alice")) == []
    assert list(users) == ["alice"]
    with pytest.raises(KeyError):
        users.without("bob")


def test_save_then_load_round_trips_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    users = users_of(alice="wonderland", bob="builder")
    save_users(path, users)
    assert load_users(path) == users
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["users.txt"]


def test_a_failed_save_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "users.txt"
    save_users(path, users_of(alice="wonderland"))
    before = path.read_text()

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_users(path, users_of(bob="builder"))
    assert path.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["users.txt"]


def test_load_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("alice:hunter2\n")
    with pytest.raises(UsersFileError, match=r"users\.txt: line 1"):
        load_users(path)


# --- the login throttle ----------------------------------------------------------------


def test_documented_defaults() -> None:
    throttle = LoginThrottle()
    assert throttle.per_name == PER_NAME_LIMIT == BucketPolicy(burst=5, refill_seconds=60)
    assert throttle.per_address == PER_ADDRESS_LIMIT == BucketPolicy(burst=20, refill_seconds=10)


def test_five_failures_then_wait_a_minute_for_one_more_try() -> None:
    throttle = LoginThrottle()
    for _ in range(5):
        assert throttle.retry_after("alice", "10.0.0.1", now=100.0) == 0
        throttle.failed("alice", "10.0.0.1", now=100.0)
    assert throttle.retry_after("alice", "10.0.0.1", now=100.0) == pytest.approx(60)
    assert throttle.retry_after("alice", "10.0.0.9", now=100.0) == pytest.approx(60)
    assert throttle.retry_after("alice", "10.0.0.1", now=130.0) == pytest.approx(30)
    assert throttle.retry_after("alice", "10.0.0.1", now=160.0) == 0
    throttle.failed("alice", "10.0.0.1", now=160.0)
    assert throttle.retry_after("alice", "10.0.0.1", now=160.0) == pytest.approx(60)


def test_other_names_are_not_slowed_by_one_name_being_guessed() -> None:
    throttle = LoginThrottle()
    for _ in range(5):
        throttle.failed("alice", "10.0.0.1", now=0.0)
    assert throttle.retry_after("bob", "10.0.0.2", now=0.0) == 0


def test_success_forgets_the_names_failures_but_not_the_addresses() -> None:
    throttle = LoginThrottle(per_address=BucketPolicy(burst=3, refill_seconds=10))
    for _ in range(2):
        throttle.failed("alice", "10.0.0.1", now=0.0)
    throttle.succeeded("alice", "10.0.0.1", now=0.0)
    throttle.failed("alice", "10.0.0.1", now=0.0)
    assert throttle.retry_after("alice", "10.0.0.2", now=0.0) == 0
    assert throttle.retry_after("carol", "10.0.0.1", now=0.0) == pytest.approx(10)


def test_spraying_many_names_from_one_address_hits_the_address_limit() -> None:
    throttle = LoginThrottle()
    for i in range(20):
        assert throttle.retry_after(f"user{i}", "10.0.0.1", now=0.0) == 0
        throttle.failed(f"user{i}", "10.0.0.1", now=0.0)
    assert throttle.retry_after("user99", "10.0.0.1", now=0.0) == pytest.approx(10)
    assert throttle.retry_after("user99", "10.0.0.2", now=0.0) == 0


def test_memory_is_bounded_by_max_tracked() -> None:
    throttle = LoginThrottle(max_tracked=10)
    for i in range(100):
        throttle.failed(f"user{i}", f"10.1.0.{i}", now=float(i))
        assert throttle.tracked() <= 10


def test_a_flood_of_refilled_buckets_does_not_evict_a_blocked_name() -> None:
    fast_address = BucketPolicy(burst=20, refill_seconds=0.01)
    throttle = LoginThrottle(per_address=fast_address, max_tracked=4)
    for _ in range(5):
        throttle.failed("alice", "10.0.0.1", now=0.0)
    now = 0.0
    for i in range(100):
        now = 1.0 + i * 0.1
        throttle.failed("bob", f"10.1.0.{i}", now=now)
        assert throttle.tracked() <= 4
    assert throttle.retry_after("alice", "10.9.9.9", now=now) == pytest.approx(60 - now)


@settings(max_examples=200)
@given(
    steps=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=60),
)
def test_a_guesser_never_gets_more_than_burst_plus_refill(steps: list[float]) -> None:
    policy = BucketPolicy(burst=5, refill_seconds=60)
    throttle = LoginThrottle(per_name=policy)
    now, tried = 0.0, 0
    for step in steps:
        now += step
        if throttle.retry_after("alice", f"10.0.{tried}.1", now) == 0:
            throttle.failed("alice", f"10.0.{tried}.1", now)
            tried += 1
    assert tried <= policy.burst + now / policy.refill_seconds


# --- tools/users.py --------------------------------------------------------------------


def users_tool(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "users.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_users_tool_add_passwd_check_remove_list(tmp_path: Path) -> None:
    path = str(tmp_path / "users.txt")
    assert users_tool("add", path, "alice", "--password-stdin", stdin="first pw\n").returncode == 0
    assert users_tool("add", path, "bob", "--password-stdin", stdin="bob's\n").returncode == 0
    assert "first pw" not in Path(path).read_text()
    assert load_users(Path(path)).verify("alice", "first pw")

    assert (
        users_tool("check", path, "alice", "--password-stdin", stdin="first pw\n").returncode == 0
    )
    assert users_tool("check", path, "alice", "--password-stdin", stdin="nope\n").returncode == 1

    assert users_tool("passwd", path, "alice", "--password-stdin", stdin="second\n").returncode == 0
    users = load_users(Path(path))
    assert users.verify("alice", "second")
    assert not users.verify("alice", "first pw")
    assert users.verify("bob", "bob's")

    assert users_tool("remove", path, "bob").returncode == 0
    listed = users_tool("list", path)
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == ["alice"]
    assert sorted(os.listdir(tmp_path)) == ["users.txt"]


def test_users_tool_keeps_spaces_in_passwords(tmp_path: Path) -> None:
    path = str(tmp_path / "users.txt")
    users_tool("add", path, "alice", "--password-stdin", stdin=" padded \n")
    assert load_users(Path(path)).verify("alice", " padded ")


@pytest.mark.parametrize(
    "args",
    [
        ["passwd", "{file}", "carol", "--password-stdin"],
        ["remove", "{file}", "carol"],
        ["add", "{file}", "alice", "--password-stdin"],
        ["add", "{file}", "bad name", "--password-stdin"],
        ["list", "{missing}"],
    ],
)
def test_users_tool_refuses_and_changes_nothing(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "users.txt"
    users_tool("add", str(path), "alice", "--password-stdin", stdin="pw\n")
    before = path.read_text()
    filled = [a.format(file=path, missing=tmp_path / "missing.txt") for a in args]
    result = users_tool(*filled, stdin="other\n")
    assert result.returncode != 0
    assert result.stderr
    assert path.read_text() == before
