"""Make the connection that RESUMEs a session fail at each await point of the resume
(and at the synchronous step that reads RESUME), and check what the session and its
peer see: a resume that did not happen leaves the session waiting with its secret
unspent; one that failed after adopting the session ends it (PEERLEFT), or parks it
again when the socket is lost; and nothing leaks (no task, no room member).

Await points of a resume (connection/resume.resume): the reader's RECEIVE of RESUME, the
DISPATCH of it, the new connection's writer (MAILBOX: stopped for the adopted actor's
writer), the adopted writer's first SEND (RESUMED and the replay), the next RECEIVE.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from rtcserver.app import Server, serve
from tests.test_resume import Party

from .harness import FAULT_SETTINGS, check_invariants
from .inject import Fault, FaultInjector, Plan, Point
from .wsclient import WsClient


class Outcome(enum.Enum):
    UNTOUCHED = "untouched"  # the session still waits; the same secret resumes it
    RESUMED = "resumed"  # the fault did not stop the resume
    ENDED = "ended"  # the resumed session ended: the peer gets PEERLEFT
    LOST_AGAIN = "lost-again"  # parked again, its new secret never delivered: grace ends it


CASES = [
    (Point.RECEIVE, Fault.CRASH, 1, Outcome.UNTOUCHED),
    (Point.RECEIVE, Fault.LOSE_SOCKET, 1, Outcome.UNTOUCHED),
    (Point.DISPATCH, Fault.CRASH, 1, Outcome.UNTOUCHED),
    (Point.DISPATCH, Fault.CANCEL, 1, Outcome.UNTOUCHED),
    (Point.MAILBOX, Fault.CRASH, 1, Outcome.UNTOUCHED),
    (Point.MAILBOX, Fault.HANG, 1, Outcome.RESUMED),
    (Point.SEND, Fault.CRASH, 1, Outcome.ENDED),
    (Point.SEND, Fault.LOSE_SOCKET, 1, Outcome.LOST_AGAIN),
    (Point.RECEIVE, Fault.CRASH, 2, Outcome.ENDED),
]


@pytest.fixture
async def server(injector: FaultInjector) -> AsyncIterator[Server]:
    settings = attrs.evolve(FAULT_SETTINGS, resume_grace=1.0)
    async with trio.open_nursery() as nursery:
        srv: Server = await nursery.start(serve, settings)
        yield srv
        await srv.shutdown()


@contextlib.asynccontextmanager
async def reading(port: int, nursery: trio.Nursery) -> AsyncIterator[Party]:
    client = await WsClient.connect(port)
    client.start_reader(nursery)  # pings answered: the fault server pings every 0.5 s
    try:
        yield Party(client)
    finally:
        with trio.CancelScope(shield=True):
            await client.close()


@pytest.mark.parametrize(("point", "fault", "nth", "outcome"), CASES, ids=str)
async def test_a_fault_in_resume_leaves_the_session_consistent(
    server: Server,
    injector: FaultInjector,
    point: Point,
    fault: Fault,
    nth: int,
    outcome: Outcome,
) -> None:
    port = server.port
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(reading(port, nursery))
        b = await stack.enter_async_context(reading(port, nursery))
        await a.send({"type": "SESSION"})
        await a.expect("SESSION")
        await a.send({"type": "GETROOM", "value": ""})
        room = (await a.expect("GETROOM"))["value"]
        await b.send({"type": "ENTERROOM", "value": room})
        await b.expect("SESSION")  # unasked
        await a.expect("PEERJOINED")
        a.client.abort()
        await b.expect("PEERAWAY")
        await b.send({"type": "CHATMSG", "value": 1})

        victim = await WsClient.open_tcp(port)
        injector.arm(victim.address, Plan(point, fault, nth=nth))
        await victim.handshake()
        victim.start_reader(nursery)
        stack.push_async_callback(victim.close)
        await victim.send_json(
            {"type": "RESUME", "session": a.session, "secret": a.secret, "received": a.received}
        )
        if outcome is not Outcome.RESUMED:
            await injector.wait_ended(victim.address)

        if outcome is Outcome.UNTOUCHED:
            a2 = await a.resume_on(port)
            a2.client.start_reader(nursery)
            stack.push_async_callback(a2.client.close)
            await a2.expect("RESUMED")
            assert (await a2.recv())["value"] == 1
            await b.expect("PEERBACK")
        elif outcome is Outcome.RESUMED:
            resumed = Party(victim, received=a.received)
            await resumed.expect("RESUMED")
            assert (await resumed.recv())["value"] == 1
            await b.expect("PEERBACK")
        elif outcome is Outcome.ENDED:
            await b.expect("PEERBACK")
            await b.expect("PEERLEFT")
        else:
            await b.expect("PEERBACK")
            await b.expect("PEERAWAY")
            await b.expect("PEERLEFT")  # the grace ended: the client held a spent secret
            late = await a.resume_on(port)
            late.client.start_reader(nursery)
            stack.push_async_callback(late.client.close)
            assert (await late.expect("ERROR"))["code"] == "resume-failed"
        assert injector.connection(victim.address).injected == [(point, fault)]
        await stack.aclose()
        nursery.cancel_scope.cancel()
    assert not server.state.sessions.away
    await check_invariants(server, injector)
