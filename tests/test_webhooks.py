"""Webhooks: a real server POSTs its events to a real receiver (a small Trio HTTP server);
every delivery is checked by an independent Standard Webhooks verifier."""

from __future__ import annotations

import base64
import contextlib
import os
from typing import Any

import pytest
import trio
from standardwebhooks import Webhook

from rtcserver.config import load_settings
from tests.conftest import StartServer
from tests.support.client import connect, make_pair
from tests.support.receiver import Delivery, running_receiver
from tests.support.waiting import eventually
from tests.test_admin import TOKEN, api
from tests.test_http import body_of, get, http_exchange
from tests.test_phone import call as phone_call
from tests.test_phone import login, until
from tests.test_resume import call

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def verified(deliveries: list[Delivery]) -> list[dict[str, Any]]:
    """Each event, once the verifier has accepted its signature."""
    verifier = Webhook(SECRET)
    events = []
    for delivery in deliveries:
        event = verifier.verify(delivery.body, delivery.headers)
        assert isinstance(event, dict)
        assert delivery.headers["content-type"] == "application/json"
        events.append(event)
    return events


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["data"].get("reason")) for e in events]


async def test_room_events_arrive_signed_and_in_order(start_server: StartServer) -> None:
    async with running_receiver() as receiver:
        server = await start_server(webhook_url=(receiver.url,), webhook_secret=SECRET)
        async with contextlib.AsyncExitStack() as stack:
            creator, joiner, room = await make_pair(stack, f"ws://127.0.0.1:{server.port}/ws")
            await joiner.ws.aclose()
            await creator.expect("PEERLEFT")
        events = verified(await receiver.wait_for(6, timeout=10))
    assert kinds(events) == [
        ("room.created", None),
        ("member.joined", None),
        ("member.joined", None),
        ("member.left", "left"),
        ("member.left", "left"),
        ("room.ended", None),
    ]
    assert {e["data"]["room"] for e in events} == {room}
    assert events[0]["data"]["capacity"] == 2
    assert events[3]["data"]["member"] == events[2]["data"]["member"]  # the joiner left first
    assert events[5]["data"]["duration"] >= 0
    ids = [d.headers["webhook-id"] for d in receiver.deliveries[:6]]
    assert len(set(ids)) == 6


