"""`--workers 2` as real processes: the supervisor starts, restarts, gives up and
drains them (rtcserver/processes.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time

import trio
from trio_websocket import ConnectionClosed

from tests.support.client import Client, connect
from tests.support.process import ServerProcess, running_server
from tests.support.waiting import eventually
from tests.test_phone import until

Stack = contextlib.AsyncExitStack
STARTED = re.compile(rb"event=worker-started worker=(\d+) pid=(\d+)")
# Three Pythons start at once (two workers and the spare): slow on a loaded machine.
STARTUP = 60.0


def _pids(server: ServerProcess) -> dict[int, int]:
    """The latest pid of each worker, from the supervisor's log."""
    server.read_output()
    return {int(w): int(p) for w, p in STARTED.findall(bytes(server.output))}


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _pair_on(stack: Stack, url: str, worker: int) -> tuple[Client, Client, int]:
    for _ in range(40):  # each new connection lands on either worker
        creator = await stack.enter_async_context(connect(url))
        room = await creator.create_room()
        if room % 2 == worker:
            joiner = await stack.enter_async_context(connect(url))
            await joiner.send({"type": "ENTERROOM", "value": room})
            await creator.expect("PEERJOINED")
            return creator, joiner, room
    raise AssertionError(f"no connection landed on worker {worker}")


async def test_a_killed_worker_is_replaced_and_the_others_lose_nothing() -> None:
    with running_server("--stun", "", "--workers", "2", startup_timeout=STARTUP) as server:
        url = server.ws_url
        pids = _pids(server)
        assert set(pids) == {0, 1}
        async with Stack() as stack:
            keep_a, keep_b, _ = await _pair_on(stack, url, 0)
            doomed, _, _ = await _pair_on(stack, url, 1)
            baseline = _open_fds(pids[0])
            received: list[int] = []

            async def listen() -> None:
                while len(received) < 500:
                    received.append((await keep_b.recv())["i"])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                with trio.fail_after(20):
                    for i in range(500):
                        await keep_a.send({"type": "DATA", "i": i})
                        if i == 100:
                            killed_at = time.monotonic()
                            os.kill(pids[1], signal.SIGKILL)
                        if i % 50 == 0:
                            await trio.sleep(0.01)  # pacing: ~5,000 msg/s
            assert received == list(range(500))  # the other worker's room lost nothing
            # The dead worker's clients are closed (they reconnect, as pages do).
            with trio.fail_after(5):
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await doomed.ws.get_message()
            await eventually(lambda: _pids(server)[1] != pids[1], 10, "worker 1 restarted")
            replaced_in = time.monotonic() - killed_at
            # Serving again: new rooms on both workers.
            await _pair_on(stack, url, 1)
            await _pair_on(stack, url, 0)
        assert replaced_in < 10, replaced_in
        out = server.read_output().decode()
        assert "event=worker-died worker=1" in out
        # No descriptor of the closed connections stays open in the surviving worker.
        await eventually(lambda: _open_fds(pids[0]) <= baseline, 10, "descriptors released")


async def test_workers_dying_too_often_stop_the_server_with_status_1() -> None:
    # A long period, so that the deaths count whatever this machine's load does to
    # the restarts' pace.
    args = ("--stun", "", "--workers", "2", "--worker-restart-period", "120")
    with running_server(*args, startup_timeout=STARTUP) as server:
        killed: set[int] = set()
        with trio.fail_after(90):
            while server.proc.poll() is None and len(killed) < 12:
                for pid in set(_pids(server).values()) - killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                await eventually(
                    lambda: (
                        server.proc.poll() is not None or bool(set(_pids(server).values()) - killed)
                    ),
                    30,
                    "a worker restarted, or the supervisor gave up",
                )
            assert server.proc.wait(timeout=20) == 1
        out = server.read_output().decode()
        assert "event=workers-gave-up" in out
        assert 6 <= len(killed) <= 7  # the intensity: 5 deaths are restarted, the 6th is not
        # Every worker is gone with it.
        for pid in _pids(server).values():
            assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_sigterm_drains_every_worker() -> None:
    args = ("--stun", "", "--workers", "2", "--drain-timeout", "3")
    with running_server(*args, startup_timeout=STARTUP) as server:
        async with Stack() as stack:
            pairs = [await _pair_on(stack, server.ws_url, w) for w in (0, 1)]
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            codes = []
            for creator, joiner, _ in pairs:
                for client in (creator, joiner):
                    codes.append((await client.expect_close(10)).code)
        assert codes == [1001] * 4
        assert server.proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 3 + 5
        pids = _pids(server)
        await eventually(lambda: not any(_alive(p) for p in pids.values()), 5, "workers gone")


async def test_by_default_every_cpu_gets_a_worker_and_seats_cross_processes() -> None:
    """`python -m rtcserver` with no --workers: one worker per CPU it may use. A
    logged-in user (its socket on worker 0) takes a seat in worker 1's room over the
    link between the two processes; killing worker 1 tells it so."""
    cpus = len(os.sched_getaffinity(0))
    with running_server("--stun", "", workers=None, startup_timeout=STARTUP) as server:
        pids = _pids(server)
        assert len(pids) == (cpus if cpus > 1 else 0)
        if cpus == 1:
            return  # one process: nothing crosses (the machine has one CPU for us)
        async with Stack() as stack:
            ann = await stack.enter_async_context(connect(server.ws_url))
            await ann.send({"type": "LOGIN", "name": "ann"})
            assert (await until(ann, "LOGIN"))["success"] is True
            creator, _, room = await _pair_on(stack, server.ws_url, 1)
            await creator.send({"type": "GETROOM", "value": "", "capacity": 3})
            room = (await creator.expect("GETROOM"))["value"]
            await creator.expect("ROOM")
            if room % 2 != 1:  # the creator's worker drew it: 1 unless it moved
                raise AssertionError(f"room {room} is not worker 1's")
            await ann.send({"type": "ENTERROOM", "value": room})
            roster = await until(ann, "ROOM")
            joined = await creator.expect("PEERJOINED")
            assert joined == {"type": "PEERJOINED", "id": roster["id"], "name": "ann"}
            for i in range(20):
                await ann.send({"type": "OFFER", "i": i})
                await creator.send({"type": "ANSWER", "i": i})
            for i in range(20):
                assert (await creator.recv())["i"] == i
                assert (await until(ann, "ANSWER"))["i"] == i
            os.kill(pids[1], signal.SIGKILL)
            error = await until(ann, "ERROR", timeout=10)
            assert error["code"] == "worker-unreachable", error
            # Its name lives on: the directory worker still answers it.
            await ann.send({"type": "GETROOM", "value": ""})
            assert (await until(ann, "GETROOM"))["value"] % 2 == 0
