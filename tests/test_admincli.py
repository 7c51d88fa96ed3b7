"""`python -m rtcserver admin …`: the real command line against a real server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import orjson
import trio

from tests.conftest import StartServer
from tests.support.client import make_pair
from tests.support.process import ROOT
from tests.test_phone import login

TOKEN = "c" * 32


async def admin(port: int, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "RTCSERVER_ADMIN_TOKEN": token}
    command = [sys.executable, "-m", "rtcserver", "admin", "--url", f"http://127.0.0.1:{port}"]
    with trio.fail_after(30):
        return await trio.run_process(
            [*command, *args],
            env=env,
            cwd=ROOT,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_rooms_room_say_kick_and_close(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    port = server.port
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, f"ws://127.0.0.1:{port}/ws")
        listed = await admin(port, "rooms")
        assert listed.returncode == 0, listed.stderr
        header, row = listed.stdout.decode().splitlines()
        assert header.split()[:3] == ["ROOM", "MEMBERS", "CAPACITY"]
        assert row.split()[:3] == [str(room), "2", "2"]
        as_json = orjson.loads((await admin(port, "--json", "rooms")).stdout)
        [only] = as_json["rooms"]
        assert only["number"] == room
        one = await admin(port, "room", str(room))
        lines = one.stdout.decode().splitlines()
        assert lines[0].startswith(f"room {room}: 2 of 2 members")
        creator_id, joiner_id = (m["id"] for m in only["members"])
        assert lines[2].split()[0] == creator_id and lines[3].split()[0] == joiner_id

        # An id may begin with "-" (base64url): `--to=ID`, and `--` before positionals.
        said = await admin(port, "say", str(room), '{"text": "hello"}', f"--to={joiner_id}")
        assert said.stdout.decode().strip() == f"told 1 member(s) of room {room}", said.stderr
        assert (await joiner.expect("ADMIN"))["data"] == {"text": "hello"}

        kicked = await admin(port, "kick", "--", str(room), joiner_id)
        assert kicked.returncode == 0, kicked.stderr
        assert (await joiner.expect_close()).code == 4004
        await creator.expect("PEERLEFT")
        closed = await admin(port, "close", str(room))
        assert closed.stdout.decode().strip() == f"closed room {room}"
        assert (await creator.expect_close()).code == 4003


async def test_users_table(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    async with contextlib.AsyncExitStack() as stack:
        await login(stack, f"ws://127.0.0.1:{server.port}/ws", "alice")
        users = await admin(server.port, "users")
        assert users.stdout.decode().splitlines() == [
            "NAME   STATUS     CALL",
            "alice  available  -",
        ]


async def test_errors_are_one_line_and_a_status(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    missing = await admin(server.port, "room", "12")
    assert missing.returncode == 1
    assert missing.stderr.decode() == "rtcserver admin: 404: no room 12\n"
    wrong = await admin(server.port, "rooms", token="w" * 32)
    assert wrong.returncode == 1 and b"401" in wrong.stderr
    assert b"w" * 32 not in wrong.stderr
    no_token = await admin(server.port, "rooms", token="")
    assert no_token.returncode == 2 and b"RTCSERVER_ADMIN_TOKEN" in no_token.stderr
    bad_json = await admin(server.port, "say", "12", "{not json")
    assert bad_json.returncode == 1 and b"not JSON" in bad_json.stderr
    with trio.socket.socket() as unused:
        await unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    unreachable = await admin(dead_port, "rooms")
    assert unreachable.returncode == 1 and b"cannot reach" in unreachable.stderr
