"""`--workers N`: one server as N worker processes, and the process that supervises them.

The supervisor (this module, in the process the user started) reserves the port,
starts N workers (`python -m rtcserver` again, told their place by `WORKER_ENV`),
says "listening" once every worker is, and then keeps them: a worker that dies is
started again at once, the others untouched; more than `INTENSITY` deaths within
`PERIOD` seconds and it gives up (all workers stopped, exit status 1), as
`actors.supervisor.Supervisor` does for tasks and Erlang's supervisors for processes.
SIGTERM or SIGINT is passed on to every worker, which drains within `--drain-timeout`.

Each worker listens on the same port (SO_REUSEPORT: the kernel spreads connections)
and has an inbox for connections handed over by the others (connection/handover.py;
rooms/owners.py says who owns what).
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Final

import attrs
import trio

from .rooms.owners import Workers
from .settings import Settings

log = logging.getLogger("rtcserver.workers")

# Set in a worker's environment: "index/count/group/ready-fd".
WORKER_ENV: Final = "_RTCSERVER_WORKER"
INTENSITY: Final = 5
PERIOD: Final = 10.0
# How long a starting worker may take to listen before it counts as failed.
START_TIMEOUT: Final = 30.0


@attrs.frozen
class WorkerPlace:
    workers: Workers
    ready_fd: int


def worker_place(environ: dict[str, str] | None = None) -> WorkerPlace | None:
    """This process's place, when it is a worker (None: it is not)."""
    text = (os.environ if environ is None else environ).get(WORKER_ENV)
    if not text:
        return None
    index, count, group, ready = text.split("/")
    return WorkerPlace(Workers(index=int(index), count=int(count), group=group), int(ready))


def tell_ready(place: WorkerPlace) -> None:
    """A worker listens: its supervisor may say so."""
    try:
        os.write(place.ready_fd, b"ready\n")
        os.close(place.ready_fd)
    except OSError:
        pass  # the supervisor is gone: the worker will be stopped soon enough


class GaveUp(Exception):
    """Workers died too often: the server stops."""


@attrs.define(eq=False)
class Pool:
    settings: Settings
    count: int
    argv: Sequence[str]
    port: int = 0
    group: str = attrs.field(factory=lambda: str(os.getpid()))
    processes: dict[int, trio.Process] = attrs.field(factory=dict)
    stopping: bool = False
    deaths: collections.deque[float] = attrs.field(factory=collections.deque)
    restarts: int = 0

    async def keep(self, index: int, started: trio.Event) -> None:
        """Run worker `index`, and again whenever it dies (within the intensity)."""
        while not self.stopping:
            process, ready = await self._start(index)
            if ready:
                started.set()
            code = await process.wait()
            self.processes.pop(index, None)
            if self.stopping:
                return
            now = trio.current_time()
            self.deaths.append(now)
            while self.deaths and self.deaths[0] < now - PERIOD:
                self.deaths.popleft()
            log.warning("event=worker-died worker=%d pid=%d status=%s", index, process.pid, code)
            if len(self.deaths) > INTENSITY:
                raise GaveUp(
                    f"workers died {len(self.deaths)} times within {PERIOD:g}s "
                    f"(limit {INTENSITY}); stopping"
                )
            self.restarts += 1

    async def _start(self, index: int) -> tuple[trio.Process, bool]:
        read_end, write_end = os.pipe()
        place = f"{index}/{self.count}/{self.group}/{write_end}"
        env = {**os.environ, WORKER_ENV: place}
        try:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "rtcserver", *self.argv, "--port", str(self.port)],
                env=env,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        self.processes[index] = process
        ready = False
        with trio.move_on_after(START_TIMEOUT):
            async with trio.lowlevel.FdStream(read_end) as pipe:
                ready = (await pipe.receive_some(16)).startswith(b"ready")
        if ready:
            log.info("event=worker-started worker=%d pid=%d", index, process.pid)
        return process, ready

    def signal_all(self, signum: int) -> None:
        for process in list(self.processes.values()):
            if process.returncode is None:
                process.send_signal(signum)

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        """Every worker drains (its own --drain-timeout), or is killed after it."""
        self.stopping = True
        self.signal_all(signum)
        with trio.move_on_after(self.settings.drain_timeout + 5.0):
            for process in list(self.processes.values()):
                await process.wait()
        self.signal_all(signal.SIGKILL)
        for process in list(self.processes.values()):
            await process.wait()


def reserve_port(settings: Settings) -> socket.socket:
    """Bind (without listening) the port every worker will listen on, so `--port 0`
    names one port for all, and the port stays the server's while a worker restarts."""
    host = settings.host or None
    family, kind, proto, _, address = socket.getaddrinfo(
        host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    holder = socket.socket(family, kind, proto)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(address)
    return holder


async def supervise(settings: Settings, count: int, argv: Sequence[str], url: str) -> int:
    """The supervisor process: start `count` workers, keep them, stop them on a signal.
    `url` is printed (with the port) once every worker listens. Returns the exit status."""
    holder = reserve_port(settings)
    pool = Pool(settings=settings, count=count, argv=argv, port=holder.getsockname()[1])
    status = 0
    with holder, trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                started = [trio.Event() for _ in range(count)]
                for index in range(count):
                    nursery.start_soon(pool.keep, index, started[index])
                with trio.move_on_after(START_TIMEOUT):
                    for event in started:
                        await event.wait()
                if not all(event.is_set() for event in started):
                    raise GaveUp("a worker did not start listening")
                print(f"rtcserver listening on {url.format(port=pool.port)}", flush=True)
                log.info("event=workers-ready workers=%d port=%d", count, pool.port)
                async for signum in signals:
                    log.info("event=signal signal=%s", signal.Signals(signum).name)
                    break
                await pool.stop()
                nursery.cancel_scope.cancel()
        except* GaveUp as failure:
            for error in failure.exceptions:
                log.error("event=workers-gave-up why=%s", error)
            status = 1
        finally:
            with trio.CancelScope(shield=True):
                await pool.stop()
    return status
