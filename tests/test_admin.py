"""The admin REST API (docs/API.md) against a real server on a real socket."""

from __future__ import annotations

import contextlib
import logging
import time

import orjson
import pytest
import trio

from tests.conftest import StartServer
from tests.support import owners
from tests.support.client import make_pair
from tests.support.waiting import eventually
from tests.test_http import body_of, get, http_exchange, status_of
from tests.test_phone import call as phone_call
from tests.test_phone import login
from tests.test_resume import call

TOKEN = "a" * 32
AUTH = f"Authorization: Bearer {TOKEN}\r\n"


async def api(port: int, path: str, method: str = "GET", auth: str = AUTH) -> tuple[int, object]:
    reply = await http_exchange(port, get(path, method, auth))
    return status_of(reply), orjson.loads(body_of(reply)) if body_of(reply) else None


async def test_api_is_404_without_admin_token(start_server: StartServer) -> None:
    server = await start_server()
    for path in ("/api/v1/rooms", "/api/", "/api/v1/openapi.json"):
        reply = await http_exchange(server.port, get(path, "GET", AUTH))
        assert status_of(reply) == 404


async def test_api_refuses_missing_or_wrong_token(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    assert (await api(server.port, "/api/v1/rooms", auth=""))[0] == 401
    assert (await api(server.port, "/api/v1/rooms", auth="Authorization: Bearer x\r\n"))[0] == 401
    status, body = await api(server.port, "/api/v1/rooms")
    assert status == 200 and isinstance(body, dict)
    assert (body["rooms"], body["next_cursor"]) == ([], None)
    refused = sum(w.state.counters["refused:admin-token"] for w in owners.workers_of(server))
    assert refused == 2


async def test_list_get_and_close_room(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, url)
        status, body = await api(server.port, "/api/v1/rooms")
        assert status == 200
        assert isinstance(body, dict)
        [listed] = body["rooms"]
        assert listed["number"] == room and len(listed["members"]) == 2
        status, one = await api(server.port, f"/api/v1/rooms/{room}")
        assert status == 200 and one == listed
        status, _ = await api(server.port, f"/api/v1/rooms/{room}", "DELETE")
        assert status == 200
        for client in (creator, joiner):
            closed = await client.expect_close()
            assert closed.code == 4003
            assert closed.reason == "The room was closed"
    status, _ = await api(server.port, f"/api/v1/rooms/{room}")
    assert status == 404


async def test_remove_member_others_get_peerleft(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, url)
        _, one = await api(server.port, f"/api/v1/rooms/{room}")
        assert isinstance(one, dict)
        ids = [m["id"] for m in one["members"]]
        # The joiner entered second: the roster lists members in the order they came.
        status, _ = await api(server.port, f"/api/v1/rooms/{room}/members/{ids[1]}", "DELETE")
        assert status == 200
        closed = await joiner.expect_close()
        assert closed.code == 4004
        await creator.expect("PEERLEFT")


async def test_bad_paths_methods_and_parameters(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    port = server.port
    assert (await api(port, "/api/v1/nothing"))[0] == 404
    assert (await api(port, "/api/v2/rooms"))[0] == 404
    assert (await api(port, "/api/v1/rooms", "DELETE"))[0] == 405
    assert (await api(port, "/api/v1/rooms/12", "PUT"))[0] == 405
    assert (await api(port, "/api/v1/rooms/x"))[0] == 400
    assert (await api(port, "/api/v1/rooms/12"))[0] == 404
    assert (await api(port, "/api/v1/rooms/12/members/z", "DELETE"))[0] == 404
    status, body = await api(port, "/api/v1/rooms?limit=0")
    assert status == 400 and isinstance(body, dict) and "limit" in body["error"]


async def test_removal_cannot_be_undone_by_resume(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN, resume_grace=30.0)
    async with call(server) as (a, b, room):
        _, one = await api(server.port, f"/api/v1/rooms/{room}")
        assert isinstance(one, dict)
        creator_id = one["members"][0]["id"]
        status, _ = await api(server.port, f"/api/v1/rooms/{room}/members/{creator_id}", "DELETE")
        assert status == 200
        await b.expect("PEERLEFT")  # not PEERAWAY: the session did not wait
        a2 = await a.resume_on(server.port)
        assert (await a2.expect("ERROR"))["code"] == "resume-failed"
        await a2.client.close()


async def test_tokens_never_appear_in_logs(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server(admin_token=TOKEN)
    wrong = "w" * 32
    assert (await api(server.port, "/api/v1/rooms", auth=f"Authorization: Bearer {wrong}\r\n"))[
        0
    ] == 401
    assert (await api(server.port, "/api/v1/rooms"))[0] == 200
    assert "refused" in caplog.text
    assert TOKEN not in caplog.text and wrong not in caplog.text


def post(path: str, body: bytes, extra: str = "", length: bool = True) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\n{AUTH}{extra}"
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "Content-Type: application/json\r\n\r\n").encode() + body


async def api_post(port: int, path: str, value: object) -> tuple[int, object]:
    reply = await http_exchange(port, post(path, orjson.dumps(value)))
    return status_of(reply), orjson.loads(body_of(reply))


async def test_posted_message_reaches_every_member_as_admin(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, f"ws://127.0.0.1:{server.port}/ws")
        greeting = {"text": "the meeting ends in 5 minutes", "n": [1, 2]}
        status, body = await api_post(
            server.port, f"/api/v1/rooms/{room}/messages", {"data": greeting}
        )
        assert (status, body) == (200, {"room": room, "delivered": 2})
        for client in (creator, joiner):
            assert await client.expect("ADMIN") == {"type": "ADMIN", "data": greeting}


async def test_posted_message_to_one_member_reaches_only_it(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, f"ws://127.0.0.1:{server.port}/ws")
        _, one = await api(server.port, f"/api/v1/rooms/{room}")
        assert isinstance(one, dict)
        creator_id = one["members"][0]["id"]
        path = f"/api/v1/rooms/{room}/messages"
        status, body = await api_post(server.port, path, {"data": {"n": 1}, "to": creator_id})
        assert (status, body) == (200, {"room": room, "delivered": 1})
        assert (await creator.expect("ADMIN"))["data"] == {"n": 1}
        await api_post(server.port, path, {"data": {"n": 2}})
        # The joiner's first ADMIN is the second one: the first was not for it.
        assert (await joiner.expect("ADMIN"))["data"] == {"n": 2}
        status, body = await api_post(server.port, path, {"data": {}, "to": "nobody"})
        assert status == 404 and isinstance(body, dict) and "nobody" in body["error"]


async def test_a_client_cannot_forge_an_admin_message(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, _ = await make_pair(stack, f"ws://127.0.0.1:{server.port}/ws")
        await joiner.send({"type": "ADMIN", "data": {"text": "forged"}})
        assert (await joiner.expect("ERROR"))["code"] == "reserved-type"
        await joiner.send({"type": "offer", "sdp": "x"})
        # What the creator gets next is the offer: the forged ADMIN was never relayed.
        assert (await creator.recv())["type"] == "offer"


async def test_message_bodies_are_bounded_and_checked(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN, max_message_size=1024)
    port = server.port
    async with contextlib.AsyncExitStack() as stack:
        _, _, room = await make_pair(stack, f"ws://127.0.0.1:{port}/ws")
        path = f"/api/v1/rooms/{room}/messages"

        async def refused(request: bytes) -> tuple[int, str]:
            reply = await http_exchange(port, request)
            error = orjson.loads(body_of(reply))["error"]
            assert isinstance(error, str)
            return status_of(reply), error

        status, error = await refused(post(path, b'{"data":{}}', length=False))
        assert status == 411 and "Content-Length" in error
        chunked = post(path, b"", "Transfer-Encoding: chunked\r\n", length=False) + b"0\r\n\r\n"
        assert (await refused(chunked))[0] == 411
        status, error = await refused(post(path, b'{"data":{"x":"' + b"y" * 2000 + b'"}}'))
        assert status == 413 and "1024" in error
        assert (await refused(post(path, b"not json")))[0] == 400
        status, error = await refused(post(path, b"[1]"))
        assert status == 400 and "object" in error
        status, error = await refused(post(path, b'{"text":"hi"}'))
        assert status == 400 and "text" in error
        status, error = await refused(post(path, b'{"data":"hi"}'))
        assert status == 400 and "data" in error
        assert (await refused(post("/api/v1/rooms/12/messages", b'{"data":{}}')))[0] == 404
        assert (await api(port, path))[0] == 405


async def test_message_body_after_100_continue(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    async with contextlib.AsyncExitStack() as stack:
        creator, _, room = await make_pair(stack, f"ws://127.0.0.1:{server.port}/ws")
        body = b'{"data":{"late":true}}'
        request = post(f"/api/v1/rooms/{room}/messages", body, "Expect: 100-continue\r\n")
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(request[: -len(body)])
            with trio.fail_after(5):
                assert (await stream.receive_some(1000)).startswith(b"HTTP/1.1 100 ")
                await stream.send_all(body)
                reply = b""
                while chunk := await stream.receive_some(65536):
                    reply += chunk
        assert status_of(reply) == 200
        assert (await creator.expect("ADMIN"))["data"] == {"late": True}


async def test_room_listing_has_created_at_and_bytes_relayed(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    before = time.time()
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, room = await make_pair(stack, f"ws://127.0.0.1:{server.port}/ws")
        offer = '{"type":"offer","sdp":"v=0 a fake offer"}'
        await joiner.send(offer)
        assert await creator.recv_text() == offer  # counted before it was told
        _, one = await api(server.port, f"/api/v1/rooms/{room}")
        assert isinstance(one, dict)
        assert before <= one["created_at"] <= time.time()
        assert one["bytes_relayed"] == len(offer)


async def test_users_lists_names_status_and_call_a_page_at_a_time(
    start_server: StartServer,
) -> None:
    server = await start_server(admin_token=TOKEN)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        alice = await login(stack, url, "alice")
        bob = await login(stack, url, "bob")
        await login(stack, url, "carol")
        call_id = await phone_call(alice, bob, "bob")
        status, body = await api(server.port, "/api/v1/users?limit=2")
        assert status == 200
        assert body == {
            "users": [
                {
                    "name": "alice",
                    "status": "in-call",
                    "call": {"id": call_id, "state": "ringing", "with": "bob", "room": None},
                },
                {
                    "name": "bob",
                    "status": "in-call",
                    "call": {"id": call_id, "state": "ringing", "with": "alice", "room": None},
                },
            ],
            "next_cursor": "bob",
        }
        status, body = await api(server.port, "/api/v1/users?limit=2&cursor=bob")
        assert body == {
            "users": [{"name": "carol", "status": "available", "call": None}],
            "next_cursor": None,
        }
        assert (await api(server.port, "/api/v1/users?limit=x"))[0] == 400
        assert (await api(server.port, "/api/v1/users", "POST"))[0] == 405


async def test_signing_out_a_user_closes_its_connection_with_4005(
    start_server: StartServer,
) -> None:
    server = await start_server(admin_token=TOKEN)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        await login(stack, url, "alice")
        carol = await login(stack, url, "carol")
        status, body = await api(server.port, "/api/v1/users/carol", "DELETE")
        assert (status, body) == (200, {"signed_out": "carol"})
        closed = await carol.expect_close()
        assert (closed.code, closed.reason) == (4005, "Signed out by the server")

        async def carol_gone() -> bool:
            _, users = await api(server.port, "/api/v1/users")
            assert isinstance(users, dict)
            return [u["name"] for u in users["users"]] == ["alice"]

        await eventually(carol_gone, 5, "carol gone from the directory")
        status, body = await api(server.port, "/api/v1/users/carol", "DELETE")
        assert status == 404 and isinstance(body, dict) and "carol" in body["error"]


async def test_a_slow_or_cut_body_is_refused_naming_it(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN, handshake_timeout=0.5)
    request = post("/api/v1/rooms/12/messages", b'{"data":{}}')
    for cut in (False, True):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(request[:-5])
            if cut:
                await stream.send_eof()
            reply = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    reply += chunk
        error = orjson.loads(body_of(reply))["error"]
        if cut:
            assert status_of(reply) == 400 and "ended after" in error
        else:
            assert status_of(reply) == 408 and "0.5s" in error
