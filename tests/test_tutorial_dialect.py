"""The tutorial dialect over real sockets, beside the book protocol and the phone page.

Every test runs the three on one server at once: a book-protocol pair in a room, a
phone-page (LOGIN) user, and dialect clients that connect as the tutorials' pages do
(`ws://host:port`, path `/`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import attrs
import orjson
import trio

from tests.conftest import StartServer
from tests.faults.wsclient import WsClient
from tests.support.client import Client, connect, make_pair

Stack = contextlib.AsyncExitStack


@attrs.define
class World:
    """One server with every kind of client on it."""

    url: str  # the tutorials' own address: no path
    book: tuple[Client, Client]
    phone: Client
    stack: Stack

    async def dialect(self, name: str | None = None) -> Client:
        client = await self.stack.enter_async_context(connect(self.url))
        if name is not None:
            await client.send({"type": "login", "name": name})
            assert await client.recv() == {"type": "login", "success": True}
        return client

    async def book_still_relays(self) -> None:
        """The book pair is untouched: a message goes through verbatim."""
        creator, joiner = self.book
        text = '{"type":"offer","sdp":"book"}'
        await creator.send(text)
        assert await joiner.recv_relayed() == text


@contextlib.asynccontextmanager
async def world(start_server: StartServer, **settings: Any) -> AsyncIterator[World]:
    server = await start_server(**settings)
    async with Stack() as stack:
        creator, joiner, _room = await make_pair(stack, f"ws://127.0.0.1:{server.port}/ws")
        phone = await stack.enter_async_context(connect(f"ws://127.0.0.1:{server.port}/ws"))
        await phone.send({"type": "LOGIN", "name": "paula"})
        assert (await phone.expect("LOGIN"))["success"] is True
        yield World(f"ws://127.0.0.1:{server.port}", (creator, joiner), phone, stack)


async def call(caller: Client, callee: Client, callee_name: str, caller_name: str) -> None:
    """The tutorial's call: an offer by name, answered by name."""
    await caller.send(
        {"type": "offer", "offer": {"type": "offer", "sdp": "v=0"}, "name": callee_name}
    )
    assert await callee.recv() == {
        "type": "offer",
        "offer": {"type": "offer", "sdp": "v=0"},
        "name": caller_name,
    }
    await callee.send(
        {"type": "answer", "answer": {"type": "answer", "sdp": "a"}, "name": caller_name}
    )
    assert await caller.recv() == {"type": "answer", "answer": {"type": "answer", "sdp": "a"}}


async def test_login_offer_answer_candidate_leave(start_server: StartServer) -> None:
    async with world(start_server) as w:
        alice, bob = await w.dialect("alice"), await w.dialect("bob")
        await call(alice, bob, "bob", "alice")
        candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
        await alice.send({"type": "candidate", "candidate": candidate, "name": "bob"})
        assert await bob.recv() == {"type": "candidate", "candidate": candidate}
        await bob.send({"type": "candidate", "candidate": candidate, "name": "alice"})
        assert await alice.recv() == {"type": "candidate", "candidate": candidate}
        await alice.send({"type": "leave", "name": "bob"})
        assert await bob.recv() == {"type": "leave"}
        await w.book_still_relays()
        await alice.expect_nothing()


async def test_a_closed_socket_gives_its_partner_leave(start_server: StartServer) -> None:
    async with world(start_server) as w:
        bob = await w.dialect("bob")
        async with connect(w.url) as alice:
            await alice.send({"type": "login", "name": "alice"})
            assert await alice.recv() == {"type": "login", "success": True}
            await call(alice, bob, "bob", "alice")
        assert await bob.recv() == {"type": "leave"}
        # After a leave, bob's own close tells nobody, and his name is free again.
        async with connect(w.url) as carol:
            await carol.send({"type": "login", "name": "alice"})
            assert await carol.recv() == {"type": "login", "success": True}


async def test_the_callee_closing_tells_the_caller_and_a_hung_up_call_tells_nobody(
    start_server: StartServer,
) -> None:
    async with world(start_server) as w:
        alice = await w.dialect("alice")
        async with connect(w.url) as bob:
            await bob.send({"type": "login", "name": "bob"})
            assert await bob.recv() == {"type": "login", "success": True}
            await call(alice, bob, "bob", "alice")
            await bob.send({"type": "leave", "name": "alice"})
            assert await alice.recv() == {"type": "leave"}
        await alice.expect_nothing()  # the call was over: bob's close is no second leave


