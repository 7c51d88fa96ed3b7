"""Make one connection actor fail at each of its await points, in each way, while
other rooms relay; then check that the failure stayed inside that connection.

Injected (tests/faults/inject.py): CRASH, CANCEL, HANG, LOSE_SOCKET at RECEIVE
(reader), MAILBOX and SEND (writer), PING (keepalive), CLOSE (the goodbye), and
CRASH/CANCEL at DISPATCH (the synchronous step). Checked after each: the victim's
connection and every task under it ended; its peer got everything sent before the fault, in order,
then PEERLEFT; the victim was closed with the code the design names; bystander rooms
saw no error and no stall; and the shared invariants hold.
"""

from __future__ import annotations

import contextlib

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
# wire, so the server drops such a stream without a close frame (connection/writer.py, _write).
CLIENT_SEES = {Fault.CRASH: 1011, Fault.CANCEL: 1000, Fault.LOSE_SOCKET: None}
# A hang: the reason the server records (actor.close_code), and what the client sees.
HANG_VERDICT = {
    # Reader stuck: pongs go unread; the writer is free to send the close frame.
    Point.RECEIVE: (CloseCode.KEEPALIVE_TIMEOUT, 4001),
    # A send stuck past keepalive_timeout: half a frame may be out, so TCP is dropped.
    Point.SEND: (CloseCode.SLOW_CONSUMER, None),
    # The ping's write is stuck past keepalive_timeout: likewise.
    Point.PING: (CloseCode.KEEPALIVE_TIMEOUT, None),
    # The writer never takes its mail: the keepalive sees a message waiting too long.
    Point.MAILBOX: (CloseCode.SLOW_CONSUMER, 4000),
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
                await _drive_until_fault_resolves(pair, conn, injector, point)
                actor = conn.actor
                assert actor is not None
                # The survivor: all the victim sent before the fault, in order, then told.
                await expect_in_order_then_gone(pair.a, pair.sent["b"][seen["b"] :])
                # The victim: what it was sent, in order, then its connection ends.
                await expect_in_order_then_gone(victim, pair.sent["a"][seen["a"] :], peerleft=False)
                if fault is Fault.HANG:
                    verdict, client_sees = HANG_VERDICT[point]
                    assert actor.close_code == verdict, actor.close_reason
                else:
                    client_sees = CLIENT_SEES[fault]
                assert victim.close_code == client_sees, victim.close_reason
        await watch.wait_rounds(4)  # the other rooms still relay after the fault
    watch.check(max_latency=0.5)
    print(f"{point.value}/{fault.value}: bystanders {summary(watch.latencies)}")
    await check_invariants(server, injector)


async def _drive_until_fault_resolves(pair, conn, injector, point) -> None:  # type: ignore[no-untyped-def]
    """Send traffic both ways that walks the victim through `point` until the fault
    fires, then until its connection ends."""
    with trio.fail_after(6):
        for _ in range(200):  # bounded: at most 200 rounds of 0.05 s
            if conn.ended.is_set():
                return
            senders: tuple[str, ...] = ("a", "b")
            if point is Point.PING:
                senders = ()  # the keepalive ping needs a quiet line
            elif conn.injected and point is not Point.MAILBOX:
                # After the fault, the victim alone talks: a hung reader is found by the
                # keepalive, which pings only when nothing is heard from the victim.
                # (A hung writer is found by mail waiting for it: both keep talking.)
                senders = ("b",)
            for who in senders:
                with contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, Closed
                ):
                    await pair.send(who)
            with trio.move_on_after(0.05):
                await conn.ended.wait()
        raise AssertionError(f"fault at {point} never resolved: {conn.injected}")
