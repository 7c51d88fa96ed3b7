"""Calling people by name over real sockets: LOGIN, the directory, and every call message."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import trio

from rtcserver.security import tokens
from tests.conftest import StartServer
from tests.support.client import DIRECTORY_TYPES, Client, connect

Stack = contextlib.AsyncExitStack


async def login(stack: Stack, url: str, name: str) -> Client:
    client = await stack.enter_async_context(connect(url))
    await client.send({"type": "LOGIN", "name": name})
    assert await client.expect("LOGIN") == {"type": "LOGIN", "success": True, "name": name}
    return client


async def until(client: Client, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of type `kind`, skipping directory updates on the way."""
    with trio.fail_after(timeout):
        while True:
            message = await client.recv(timeout)
            if message["type"] == kind:
                return message
            assert message["type"] in DIRECTORY_TYPES, message


async def call(caller: Client, callee: Client, to: str, media: str = "video") -> str:
    await caller.send({"type": "CALL", "to": to, "media": media})
    ringing = await until(caller, "RINGING")
    incoming = await until(callee, "INCOMINGCALL")
    assert incoming["call"] == ringing["call"] and incoming["media"] == media
    return str(ringing["call"])


async def test_login_gets_success_and_the_directory(start_server: StartServer) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        alice = await login(stack, url, "alice")
        assert (await alice.expect("USERS"))["type"] == "USERS"  # first, right after LOGIN
        await alice.directory_until(lambda d: d == {"alice": "available"})
        bob = await login(stack, url, "bob")
        await bob.expect("USERS")
        await bob.directory_until(lambda d: d == {"alice": "available", "bob": "available"})
        await alice.directory_until(lambda d: d.get("bob") == "available")
        async with connect(url) as carol:
            await carol.send({"type": "LOGIN", "name": "carol"})
            await carol.expect("LOGIN")
            await alice.directory_until(lambda d: "carol" in d)
        await alice.directory_until(lambda d: "carol" not in d)
        await bob.directory_until(lambda d: d == {"alice": "available", "bob": "available"})


async def test_duplicate_and_invalid_names_are_refused(start_server: StartServer) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        await login(stack, url, "alice")
        other = await stack.enter_async_context(connect(url))
        for name, reason in [
            ("alice", "name taken"),
            ("", "invalid name"),
            ("<b>x</b>", "invalid name"),
            ("a" * 33, "invalid name"),
            (7, "invalid name"),
        ]:
            await other.send({"type": "LOGIN", "name": name})
            reply = await other.expect("LOGIN")
            assert reply["success"] is False and reply["reason"].startswith(reason), reply
        await other.send({"type": "LOGIN", "name": "alice2"})
        assert (await other.expect("LOGIN"))["success"] is True
        await other.send({"type": "LOGIN", "name": "alice3"})
        assert (await until(other, "LOGIN"))["reason"].startswith("already logged in")


async def test_name_dies_with_the_connection(start_server: StartServer) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        watcher = await login(stack, url, "watcher")
        async with connect(url) as first:
            await first.send({"type": "LOGIN", "name": "dora"})
            await first.expect("LOGIN")
            await watcher.directory_until(lambda d: "dora" in d)
        await watcher.directory_until(lambda d: "dora" not in d)
        await login(stack, url, "dora")  # free again
        assert server.state.registry.statistics().names == 2


async def test_accepted_call_puts_both_in_a_private_room_that_relays(
    start_server: StartServer,
) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        alice, bob = await login(stack, url, "alice"), await login(stack, url, "bob")
        call_id = await call(alice, bob, "bob")
        await bob.send({"type": "ACCEPT", "call": call_id})
        a = await until(alice, "CALLACCEPTED")
        b = await until(bob, "CALLACCEPTED")
        assert a == b and a["call"] == call_id and isinstance(a["room"], int)
        assert len(server.state.registry.members(a["room"])) == 2
        await alice.send('{"type":"offer","sdp":"v=0 from alice"}')
        assert await bob.recv_relayed() == '{"type":"offer","sdp":"v=0 from alice"}'
        # Presence went in-call for both.
        await alice.send({"type": "HANGUP", "call": call_id})
        assert await until(bob, "HANGUP") == {"type": "HANGUP", "call": call_id}
        assert server.state.registry.members(a["room"]) == ()
        assert server.state.switchboard.status("alice").value == "available"


async def test_presence_updates_reach_the_directory(start_server: StartServer) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        watcher = await login(stack, url, "watcher")
        alice, bob = await login(stack, url, "alice"), await login(stack, url, "bob")
        await call(alice, bob, "bob")
        in_call = {"alice": "in-call", "bob": "in-call"}
        await watcher.directory_until(lambda d: d == {"watcher": "available"} | in_call)