async def test_names_share_one_namespace_with_login(start_server: StartServer) -> None:
    async with world(start_server) as w:
        taken = await w.dialect()
        await taken.send({"type": "login", "name": "paula"})  # the phone user's name
        assert await taken.recv() == {"type": "login", "success": False}
        error = await taken.recv()
        assert error["type"] == "error" and "name taken" in error["message"]
        await taken.send({"type": "login", "name": "pauIa"})  # capital I for l: looks alike
        assert await taken.recv() == {"type": "login", "success": False}
        assert "looks like" in (await taken.recv())["message"]
        await taken.send({"type": "login", "name": "dora"})
        assert await taken.recv() == {"type": "login", "success": True}
        # ... and a phone user cannot take a dialect user's name either.
        other = await w.stack.enter_async_context(connect(w.url + "/ws"))
        await other.send({"type": "LOGIN", "name": "dora"})
        refused = await other.expect("LOGIN")
        assert refused["success"] is False and refused["reason"] == "name taken"


async def test_missing_or_bad_names_get_errors_and_the_connection_stays(
    start_server: StartServer,
) -> None:
    async with world(start_server) as w:
        client = await w.dialect()
        for bad, problem in [
            ({"type": "login"}, "'name'"),
            ({"type": "login", "name": 7}, "'name'"),
            ({"type": "login", "name": "<b>x</b>"}, "invalid name"),
            ({"type": "login", "name": "a" * 33}, "longer than 32"),
        ]:
            await client.send(bad)
            assert await client.recv() == {"type": "login", "success": False}
            error = await client.recv()
            assert error["type"] == "error" and problem in error["message"], (bad, error)
        await client.send({"type": "offer", "offer": "o", "name": "x"})
        assert await client.recv() == {"type": "error", "message": "offer: log in first"}
        await client.send({"type": "login", "name": "eve"})
        assert await client.recv() == {"type": "login", "success": True}
        for bad, problem in [
            ({"type": "offer", "offer": "o"}, "offer: 'name' must be a non-empty string"),
            ({"type": "answer", "answer": "a", "name": ""}, "'name' must be"),
            ({"type": "candidate", "candidate": "c", "name": ["x"]}, "'name' must be"),
            ({"type": "leave"}, "leave: 'name'"),
            ({"type": "offer", "name": "paula"}, "'offer' is missing"),
            ({"type": "login", "name": "eve2"}, "already logged in"),
        ]:
            await client.send(bad)
            error = await client.recv()
            assert error["type"] == "error" and problem in error["message"], (bad, error)
        await w.book_still_relays()


async def test_unknown_types_and_non_json(start_server: StartServer) -> None:
    async with world(start_server) as w:
        client = await w.dialect("frank")
        await client.send({"type": "dance"})
        assert await client.recv() == {"type": "error", "message": "Command not found: dance"}
        await client.send({"type": "GETROOM", "value": ""})  # a dialect connection stays one
        assert await client.recv() == {"type": "error", "message": "Command not found: GETROOM"}
        await client.send("not json")
        error = await client.recv()
        assert error["type"] == "error" and "not valid JSON" in error["message"]
        await client.send(orjson.dumps([1, 2]).decode())
        assert "JSON objects" in (await client.recv())["message"]
        await client.send({"type": "dance"})  # still open
        assert (await client.recv())["message"] == "Command not found: dance"


async def test_an_unknown_callee_gets_an_error_and_no_call_starts(
    start_server: StartServer,
) -> None:
    async with world(start_server) as w:
        alice = await w.dialect("alice")
        await alice.send({"type": "offer", "offer": "o", "name": "nobody"})
        error = await alice.recv()
        assert error == {
            "type": "error",
            "message": "offer not delivered: no user named 'nobody' is logged in",
        }
        # A user who later takes that name hears no stray leave when alice goes.
        nobody = await w.dialect("nobody")
        await alice.ws.aclose()
        await nobody.expect_nothing()


