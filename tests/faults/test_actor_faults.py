"""Make one connection actor fail at each of its await points, in each way, while
other rooms relay; then check that the failure stayed inside that connection.

Injected (tests/faults/inject.py): CRASH, CANCEL, HANG, LOSE_SOCKET at RECEIVE
(reader), MAILBOX and SEND (writer), PING (keepalive), CLOSE (the goodbye), and
CRASH/CANCEL at DISPATCH (the synchronous step). Checked after each: the victim's
connection and every task under it ended (or, for a hang the design recovers from,
it kept relaying in order); its peer got everything sent before the fault, in order,
then PEERLEFT; the victim was closed with the code the design names; bystander rooms
saw no error and no stall; and the shared invariants hold.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import trio

from rtcserver.app import Server
from rtcserver.protocol import CloseCode

from .harness import (
    bystanders,
    check_invariants,
    expect_in_order_then_gone,
    open_pair,
    summary,
)
from .inject import Fault, FaultInjector, Plan, Point
from .wsclient import Closed

CASES = [
    (point, fault)
    for point in Point
    for fault in Fault
    if point is not Point.DISPATCH or fault in (Fault.CRASH, Fault.CANCEL)
]

# What the victim's own client sees: a close code, or None when the TCP connection
# is simply dropped. A write or ping that timed out may have left half a frame on the
# wire, so the server drops such a stream without a close frame (handler._write).
CLIENT_SEES = {Fault.CRASH: 1011, Fault.CANCEL: 1000, Fault.LOSE_SOCKET: None, Fault.HANG: None}
# The reason the server records for a hang (actor.close_code); "survives": the design
# recovers from it and the connection carries on.
HANG_VERDICT = {
    Point.RECEIVE: CloseCode.KEEPALIVE_TIMEOUT,  # reader stuck: pongs go unread
    Point.SEND: CloseCode.SLOW_CONSUMER,  # a send stuck past keepalive_timeout
    Point.PING: CloseCode.KEEPALIVE_TIMEOUT,  # no pong in time
    Point.MAILBOX: "survives",  # the quiet timer ends the wait; it pings and goes on
}


@pytest.mark.parametrize(("point", "fault"), CASES, ids=lambda v: v.value)
async def test_actor_fault_stays_inside_its_connection(
    server: Server, injector: FaultInjector, point: Point, fault: Fault
) -> None:
    port = server.port
    async with bystanders(port, pairs=2) as watch:
        await watch.wait_rounds(2)
        async with open_pair(port) as pair:
            await pair.exchange(2)
            # From here on, nothing has been received yet of what each side sends.
            seen = {who: len(pair.sent[who]) for who in ("a", "b")}
            victim = pair.b
            conn = injector.connection(victim.address)
            injector.arm(victim.address, Plan(point, fault, nth=conn.hits.get(point, 0) + 1))
            if point is Point.CLOSE:
                await victim.close()  # the victim leaves; its goodbye is what fails
                await expect_in_order_then_gone(pair.a, pair.sent["b"][seen["b"] :])
                await injector.wait_ended(victim.address, timeout=5)
                assert conn.injected == [(point, fault)]
            else:
                outcome = await _drive_until_fault_resolves(pair, conn, injector, point, seen)
                actor = conn.actor
                assert actor is not None
                verdict = HANG_VERDICT[point] if fault is Fault.HANG else None
                if verdict == "survives":
                    assert outcome == "survives"
                    await pair.exchange(3)
                else:
                    assert outcome == "ended"
                    # The survivor: all the victim sent before the fault, in order, then told.
                    await expect_in_order_then_gone(pair.a, pair.sent["b"][seen["b"] :])
                    # The victim: what it was sent, in order, then its connection ends.
                    await expect_in_order_then_gone(
                        victim, pair.sent["a"][seen["a"] :], peerleft=False
                    )
                    assert victim.close_code == CLIENT_SEES[fault], victim.close_reason
                    if verdict is not None:
                        assert actor.close_code == verdict, actor.close_reason
        await watch.wait_rounds(4)  # the other rooms still relay after the fault
    watch.check(max_latency=0.5)
    print(f"{point.value}/{fault.value}: bystanders {summary(watch.latencies)}")
    await check_invariants(server, injector)


async def _drive_until_fault_resolves(pair, conn, injector, point, seen) -> str:  # type: ignore[no-untyped-def]
    """Send traffic both ways that walks the victim through `point` until the fault
    fires, then until its connection ends or (for a recoverable hang) recovers."""
    with trio.fail_after(6):
        for _ in range(200):  # bounded: at most 200 rounds of 0.05 s
            if conn.ended.is_set():
                return "ended"
            if conn.injected and conn.injected[-1][1] is Fault.HANG and point is Point.MAILBOX:
                # Everything queued during the hang must come out, in order, after it.
                await _hold_until_recovered(pair, seen)
                return "survives"
            senders: tuple[str, ...] = ("a", "b")
            if point is Point.PING:
                senders = ()  # the keepalive ping needs a quiet line
            elif conn.injected:
                # After the fault, the victim alone talks: a hung reader is found by the
                # keepalive, which pings only when nothing is going to the victim.
                senders = ("b",)
            for who in senders:
                with contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, Closed
                ):
                    await pair.send(who)
            with trio.move_on_after(0.05):
                await conn.ended.wait()
        raise AssertionError(f"fault at {point} never resolved: {conn.injected}")


async def _hold_until_recovered(pair, seen: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    """After a recoverable hang: everything sent both ways since arming comes out,
    unchanged and in order."""
    with trio.fail_after(5):
        for sender, receiver in (("a", pair.b), ("b", pair.a)):
            expected = pair.sent[sender][seen[sender] :]
            got = [await receiver.recv(math.inf) for _ in expected]
            assert got == expected, f"relay from {sender} reordered or changed by the hang"
