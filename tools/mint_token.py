"""Mint an rtcserver access token (a HS256 JWT) for testing or for a trusted front end.

    python tools/mint_token.py --name alice --rooms 12,34 --ttl 3600

The secret is read from $RTCSERVER_AUTH_SECRET, or from --secret (visible to other
local users in the process list, so prefer the environment). Prints the token alone
on stdout, so `TOKEN=$(python tools/mint_token.py ...)` works.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from rtcserver.security.tokens import Claims, mint

SECRET_ENV = "RTCSERVER_AUTH_SECRET"


def parse_rooms(text: str) -> list[int]:
    try:
        return [int(room) for room in text.split(",") if room.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"rooms are comma-separated numbers, not {text!r}"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", help=f"the shared secret (default: ${SECRET_ENV})")
    parser.add_argument(
        "--name",
        help="the user name (`sub` claim), the only name LOGIN accepts; omit for an "
        "anonymous token (rooms only, no LOGIN)",
    )
    parser.add_argument(
        "--rooms",
        type=parse_rooms,
        help="comma-separated room numbers, the only rooms the holder may enter (no "
        "GETROOM, no calls); omit for any room",
    )
    parser.add_argument(
        "--ttl",
        type=int,
        default=3600,
        help="seconds until the token expires (default %(default)s)",
    )
    args = parser.parse_args(argv)
    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        parser.error(f"give --secret or set {SECRET_ENV}")
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    now = int(time.time())
    claims = Claims(exp=now + args.ttl, iat=now, sub=args.name, rooms=args.rooms)
    try:
        print(mint(secret, claims))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
