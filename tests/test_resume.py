"""Sessions that outlive a socket (docs/PROTOCOL.md, "Sessions and resume").

Every client gets a session (SESSION, before the answer to its first message). One
that loses its TCP connection without a close frame keeps its room for
`resume_grace`; its peer hears PEERAWAY, not PEERLEFT; what is sent to it meanwhile
waits, and a new socket presenting the secret (RESUME) gets it back first, in order,
exactly once. A client that asked for its session (SESSION) is also kept after a 1001.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio

from rtcserver.app import Server
from tests.conftest import StartServer
from tests.faults.wsclient import Closed, WsClient
from tests.support import owners


@attrs.define
class Party:
    """A client that counts what it received since its session began, as pages do."""

    client: WsClient
    received: int = 0
    session: str = ""
    secret: str = ""

    def __attrs_post_init__(self) -> None:
        self.client.hide_unasked_session = False  # it counts, so it sees every SESSION

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        message = json.loads(await self.client.recv(timeout))
        assert isinstance(message, dict)
        self.received += 1
        if message.get("type") == "SESSION":
            self.received = 1  # the count starts at the SESSION reply
        if message.get("type") in ("SESSION", "RESUMED"):
            self.session, self.secret = message["session"], message["secret"]
        return message

    async def expect(self, kind: str) -> dict[str, Any]:
        message = await self.recv()
        assert message["type"] == kind, f"expected {kind}, got {message}"
        return message

    async def send(self, obj: dict[str, Any]) -> None:
        await self.client.send_json(obj)

    async def expect_nothing(self, within: float = 0.3) -> None:
        with trio.move_on_after(within):
            message = await self.client.recv(timeout=within + 1)
            raise AssertionError(f"expected nothing, got {message}")

    async def resume_on(self, port: int, received: int | None = None) -> Party:
        """A new socket that presents this session's secret: the party that follows."""
        client = await WsClient.connect(port)
        await client.send_json(
            {
                "type": "RESUME",
                "session": self.session,
                "secret": self.secret,
                "received": self.received if received is None else received,
            }
        )
        return Party(
            client,
            received=self.received if received is None else received,
            session=self.session,
            secret=self.secret,
        )


@contextlib.asynccontextmanager
async def call(server: Server) -> AsyncIterator[tuple[Party, Party, int]]:
    """`a` (it asked for its session, the room's creator) and `b` (a plain client,
    given its session unasked) in one room."""
    a = Party(await WsClient.connect(server.port))
    b = Party(await WsClient.connect(server.port))
    try:
        await a.send({"type": "SESSION"})
        granted = await a.expect("SESSION")
        assert len(granted["secret"]) >= 43 and granted["grace"] > 0
        await a.send({"type": "GETROOM", "value": ""})
        room = (await a.expect("GETROOM"))["value"]
        await b.send({"type": "ENTERROOM", "value": room})
        await a.expect("PEERJOINED")
        await b.expect("SESSION")  # unasked, before anything else
        yield a, b, room
    finally:
        for party in (a, b):
            with trio.CancelScope(shield=True):
                await party.client.close()


async def chat(party: Party, *values: int) -> None:
    for value in values:
        await party.send({"type": "CHATMSG", "value": value})


async def test_lost_socket_peer_gets_peeraway_then_peerback(start_server: StartServer) -> None:
    server = await start_server(resume_grace=30.0)
    async with call(server) as (a, b, room):
        a.client.abort()  # no close frame: TCP reset
        await b.expect("PEERAWAY")
        await chat(b, 1, 2, 3)  # queued for the away member, not refused
        await b.expect_nothing()
        a2 = await a.resume_on(server.port)
        resumed = await a2.expect("RESUMED")
        assert resumed["room"] == room and resumed["secret"] != a.secret
        assert [(await a2.recv())["value"] for _ in range(3)] == [1, 2, 3]
        await b.expect("PEERBACK")
        await chat(b, 4)
        assert (await a2.recv())["value"] == 4  # nothing twice, nothing lost
        await chat(a2, 5)
        assert (await b.recv())["value"] == 5
        await a2.client.close()


