"""Manage an rtcserver users file (salted scrypt hashes, one `name:hash` line per user).

    python tools/users.py add users.txt alice          # prompts for the password twice
    echo "$PW" | python tools/users.py passwd users.txt alice --password-stdin
    python tools/users.py remove users.txt alice
    python tools/users.py list users.txt
    python tools/users.py check users.txt alice        # exit status 0 if it matches

Every change rewrites the file atomically with owner-only permissions. Two changes
made at the same moment are not merged: the last one wins.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from rtcserver.security.passwords import (
    Users,
    UsersFileError,
    hash_password,
    load_users,
    save_users,
)


def read_password(args: argparse.Namespace, confirm: bool) -> str:
    if args.password_stdin:
        # One line; only the line ending is removed, spaces are part of the password.
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass(f"Password for {args.name}: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise SystemExit("the passwords differ; nothing changed")
    return password


def load(path: Path, missing_ok: bool) -> Users:
    if missing_ok and not path.exists():
        return Users()
    return load_users(path)


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if args.command == "list":
        for name in sorted(load(path, missing_ok=False)):
            print(name)
        return 0
    users = load(path, missing_ok=args.command == "add")
    if args.command == "add" and args.name in users:
        raise SystemExit(f"{args.name} already exists; use `passwd` to change the password")
    if args.command in ("passwd", "remove", "check") and args.name not in users:
        raise SystemExit(f"no user {args.name} in {path}")
    if args.command == "remove":
        save_users(path, users.without(args.name))
        return 0
    if args.command == "check":
        return 0 if users.verify(args.name, read_password(args, confirm=False)) else 1
    password = read_password(args, confirm=True)
    save_users(path, users.with_password(args.name, hash_password(password)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Passwords are never taken on the command line, where `ps` would show them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, help_text in [
        ("add", "add a user (creates FILE if needed)"),
        ("passwd", "change a user's password"),
        ("remove", "remove a user"),
        ("check", "exit 0 if the password is right, 1 if not"),
        ("list", "print the user names"),
    ]:
        sub = commands.add_parser(command, help=help_text)
        sub.add_argument("file", type=Path, metavar="FILE")
        if command != "list":
            sub.add_argument("name", metavar="NAME")
        if command in ("add", "passwd", "check"):
            sub.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from the first line of stdin instead of a prompt",
            )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (UsersFileError, ValueError, OSError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