async def test_phone_and_dialect_calls_are_refused_with_a_reason(start_server: StartServer) -> None:
    async with world(start_server) as w:
        alice = await w.dialect("alice")
        await alice.send({"type": "offer", "offer": "o", "name": "paula"})
        error = await alice.recv()
        assert error["type"] == "error" and "phone page" in error["message"]
        await w.phone.send({"type": "CALL", "to": "alice", "media": "video"})
        while (reply := await w.phone.recv())["type"] in ("USERS", "DIRECTORY"):
            pass
        assert reply["type"] == "ERROR" and reply["code"] == "other-dialect", reply
        await alice.expect_nothing()  # nothing rang (no INCOMINGCALL in a foreign shape)
        await w.phone.directory_until(lambda d: d.get("alice") == "available")


async def test_the_directory_shows_dialect_users_and_their_calls(start_server: StartServer) -> None:
    async with world(start_server, presence_interval=0.05) as w:
        phone = w.phone
        await phone.directory_until(lambda d: d == {"paula": "available"})
        alice, bob = await w.dialect("alice"), await w.dialect("bob")
        await phone.directory_until(
            lambda d: d == {"paula": "available", "alice": "available", "bob": "available"}
        )
        await call(alice, bob, "bob", "alice")
        await phone.directory_until(
            lambda d: d.get("alice") == "in-call" and d.get("bob") == "in-call"
        )
        await alice.send({"type": "leave", "name": "bob"})
        assert await bob.recv() == {"type": "leave"}
        await phone.directory_until(
            lambda d: d.get("alice") == "available" and d.get("bob") == "available"
        )
        await bob.ws.aclose()
        await phone.directory_until(lambda d: "bob" not in d and d.get("alice") == "available")
        await alice.expect_nothing()  # dialect users get no directory frames


async def test_a_dialect_flooder_is_throttled_like_anyone(start_server: StartServer) -> None:
    async with world(start_server, rate_limit=20.0, rate_burst=5) as w:
        alice, bob = await w.dialect("alice"), await w.dialect("bob")
        started = trio.current_time()
        for n in range(25):
            await alice.send({"type": "candidate", "candidate": n, "name": "bob"})
        for n in range(25):
            assert await bob.recv() == {"type": "candidate", "candidate": n}  # none dropped
        # 20 beyond the burst of 5 at 20 per second: at least about a second of waiting.
        assert trio.current_time() - started > 0.8


async def test_a_dialect_message_over_the_size_limit_closes_only_that_socket(
    start_server: StartServer,
) -> None:
    async with world(start_server, max_message_size=4096) as w:
        bob = await w.dialect("bob")
        async with connect(w.url) as alice:
            await alice.send({"type": "login", "name": "alice"})
            assert await alice.recv() == {"type": "login", "success": True}
            await call(alice, bob, "bob", "alice")
            await alice.send({"type": "candidate", "candidate": "x" * 5000, "name": "bob"})
            assert (await alice.expect_close()).code == 1009
        assert await bob.recv() == {"type": "leave"}
        await w.book_still_relays()


async def test_the_server_counts_dialect_errors(start_server: StartServer) -> None:
    server = await start_server()
    async with connect(f"ws://127.0.0.1:{server.port}") as client:
        await client.send({"type": "login", "name": "gina"})
        assert await client.recv() == {"type": "login", "success": True}
        await client.send({"type": "dance"})
        await client.recv()  # counted before it was sent
        assert server.state.counters["error:dialect"] == 1


async def test_a_silent_dialect_socket_is_dropped_by_keepalive_and_its_partner_hears_leave(
    start_server: StartServer,
) -> None:
    async with world(start_server, keepalive_interval=0.2, keepalive_timeout=0.5) as w:
        bob = await w.dialect("bob")
        alice = await WsClient.connect(int(w.url.rsplit(":", 1)[1]), path="/")
        await alice.send_json({"type": "login", "name": "alice"})
        assert orjson.loads(await alice.recv()) == {"type": "login", "success": True}
        await bob.send({"type": "offer", "offer": "o", "name": "alice"})
        assert orjson.loads(await alice.recv())["name"] == "bob"
        # alice reads nothing more, so she answers no ping: close 4001, as anyone.
        assert await bob.recv(timeout=5.0) == {"type": "leave"}
        await w.book_still_relays()
        alice.abort()