async def test_messages_the_client_missed_are_sent_again_exactly_once(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with call(server) as (a, b, _):
        await chat(b, 1, 2)
        assert (await a.recv())["value"] == 1
        assert (await a.recv())["value"] == 2
        a.client.abort()
        await b.expect("PEERAWAY")
        await chat(b, 3)
        # The socket died with message 2 perhaps still in flight: the client says it
        # got only as far as 1, and gets 2 again, then 3, each once.
        a2 = await a.resume_on(server.port, received=a.received - 1)
        await a2.expect("RESUMED")
        assert [(await a2.recv())["value"] for _ in range(2)] == [2, 3]
        await a2.expect_nothing()
        await a2.client.close()


async def test_resume_after_the_grace_is_refused_and_the_peer_got_peerleft(
    start_server: StartServer,
) -> None:
    server = await start_server(resume_grace=0.5)
    async with call(server) as (a, b, _):
        a.client.abort()
        await b.expect("PEERAWAY")
        await b.expect("PEERLEFT")  # the grace ended
        a2 = await a.resume_on(server.port)
        refused = await a2.expect("ERROR")
        assert refused["code"] == "resume-failed"
        await a2.send({"type": "GETROOM", "value": ""})  # goes on as a newcomer
        await a2.expect("SESSION")  # with a session of its own
        await a2.expect("GETROOM")
        await a2.client.close()


async def test_a_clean_close_ends_the_session_at_once(start_server: StartServer) -> None:
    server = await start_server(resume_grace=30.0)
    async with call(server) as (a, b, _):
        await a.client.close()
        await b.expect("PEERLEFT")
        a2 = await a.resume_on(server.port)
        assert (await a2.expect("ERROR"))["code"] == "resume-failed"
        await a2.client.close()


async def test_a_secret_works_once_and_a_wrong_one_never(start_server: StartServer) -> None:
    server = await start_server()
    async with call(server) as (a, b, _):
        spent = a.secret
        a.client.abort()
        await b.expect("PEERAWAY")
        wrong = spent[:-1] + ("A" if spent[-1] != "A" else "B")
        thief = await attrs.evolve(a, secret=wrong).resume_on(server.port)
        assert (await thief.expect("ERROR"))["code"] == "resume-failed"
        a2 = await a.resume_on(server.port)  # the wrong guess spent nothing
        await a2.expect("RESUMED")
        await b.expect("PEERBACK")
        replay = await attrs.evolve(a, secret=spent).resume_on(server.port)
        assert (await replay.expect("ERROR"))["code"] == "resume-failed"
        await chat(b, 7)
        assert (await a2.recv())["value"] == 7  # the session stayed where it was
        for party in (thief, a2, replay):
            await party.client.close()


async def test_two_resumes_race_and_exactly_one_wins(start_server: StartServer) -> None:
    server = await start_server()
    async with call(server) as (a, b, _):
        a.client.abort()
        await b.expect("PEERAWAY")
        first, second = await a.resume_on(server.port), await a.resume_on(server.port)
        answers = sorted([(await first.recv())["type"], (await second.recv())["type"]])
        assert answers == ["ERROR", "RESUMED"]
        await b.expect("PEERBACK")
        for party in (first, second):
            await party.client.close()


async def test_resume_takes_over_a_socket_the_server_thinks_alive(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with call(server) as (a, b, _):
        # The client gave up on its socket (a network change) but the server has not
        # noticed: the RESUME ends the old socket (4002) and takes the session.
        a2 = await a.resume_on(server.port)
        assert await a.client.wait_closed() == 4002
        await a2.expect("RESUMED")
        await b.expect("PEERAWAY")
        await b.expect("PEERBACK")
        await chat(b, 9)
        assert (await a2.recv())["value"] == 9
        await a2.client.close()


async def test_a_gap_too_old_to_replay_ends_the_session(start_server: StartServer) -> None:
    server = await start_server(resume_replay_bytes=1)
    async with call(server) as (a, b, _):
        a.client.abort()
        await b.expect("PEERAWAY")
        a2 = await a.resume_on(server.port, received=0)
        assert (await a2.expect("ERROR"))["code"] == "resume-gap"
        await b.expect("PEERLEFT")
        await a2.client.close()


async def test_mail_for_an_away_session_counts_against_its_byte_limits(
    start_server: StartServer,
) -> None:
    server = await start_server(
        max_message_size=40000, mailbox_soft_limit=60000, mailbox_hard_limit=60000
    )
    async with call(server) as (a, b, _):
        a.client.abort()
        await b.expect("PEERAWAY")
        await b.send({"type": "CHATMSG", "value": "x" * 35000})
        await b.send({"type": "CHATMSG", "value": "y" * 35000})  # over the hard limit
        await b.expect("PEERLEFT")
        a2 = await a.resume_on(server.port)
        assert (await a2.expect("ERROR"))["code"] == "resume-failed"
        await a2.client.close()


async def test_resume_must_be_first_and_well_formed(start_server: StartServer) -> None:
    server = await start_server()
    async with call(server) as (a, b, _):
        a.client.abort()
        await b.expect("PEERAWAY")
        late = Party(await WsClient.connect(server.port))
        await late.send({"type": "GETCONFIG"})
        await late.expect("SESSION")
        await late.expect("CONFIG")
        await late.send({"type": "RESUME", "session": a.session, "secret": a.secret, "received": 1})
        assert (await late.expect("ERROR"))["code"] == "resume-failed"
        bad = await a.resume_on(server.port, received=-1)
        assert (await bad.expect("ERROR"))["code"] == "resume-failed"
        a2 = await a.resume_on(server.port)  # neither spent the secret
        await a2.expect("RESUMED")
        for party in (late, bad, a2):
            await party.client.close()


async def test_a_client_that_never_asked_gets_its_session_first_and_can_resume(
    start_server: StartServer,
) -> None:
    """The book's client sends no SESSION: it gets one anyway, before the answer to
    its first message (and ignores it). Its lost socket waits for a RESUME too."""
    server = await start_server(resume_grace=30.0)
    a = Party(await WsClient.connect(server.port))
    b = Party(await WsClient.connect(server.port))
    await a.send({"type": "GETROOM", "value": ""})
    granted = await a.expect("SESSION")
    assert granted["session"] and len(granted["secret"]) >= 43
    room = (await a.expect("GETROOM"))["value"]
    await b.send({"type": "ENTERROOM", "value": room})
    assert (await b.expect("SESSION"))["session"] != granted["session"]
    await a.expect("PEERJOINED")
    a.client.abort()
    await b.expect("PEERAWAY")
    a2 = await a.resume_on(server.port)
    assert (await a2.expect("RESUMED"))["room"] == room
    await b.expect("PEERBACK")
    for party in (a2, b):
        await party.client.close()


async def test_a_client_that_never_asked_leaves_at_once_when_it_closes_with_1001(
    start_server: StartServer,
) -> None:
    """The book's client closing its tab (1001): a goodbye, its peer hears PEERLEFT at
    once. Only a client that asked for its session may be coming back from a reload."""
    server = await start_server(resume_grace=30.0)
    a = Party(await WsClient.connect(server.port))
    b = Party(await WsClient.connect(server.port))
    await a.send({"type": "GETROOM", "value": ""})
    await a.expect("SESSION")
    room = (await a.expect("GETROOM"))["value"]
    await b.send({"type": "ENTERROOM", "value": room})
    await b.expect("SESSION")
    await a.client.close(code=1001)
    await b.expect("PEERLEFT")
    a2 = await a.resume_on(server.port)
    assert (await a2.expect("ERROR"))["code"] == "resume-failed"
    for party in (a2, b):
        await party.client.close()


async def test_after_a_restart_sessions_and_rooms_are_gone(start_server: StartServer) -> None:
    """The documented restart behaviour: RESUME is refused, the room number is free
    of members and so no longer exists; the page says so and offers a new room."""
    first = await start_server()
    async with call(first) as (a, _b, room):
        await owners.shutdown(first)
        with contextlib.suppress(Closed):
            await a.client.wait_closed()
    second = await start_server()
    a2 = await a.resume_on(second.port)
    assert (await a2.expect("ERROR"))["code"] == "resume-failed"
    await a2.send({"type": "ENTERROOM", "value": room})
    await a2.expect("SESSION")
    assert (await a2.expect("WRONGROOM"))["reason"] == "no-such-room"
    await a2.client.close()


async def test_a_page_going_away_1001_waits_a_hang_up_1000_does_not(
    start_server: StartServer,
) -> None:
    """A refresh closes the socket with 1001: the session waits for the reloaded page."""
    server = await start_server()
    async with call(server) as (a, b, room):
        await a.client.close(code=1001)
        await b.expect("PEERAWAY")
        a2 = await a.resume_on(server.port)
        resumed = await a2.expect("RESUMED")
        assert (resumed["room"], resumed["peers"]) == (room, 1)
        await b.expect("PEERBACK")
        await a2.client.close(code=1000)
        await b.expect("PEERLEFT")


async def test_the_count_starts_at_the_session_reply(start_server: StartServer) -> None:
    server = await start_server()
    a = Party(await WsClient.connect(server.port))
    b = Party(await WsClient.connect(server.port))
    await a.send({"type": "GETROOM", "value": ""})
    await a.expect("SESSION")  # unasked
    room = (await a.expect("GETROOM"))["value"]
    await b.send({"type": "ENTERROOM", "value": room})
    await b.expect("SESSION")
    await a.expect("PEERJOINED")
    await a.send({"type": "SESSION"})  # asked again: a fresh secret, the count restarts
    await a.expect("SESSION")
    assert a.received == 1  # as the pages count: SESSION is number 1
    await chat(b, 1)
    assert (await a.recv())["value"] == 1
    a.client.abort()
    await b.expect("PEERAWAY")
    a2 = await a.resume_on(server.port, received=1)
    await a2.expect("RESUMED")
    assert (await a2.recv())["value"] == 1  # sent again: the client said it had only SESSION
    await a2.expect_nothing()
    for party in (a2, b):
        await party.client.close()


async def test_with_auth_on_resume_stands_for_auth_and_a_refusal_closes(
    start_server: StartServer,
) -> None:
    """Token mode, AUTH as the first message: RESUME may come first instead (the
    session keeps the identity it had); a refused RESUME is a failed AUTH (1008)."""
    from tests.test_security import SECRET, token

    server = await start_server(auth_secret=SECRET)
    a = Party(await WsClient.connect(server.port))
    await a.send({"type": "AUTH", "token": token(sub="alice")})
    await a.expect("AUTH")
    await a.send({"type": "SESSION"})
    await a.expect("SESSION")
    await a.send({"type": "GETROOM", "value": ""})
    room = (await a.expect("GETROOM"))["value"]
    a.client.abort()
    a2 = await a.resume_on(server.port)
    assert (await a2.expect("RESUMED"))["room"] == room
    await a2.send({"type": "LOGIN", "name": "alice"})  # the identity came back with it
    assert (await a2.expect("LOGIN"))["success"] is True
    wrong = await attrs.evolve(a2, secret="not-the-secret").resume_on(server.port)
    assert (await wrong.expect("ERROR"))["code"] == "resume-failed"
    assert await wrong.client.wait_closed() == 1008
    await a2.client.close()


async def test_directory_frames_count_like_mail_so_a_logged_in_session_resumes(
    start_server: StartServer,
) -> None:
    """The directory's coalesced frames (USERS, DIRECTORY) reach the client outside the
    mailbox; they are numbered with it, or a logged-in client's count would run ahead of
    the server's and its RESUME would be refused as a gap."""
    server = await start_server(presence_interval=0.01)
    alice = Party(await WsClient.connect(server.port))
    bob = await WsClient.connect(server.port)
    try:
        await alice.send({"type": "SESSION"})
        await alice.expect("SESSION")
        await alice.send({"type": "LOGIN", "name": "alice"})
        await alice.expect("LOGIN")
        await alice.expect("USERS")
        await bob.send_json({"type": "LOGIN", "name": "bob"})
        await alice.expect("DIRECTORY")  # bob came: counted by alice, numbered by the server
        alice.client.abort()
        resumed = await alice.resume_on(server.port)
        await resumed.expect("RESUMED")  # not ERROR resume-gap: the counts agree
        await bob.send_json({"type": "hello"})  # not in a room: bob gets an ERROR, alice nothing
        with trio.move_on_after(0.3):
            while True:  # directory frames are state (idempotent); nothing else may come
                assert (await resumed.recv())["type"] == "DIRECTORY"
    finally:
        alice.client.abort()
        bob.abort()