async def test_reject_cancel_busy_and_unknown_user(start_server: StartServer) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        alice, bob = await login(stack, url, "alice"), await login(stack, url, "bob")
        carol = await login(stack, url, "carol")
        call_id = await call(alice, bob, "bob")
        await bob.send({"type": "REJECT", "call": call_id})
        assert await until(alice, "REJECTED") == {"type": "REJECTED", "call": call_id}

        call_id = await call(alice, bob, "bob", media="audio")
        await carol.send({"type": "CALL", "to": "bob", "media": "video"})
        assert await until(carol, "BUSY") == {"type": "BUSY", "to": "bob"}
        await alice.send({"type": "CANCEL", "call": call_id})
        assert await until(bob, "CANCELLED") == {"type": "CANCELLED", "call": call_id}

        await carol.send({"type": "CALL", "to": "nobody", "media": "video"})
        error = await until(carol, "ERROR")
        assert error["code"] == "unknown-user"


async def test_unanswered_call_times_out(start_server: StartServer) -> None:
    server = await start_server(ring_timeout=0.3)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        alice, bob = await login(stack, url, "alice"), await login(stack, url, "bob")
        call_id = await call(alice, bob, "bob")
        assert await until(alice, "NOANSWER") == {"type": "NOANSWER", "call": call_id}
        assert await until(bob, "CANCELLED") == {"type": "CANCELLED", "call": call_id}
        await bob.send({"type": "ACCEPT", "call": call_id})
        assert (await until(bob, "ERROR"))["code"] == "call-ended"


async def test_disconnect_while_ringing_is_a_cancel(start_server: StartServer) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        bob = await login(stack, url, "bob")
        async with connect(url) as alice:
            await alice.send({"type": "LOGIN", "name": "alice"})
            await alice.expect("LOGIN")
            await alice.send({"type": "CALL", "to": "bob", "media": "data"})
            call_id = (await until(bob, "INCOMINGCALL"))["call"]
        assert await until(bob, "CANCELLED") == {"type": "CANCELLED", "call": call_id}
        assert server.state.switchboard.statistics().ringing == 0


async def test_disconnect_mid_call_is_a_hangup_with_peerleft(start_server: StartServer) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        bob = await login(stack, url, "bob")
        async with connect(url) as alice:
            await alice.send({"type": "LOGIN", "name": "alice"})
            await alice.expect("LOGIN")
            call_id = await call(alice, bob, "bob")
            await bob.send({"type": "ACCEPT", "call": call_id})
            room = (await until(bob, "CALLACCEPTED"))["room"]
        await until(bob, "PEERLEFT")
        await until(bob, "HANGUP")
        await bob.directory_until(lambda d: d == {"bob": "available"})
        assert server.state.registry.members(room) == ()


async def test_call_control_needs_a_login(start_server: StartServer) -> None:
    server = await start_server()
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as anonymous:
        await anonymous.send({"type": "CALL", "to": "bob"})
        assert (await anonymous.expect("ERROR"))["code"] == "not-logged-in"


async def test_directory_can_be_turned_off(start_server: StartServer) -> None:
    server = await start_server(directory=False)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with Stack() as stack:
        alice = await login(stack, url, "alice")
        await login(stack, url, "bob")
        await alice.expect_nothing()  # no USERS, no USERJOINED


async def test_login_name_must_match_the_token(start_server: StartServer) -> None:
    secret = "k" * 40
    server = await start_server(auth_secret=secret)
    minted = tokens.mint(secret, tokens.Claims(exp=int(time.time()) + 60, sub="erin"))
    async with connect(f"ws://127.0.0.1:{server.port}/ws?token={minted}") as client:
        await client.send({"type": "LOGIN", "name": "mallory"})
        reply = await client.expect("LOGIN")
        assert reply["success"] is False and reply["reason"].startswith("auth failed")
        await client.send({"type": "LOGIN", "name": "erin"})
        assert (await client.expect("LOGIN"))["success"] is True


async def test_two_hundred_concurrent_calls(start_server: StartServer) -> None:
    server = await start_server(max_connections=1000, rate_limit=0, directory=False)
    url = f"ws://127.0.0.1:{server.port}/ws"
    pairs = 200
    async with Stack() as stack:
        callers = [await login(stack, url, f"caller{i}") for i in range(pairs)]
        callees = [await login(stack, url, f"callee{i}") for i in range(pairs)]
        rooms: list[int] = []

        async def one_call(i: int) -> None:
            call_id = await call(callers[i], callees[i], f"callee{i}")
            await callees[i].send({"type": "ACCEPT", "call": call_id})
            room = (await until(callers[i], "CALLACCEPTED"))["room"]
            await until(callees[i], "CALLACCEPTED")
            await callers[i].send(f'{{"type":"offer","n":{i}}}')
            assert await callees[i].recv_relayed() == f'{{"type":"offer","n":{i}}}'
            rooms.append(room)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(pairs):
                    nursery.start_soon(one_call, i)
        assert len(set(rooms)) == pairs
        assert server.state.switchboard.statistics().active == pairs
