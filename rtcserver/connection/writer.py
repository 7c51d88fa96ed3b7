"""`websocket_info`: the writer loop, a child task of the connection.

It takes everything in the mailbox and writes it as one `send_all`, then the
directory's news; it also sends the keepalive's pings. A write's deadline is armed
once per `send_all`, not per frame; a write that makes no progress for
`keepalive_timeout` ends the actor as a slow consumer (4000)."""

from __future__ import annotations

from collections.abc import Awaitable

import trio

from ..actors.actor import Actor
from ..actors.mailbox import MailboxClosed
from ..protocol import CloseCode
from ..server.state import ServerState
from ..wire.engine import WebSocket
from .record import CLOSE_TIMEOUT, Session


def start_writer(state: ServerState, ws: WebSocket, session: Session) -> None:
    """Start the writer for `session.actor`. Its scope and end event exist before it
    runs, so a RESUME read before the task first runs can still stop it."""
    assert session.nursery is not None
    session.writer = trio.CancelScope()
    session.writer_done = trio.Event()
    session.nursery.start_soon(
        _write_until_done, state, ws, session, session.actor, session.writer, session.writer_done
    )


async def _write_until_done(
    state: ServerState,
    ws: WebSocket,
    session: Session,
    actor: Actor,
    scope: trio.CancelScope,
    done: trio.Event,
) -> None:
    # Whichever loop ends first ends the connection (unless a RESUME swaps writers).
    assert session.nursery is not None
    try:
        with scope:
            await websocket_info(state, ws, actor)
        if scope.cancelled_caught:
            return  # stopped to serve an adopted actor instead
        session.nursery.cancel_scope.cancel()
    finally:
        done.set()


async def websocket_info(state: ServerState, ws: WebSocket, actor: Actor) -> None:
    """Drain the mailbox onto the socket: everything queued goes out as one write.
    Pings when the keepalive asks (keepalive.py watches the clocks)."""
    timeout = state.settings.keepalive_timeout
    mailbox = actor.mailbox

    def progress() -> None:
        # A large write that keeps moving is a reader that keeps reading, however
        # slowly: renew its deadline (unless the actor is being kicked). Its bytes are
        # being acknowledged, so the client is alive too: keepalive counts it as heard
        # (a ping queued behind megabytes would otherwise time out on a live client).
        if actor.sending is not None and actor.close_code is None:
            now = trio.current_time()
            actor.sending.deadline = now + timeout
            actor.last_heard = now

    try:
        while True:
            await mailbox.wait()
            ws.queue_texts(actor.take_mail())
            ws.queue_texts(actor.extra_frames())  # presence: after the calls, coalesced
            # Most writes fit the socket's buffer: written at once, no await, no deadline.
            if not ws.write_now() and not await _write(actor, ws.flush(progress), timeout):
                actor.kick(
                    CloseCode.SLOW_CONSUMER,
                    f"slow consumer: a write made no progress for {timeout:g}s",
                    cause="write-timeout",
                )
            actor.written()
            if actor.ping_due:
                actor.ping_due = False
                if not await _write(actor, ws.ping(), timeout):
                    actor.kick(CloseCode.KEEPALIVE_TIMEOUT, f"a ping blocked for {timeout:g}s")
    except (MailboxClosed, trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def _write(actor: Actor, operation: Awaitable[None], timeout: float) -> bool:
    """Run one socket write (or ping) whole, or time out. Cancellation cannot cut it in
    half (that would corrupt the stream); `Actor.kick` shortens its deadline instead.
    Returns False on timeout, after which the stream is only fit to be dropped."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout) as scope:
        actor.sending = scope
        try:
            await operation
        finally:
            actor.sending = None
    if scope.cancelled_caught:
        actor.frame_cut = True
        return False
    return True


async def flush_and_close(ws: WebSocket, actor: Actor) -> None:
    """Send what is still queued (an ERROR that explains the close, say), then the
    close frame, and wait for the client's. Shielded but bounded: a peer that never
    reads cannot hold shutdown hostage, and a slow consumer's backlog is not worth
    waiting for."""
    if actor.frame_cut:
        return  # no frame can follow half a frame; the caller drops the TCP stream
    code = actor.close_code or CloseCode.NORMAL
    backlog = actor.drop_mail()
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
        if code not in (CloseCode.SLOW_CONSUMER, CloseCode.KEEPALIVE_TIMEOUT):
            ws.queue_texts(backlog)
        await ws.aclose(int(code), actor.close_reason)
