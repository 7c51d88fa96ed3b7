"""`python -m rtcserver admin …`: the admin REST API (docs/API.md) from a shell.

    rooms | room N | close N | kick N ID | say N JSON [--to ID] | users

Talks to a running server at `--url` (env RTCSERVER_ADMIN_URL) with the token from
RTCSERVER_ADMIN_TOKEN (the server's own variable, so one `export` serves both; never a
flag, where `ps` would show it). Prints tables for people, or with `--json` the API's
own JSON. Exit status: 0 done, 1 the server refused or could not be reached, 2 usage.
Uses only the standard library: the API is a handful of small HTTP/1.1 requests.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from .config import ENV_PREFIX
from .settings import Settings

TOKEN_ENV = ENV_PREFIX + "ADMIN_TOKEN"
URL_ENV = ENV_PREFIX + "ADMIN_URL"
TIMEOUT = 10.0


class Refused(Exception):
    """The server answered with an error, or could not be reached: one line to print."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rtcserver admin",
        description=f"Act on a running rtcserver through its admin API. The token is read "
        f"from {TOKEN_ENV}.",
    )
    default_url = os.environ.get(URL_ENV) or f"http://127.0.0.1:{Settings().port}"
    parser.add_argument(
        "--url", default=default_url, help=f"the server (env {URL_ENV}; default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON answers")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("rooms", help="list the rooms")
    commands.add_parser("room", help="one room and its members").add_argument("number", type=int)
    commands.add_parser("close", help="close a room (members: 4003)").add_argument(
        "number", type=int
    )
    kick = commands.add_parser("kick", help="remove a member from a room (4004)")
    kick.add_argument("number", type=int)
    kick.add_argument("member", help="the member id (see `room N`)")
    say = commands.add_parser("say", help="post an ADMIN message to a room's members")
    say.add_argument("number", type=int)
    say.add_argument("data", help='a JSON object, e.g. \'{"text": "closing soon"}\'')
    say.add_argument("--to", help="only this member id")
    commands.add_parser("users", help="list the logged-in users")
    return parser


def request(url: str, token: str, method: str, path: str, body: object = None) -> Any:
    """One API call: its JSON answer, or Refused naming the problem."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    call = urllib.request.Request(url.rstrip("/") + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(call, timeout=TIMEOUT) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        try:
            problem = json.loads(error.read()).get("error", error.reason)
        except (ValueError, AttributeError):
            problem = error.reason
        raise Refused(f"{error.code}: {problem}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise Refused(f"cannot reach {url}: {reason}") from None


def every_page(url: str, token: str, path: str, key: str) -> list[Any]:
    """All items of a paged list, following `next_cursor`."""
    items: list[Any] = []
    cursor = None
    while True:
        query = "?limit=1000" + (f"&cursor={urllib.parse.quote(str(cursor))}" if cursor else "")
        page = request(url, token, "GET", path + query)
        items += page[key]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, the header first."""
    cells = [list(header), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def when(created_at: float | None) -> str:
    if created_at is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(created_at, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def show_rooms(rooms: list[dict[str, Any]]) -> str:
    if not rooms:
        return "no rooms"
    rows = [
        (
            r["number"],
            len(r["members"]),
            r["capacity"],
            when(r["created_at"]),
            size(r["bytes_relayed"]),
        )
        for r in rooms
    ]
    return table(("ROOM", "MEMBERS", "CAPACITY", "CREATED (UTC)", "RELAYED"), rows)


def show_room(room: dict[str, Any]) -> str:
    head = (
        f"room {room['number']}: {len(room['members'])} of {room['capacity']} members, "
        f"created {when(room['created_at'])} UTC, {size(room['bytes_relayed'])} relayed"
    )
    members = [(m["id"], m["name"] or "-") for m in room["members"]]
    return head + "\n" + table(("MEMBER", "NAME"), members)


def show_users(users: list[dict[str, Any]]) -> str:
    if not users:
        return "no users online"
    rows = []
    for user in users:
        call = user["call"]
        described = "-" if call is None else f"{call['state']} with {call['with']}"
        rows.append((user["name"], user["status"], described))
    return table(("NAME", "STATUS", "CALL"), rows)


def run(args: argparse.Namespace, token: str) -> str:
    """Carry out one command; the text to print."""
    url = args.url
    match args.command:
        case "rooms":
            rooms = every_page(url, token, "/api/v1/rooms", "rooms")
            return json.dumps({"rooms": rooms}) if args.json else show_rooms(rooms)
        case "users":
            users = every_page(url, token, "/api/v1/users", "users")
            return json.dumps({"users": users}) if args.json else show_users(users)
        case "room":
            room = request(url, token, "GET", f"/api/v1/rooms/{args.number}")
            return json.dumps(room) if args.json else show_room(room)
        case "close":
            done = request(url, token, "DELETE", f"/api/v1/rooms/{args.number}")
            return json.dumps(done) if args.json else f"closed room {args.number}"
        case "kick":
            member = urllib.parse.quote(args.member, safe="")
            path = f"/api/v1/rooms/{args.number}/members/{member}"
            done = request(url, token, "DELETE", path)
            return (
                json.dumps(done) if args.json else f"removed {args.member} from room {args.number}"
            )
        case "say":
            try:
                data = json.loads(args.data)
            except ValueError:
                raise Refused("the message is not JSON") from None
            body: dict[str, Any] = {"data": data}
            if args.to is not None:
                body["to"] = args.to
            done = request(url, token, "POST", f"/api/v1/rooms/{args.number}/messages", body)
            if args.json:
                return json.dumps(done)
            return f"told {done['delivered']} member(s) of room {done['room']}"
    raise AssertionError(f"unknown command {args.command}")


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"rtcserver admin: set {TOKEN_ENV} to the server's admin token", file=sys.stderr)
        return 2
    try:
        print(run(args, token))
    except Refused as refused:
        print(f"rtcserver admin: {refused}", file=sys.stderr)
        return 1
    return 0