async def test_a_forged_signature_is_refused_by_the_verifier(start_server: StartServer) -> None:
    async with running_receiver() as receiver:
        server = await start_server(webhook_url=(receiver.url,), webhook_secret=SECRET)
        async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
            await client.create_room()
        [delivery] = await receiver.wait_for(1, timeout=10)
    other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(Exception, match="signature"):
        Webhook(other).verify(delivery.body, delivery.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(delivery.body.replace(b"room", b"ROOM"), delivery.headers)


async def test_users_and_admin_removals_name_their_reasons(start_server: StartServer) -> None:
    async with running_receiver() as receiver:
        server = await start_server(
            webhook_url=(receiver.url,), webhook_secret=SECRET, admin_token=TOKEN
        )
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with contextlib.AsyncExitStack() as stack:
            alice = await login(stack, url, "alice")
            await alice.send({"type": "GETROOM", "value": ""})
            room = (await until(alice, "GETROOM"))["value"]
            _, one = await api(server.port, f"/api/v1/rooms/{room}")
            assert isinstance(one, dict)
            member = one["members"][0]["id"]
            await api(server.port, f"/api/v1/rooms/{room}/members/{member}", "DELETE")
            assert (await alice.expect_close()).code == 4004
            bob = await login(stack, url, "bob")
            await api(server.port, "/api/v1/users/bob", "DELETE")
            assert (await bob.expect_close()).code == 4005
        events = verified(await receiver.wait_for(8, timeout=10))
    assert [(e["type"], e["data"].get("name"), e["data"].get("reason")) for e in events] == [
        ("user.online", "alice", None),
        ("room.created", None, None),
        ("member.joined", "alice", None),
        ("member.left", "alice", "kicked"),
        ("room.ended", None, None),
        ("user.offline", "alice", "kicked"),
        ("user.online", "bob", None),
        ("user.offline", "bob", "signed-out"),
    ]


async def test_a_lost_session_goes_away_then_times_out(start_server: StartServer) -> None:
    async with running_receiver() as receiver:
        server = await start_server(
            webhook_url=(receiver.url,), webhook_secret=SECRET, resume_grace=0.5
        )
        async with call(server) as (a, b, _):
            a.client.abort()
            await b.expect("PEERAWAY")
            await b.expect("PEERLEFT")  # the grace ended
        events = verified(await receiver.wait_for(7, timeout=10))
    assert kinds(events) == [
        ("room.created", None),
        ("member.joined", None),
        ("member.joined", None),
        ("session.away", None),
        ("member.left", "resume-timed-out"),
        ("member.left", "left"),
        ("room.ended", None),
    ]
    assert events[3]["data"]["member"] == events[1]["data"]["member"] == events[4]["data"]["member"]


async def test_receiver_down_for_10_s_then_up_gets_everything_in_order(
    start_server: StartServer,
) -> None:
    async with running_receiver() as receiver:
        server = await start_server(webhook_url=(receiver.url,), webhook_secret=SECRET)
        receiver.down()
        url = f"ws://127.0.0.1:{server.port}/ws"
        rooms = []
        for _ in range(3):
            async with contextlib.AsyncExitStack() as stack:
                creator, joiner, room = await make_pair(stack, url)
                rooms.append(room)
                await joiner.ws.aclose()
                await creator.expect("PEERLEFT")
        counters = server.state.counters
        await eventually(lambda: counters["webhook:failed-attempts"] >= 2, 10, "failed attempts")
        await trio.sleep(10)  # the receiver's outage itself
        assert counters["webhook:delivered"] == 0
        await receiver.up()
        events = verified(await receiver.wait_for(18, timeout=60))
    assert counters["webhook:delivered"] == 18 and counters["webhook:expired"] == 0
    for room in rooms:
        assert kinds([e for e in events if e["data"]["room"] == room]) == [
            ("room.created", None),
            ("member.joined", None),
            ("member.joined", None),
            ("member.left", "left"),
            ("member.left", "left"),
            ("room.ended", None),
        ]


async def test_a_receiver_that_never_answers_slows_nothing_and_memory_is_bounded(
    start_server: StartServer,
) -> None:
    async with running_receiver(hang=True) as receiver:
        server = await start_server(
            webhook_url=(receiver.url,),
            webhook_secret=SECRET,
            webhook_queue_bytes=4096,
            webhook_timeout=60.0,
        )
        webhooks = server.state.webhooks
        assert webhooks is not None
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with contextlib.AsyncExitStack() as stack:
            a, b, _ = await make_pair(stack, url)
            churn = await stack.enter_async_context(connect(url))
            for _ in range(60):  # each new room: created, joined, left, ended
                await churn.create_room()
            await eventually(lambda: server.state.counters["webhook:dropped"] > 0, 10, "drops")
            assert webhooks.queued_bytes <= 4096
            worst = 0.0
            for n in range(20):
                started = trio.current_time()
                await a.send({"type": "CHATMSG", "value": n})
                assert (await b.expect("CHATMSG"))["value"] == n
                await b.send({"type": "CHATMSG", "value": n})
                assert (await a.expect("CHATMSG"))["value"] == n
                worst = max(worst, trio.current_time() - started)
            # Generous for a loaded machine, and far below what waiting on the receiver
            # would cost (an attempt waits up to its 60 s timeout).
            assert worst < 2.0, f"a relay round trip took {worst:.3f}s"
        assert webhooks.queued_bytes <= 4096
        reply = await http_exchange(server.port, get("/metrics"))
        assert b'rtcserver_webhook_events_total{outcome="dropped"}' in body_of(reply)
        assert receiver.deliveries == []


def test_webhook_options_repeat_and_are_checked() -> None:
    settings = load_settings(
        ["--webhook-url", "http://a/x", "--webhook-url", "https://b/y", "--webhook-secret", SECRET],
        environ={},
    )
    assert settings.webhook_url == ("http://a/x", "https://b/y")
    env = {"RTCSERVER_WEBHOOK_URL": "http://a/x,http://c/z", "RTCSERVER_WEBHOOK_SECRET": SECRET}
    assert load_settings([], environ=env).webhook_url == ("http://a/x", "http://c/z")
    for argv, problem in [
        (["--webhook-url", "http://a/x"], "needs webhook_secret"),
        (["--webhook-url", "ftp://a", "--webhook-secret", SECRET], "not an http"),
        (["--webhook-url", "http://a", "--webhook-secret", "plain"], "whsec_"),
        (["--webhook-url", "http://a", "--webhook-secret", "whsec_c2hvcnQ="], "24-64 bytes"),
    ]:
        with pytest.raises(SystemExit):
            load_settings(argv, environ={})
        from rtcserver.config import validate
        from rtcserver.settings import Settings

        url, *rest = argv[1::2]
        found = validate(Settings(webhook_url=(url,), webhook_secret=rest[0] if rest else ""))
        assert found is not None and problem in found, found


async def test_call_events_carry_their_durations(start_server: StartServer) -> None:
    async with running_receiver() as receiver:
        server = await start_server(webhook_url=(receiver.url,), webhook_secret=SECRET)
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with contextlib.AsyncExitStack() as stack:
            alice = await login(stack, url, "alice")
            bob = await login(stack, url, "bob")
            first = await phone_call(alice, bob, "bob")
            await bob.send({"type": "ACCEPT", "call": first})
            await until(alice, "CALLACCEPTED")
            await until(bob, "CALLACCEPTED")
            await alice.send({"type": "HANGUP", "call": first})
            await until(bob, "HANGUP")
            second = await phone_call(alice, bob, "bob")
            await bob.send({"type": "REJECT", "call": second})
            await until(alice, "REJECTED")

            async def calls_reported() -> bool:
                return sum(b'"type":"call.' in d.body for d in receiver.deliveries) == 5

            await eventually(calls_reported, 10, "five call events")
        events = [e for e in verified(receiver.deliveries) if e["type"].startswith("call.")]
    assert [(e["type"], e["data"]["call"]) for e in events] == [
        ("call.ringing", first),
        ("call.accepted", first),
        ("call.ended", first),
        ("call.ringing", second),
        ("call.rejected", second),
    ]
    assert events[0]["data"] == {"call": first, "from": "alice", "to": "bob", "media": "video"}
    ended = events[2]["data"]
    assert ended["outcome"] == "hung-up" and ended["duration"] >= 0 and ended["ringing"] >= 0
    assert events[4]["data"]["ringing"] >= 0
