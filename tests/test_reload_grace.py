"""A closed tab is not a lost network (docs/PROTOCOL.md, "Sessions and resume").

Both a reload and a closed tab close with 1001: the session keeps its seat only for
`reload_grace`, enough for a reload to come back. A lost socket (no close frame) keeps
it for the full `resume_grace`. A newcomer meeting a seat held by an away member gets
WRONGROOM `room-full` with `retry` (the seconds until that seat frees) and, entering
again then, takes it."""

from __future__ import annotations

import trio

from tests.conftest import StartServer
from tests.faults.wsclient import WsClient
from tests.test_resume import Party, call

RELOAD_GRACE = 1.0
RESUME_GRACE = 30.0


async def knock(port: int, room: int) -> tuple[Party, dict[str, object]]:
    """A newcomer with the room's link: ENTERROOM, and what it got back (after SESSION)."""
    newcomer = Party(await WsClient.connect(port))
    await newcomer.send({"type": "ENTERROOM", "value": room})
    await newcomer.expect("SESSION")
    return newcomer, await newcomer.recv()


async def test_a_closed_tab_seat_frees_after_the_reload_grace(start_server: StartServer) -> None:
    server = await start_server(reload_grace=RELOAD_GRACE, resume_grace=RESUME_GRACE)
    async with call(server) as (a, b, room):
        await a.client.close(code=1001)  # the tab is closed (or reloaded)
        await b.expect("PEERAWAY")
        newcomer, reply = await knock(server.port, room)
        assert reply["type"] == "WRONGROOM" and reply["reason"] == "room-full"
        retry = reply["retry"]
        assert isinstance(retry, float) and 0 < retry <= RELOAD_GRACE + 0.1, reply
        with trio.fail_after(RELOAD_GRACE + 1.0):  # the seat frees when the grace ends
            await trio.sleep(retry)
            await newcomer.send({"type": "ENTERROOM", "value": room})
            await b.expect("PEERLEFT")  # the away member is gone for good
            await b.expect("PEERJOINED")
        await newcomer.send({"type": "CHATMSG", "value": "hi"})
        assert (await b.expect("CHATMSG"))["value"] == "hi"
        await newcomer.client.close()


async def test_a_lost_socket_keeps_the_full_resume_grace(start_server: StartServer) -> None:
    server = await start_server(reload_grace=RELOAD_GRACE, resume_grace=RESUME_GRACE)
    async with call(server) as (a, b, room):
        a.client.abort()  # no close frame: the network, not the person
        await b.expect("PEERAWAY")
        newcomer, reply = await knock(server.port, room)
        assert reply["type"] == "WRONGROOM" and reply["reason"] == "room-full"
        retry = reply["retry"]
        assert isinstance(retry, float) and RESUME_GRACE - 5 < retry <= RESUME_GRACE + 0.1
        await newcomer.client.close()
        await trio.sleep(RELOAD_GRACE + 0.5)  # a bound: past the reload grace, on purpose
        a2 = await a.resume_on(server.port)
        assert (await a2.expect("RESUMED"))["room"] == room
        await b.expect("PEERBACK")
        await a2.client.close()


async def test_a_reload_within_the_reload_grace_resumes(start_server: StartServer) -> None:
    server = await start_server(reload_grace=RELOAD_GRACE, resume_grace=RESUME_GRACE)
    async with call(server) as (a, b, room):
        await a.client.close(code=1001)
        await b.expect("PEERAWAY")
        a2 = await a.resume_on(server.port)
        assert (await a2.expect("RESUMED"))["room"] == room
        await b.expect("PEERBACK")
        await a2.client.close()


async def test_a_room_full_of_present_members_is_plainly_full(start_server: StartServer) -> None:
    server = await start_server(reload_grace=RELOAD_GRACE)
    async with call(server) as (_a, _b, room):
        newcomer, reply = await knock(server.port, room)
        assert reply == {"type": "WRONGROOM", "reason": "room-full"}  # the book's shape
        await newcomer.client.close()


async def test_the_reload_grace_is_at_most_the_resume_grace(start_server: StartServer) -> None:
    server = await start_server(reload_grace=10.0, resume_grace=2.0)
    async with call(server) as (a, _b, room):
        await a.client.close(code=1001)
        newcomer, reply = await knock(server.port, room)
        retry = reply["retry"]
        assert isinstance(retry, float) and 0 < retry <= 2.1, reply
        await newcomer.client.close()
