"""Faults in the supervisor: permanent services that keep crashing, and temporary
children (connections) that crash, within a real server and alone.

Injected: a permanent child that crashes (a) now and then, (b) in a burst; the
server's own listener crashing; a connection's handler crashing before any actor
exists. Checked: restarts happen within the intensity limit (the book's 5 in 10 s,
the default), exceeding it escalates with RestartIntensityExceeded, an escalation
ends the server and closes its listening socket, and a crashed connection is counted
and contained.
"""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

import rtcserver.connection.frontdoor
from rtcserver.actors.supervisor import RestartIntensityExceeded, Supervisor
from rtcserver.app import Server, serve

from .harness import FAULT_SETTINGS, assert_serves, check_invariants
from .inject import FaultInjector, InjectedCrash


def test_the_default_restart_intensity_is_the_books_5_in_10_seconds() -> None:
    supervisor = Supervisor()
    assert (supervisor.intensity, supervisor.period) == (5, 10.0)


async def test_permanent_child_crashing_too_often_is_restarted_then_escalates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor()
    starts: list[float] = []

    async def flaky() -> None:
        starts.append(trio.current_time())
        await trio.sleep(1.0)  # crashes once a second: 11 in 10 s
        raise InjectedCrash("service crashed")

    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.permanent("flaky", flaky)
    # Restarted exactly `intensity` times; the next crash inside the window escalates.
    assert supervisor.restarts["flaky"] == 5
    assert supervisor.crashes["flaky"] == 6
    assert len(starts) == 6
    assert starts[-1] - starts[0] < supervisor.period
    assert isinstance(info.value.__cause__, InjectedCrash)
    assert supervisor.running["flaky"] == 0


async def test_permanent_child_crashing_seldom_is_restarted_for_ever(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor()
    runs = 0

    async def seldom() -> None:
        nonlocal runs
        runs += 1
        if runs > 30:  # bounded: then it stays up, and the test ends it
            await trio.sleep_forever()
        await trio.sleep(supervisor.period / supervisor.intensity + 0.5)
        raise InjectedCrash("service crashed, rarely")

    with trio.move_on_after(30 * 3.0 + 10):
        await supervisor.permanent("seldom", seldom)
    assert supervisor.restarts["seldom"] == 30
    assert supervisor.running["seldom"] == 1 or supervisor.running["seldom"] == 0


async def test_server_survives_a_listener_crash_and_escalation_closes_the_port(
    injector: FaultInjector,
) -> None:
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, FAULT_SETTINGS)
        listener = server.listeners[0]
        real_accept = listener.accept
        crashes = 0

        async def accept() -> trio.SocketStream:
            nonlocal crashes
            if crashes < limit:
                crashes += 1
                raise InjectedCrash("listener crashed")
            return await real_accept()

        # One crash: restarted at once, and the server keeps serving.
        limit = 1
        listener.accept = accept  # type: ignore[method-assign]
        await assert_serves(server.port)
        assert server.supervisor.restarts["listener"] >= 1
        await check_invariants(server, injector)
        await server.shutdown()

    # Six crashes in a row: the supervisor gives up, the server ends, the port closes.
    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve, FAULT_SETTINGS)
            port = server.port
            listener = server.listeners[0]
            real_accept = listener.accept
            crashes, limit = 0, 10**6
            listener.accept = accept  # type: ignore[method-assign]
            with socket.create_connection(("127.0.0.1", port)):
                pass  # wakes the listener, which crashes, and crashes...
            await trio.sleep_forever()
    assert info.group_contains(RestartIntensityExceeded)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


async def test_a_connection_crash_before_any_actor_is_contained(
    server: Server, injector: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crashing_plain_http(*args: object) -> bytes:
        raise InjectedCrash("crash while answering plain HTTP")

    monkeypatch.setattr(rtcserver.connection.frontdoor, "plain_http", crashing_plain_http)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(5):
            while await stream.receive_some(4096):
                pass
    await trio.testing.wait_all_tasks_blocked(0.05)  # the crash is counted after the close
    assert server.supervisor.crashes["connection"] == 1
    await check_invariants(server, injector)
