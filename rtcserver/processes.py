"""`--workers N`: one server as N worker processes, and the process that supervises them.

The supervisor (this module, in the process the user started) reserves the port,
starts N workers (`python -m rtcserver` again, told their place by `WORKER_ENV`),
says "listening" once every worker is, and then keeps them: a worker that dies is
started again at once, the others untouched; more than `INTENSITY` deaths within
`--worker-restart-period` seconds and it gives up (all workers stopped, exit status 1), as
`actors.supervisor.Supervisor` does for tasks and Erlang's supervisors for processes.
SIGTERM or SIGINT is passed on to every worker, which drains within `--drain-timeout`.

Each worker listens on the same port (SO_REUSEPORT: the kernel spreads connections)
and has an inbox for connections handed over by the others (connection/handover.py;
rooms/owners.py says who owns what).
"""

from __future__ import annotations

import collections
import contextlib
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

# Set in a worker's environment: "spare/count/group/ready-fd/control-fd". A worker is
# started as a *spare* ahead of need (Python's imports take a second or more), and
# becomes worker `index` when the supervisor writes that number to its control pipe:
# a dead worker is replaced in the time a process binds a socket. The control pipe
# stays open for the worker's life: its end (the supervisor is gone) stops the worker.
WORKER_ENV: Final = "_RTCSERVER_WORKER"
INTENSITY: Final = 5  # deaths within `worker_restart_period` that are restarted
# How long a starting worker may take to listen before it counts as failed.
START_TIMEOUT: Final = 30.0


@attrs.frozen
class WorkerPlace:
    workers: Workers
    ready_fd: int
    control_fd: int


def worker_place(environ: dict[str, str] | None = None) -> WorkerPlace | None:
    """This process's place, when it is a worker (None: it is not). A spare waits
    here, imports done, until the supervisor names its place (exits if it never does)."""
    text = (os.environ if environ is None else environ).get(WORKER_ENV)
    if not text:
        return None
    _, count, group, ready, control = text.split("/")
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(int(control), 16)
        if not chunk:
            sys.exit(0)  # the supervisor is gone, or stopping: this spare is not needed
        line += chunk
    index = int(line)
    return WorkerPlace(
        Workers(index=index, count=int(count), group=group), int(ready), int(control)
    )


def tell_ready(place: WorkerPlace) -> None:
    """A worker listens: its supervisor may say so."""
    try:
        os.write(place.ready_fd, b"ready\n")
        os.close(place.ready_fd)
    except OSError:
        pass  # the supervisor is gone: the control pipe's end stops this worker


async def supervisor_gone(place: WorkerPlace) -> None:
    """Return when the supervisor is gone (killed, say): its worker must not outlive it."""
    async with trio.lowlevel.FdStream(place.control_fd) as control:
        while await control.receive_some(16):
            pass


@attrs.define(eq=False)
class Spawned:
    process: trio.Process
    ready: int  # read end: "ready" once it listens
    control: int  # write end: its index, then kept open


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
    spare: Spawned | None = None
    controls: list[int] = attrs.field(factory=list)

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
            period = self.settings.worker_restart_period
            while self.deaths and self.deaths[0] < now - period:
                self.deaths.popleft()
            log.warning("event=worker-died worker=%d pid=%d status=%s", index, process.pid, code)
            if len(self.deaths) > INTENSITY:
                raise GaveUp(
                    f"workers died {len(self.deaths)} times within {period:g}s "
                    f"(limit {INTENSITY}); stopping"
                )
            self.restarts += 1

    async def _spawn(self) -> Spawned:
        ready_read, ready_write = os.pipe()
        control_read, control_write = os.pipe()
        place = f"spare/{self.count}/{self.group}/{ready_write}/{control_read}"
        try:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "rtcserver", *self.argv, "--port", str(self.port)],
                env={**os.environ, WORKER_ENV: place},
                pass_fds=(ready_write, control_read),
            )
        finally:
            os.close(ready_write)
            os.close(control_read)
        return Spawned(process=process, ready=ready_read, control=control_write)

    async def refill(self) -> None:
        """Keep one spare started ahead, for the next worker that dies."""
        if self.spare is None and not self.stopping:
            self.spare = await self._spawn()

    async def _start(self, index: int) -> tuple[trio.Process, bool]:
        spawned, self.spare = self.spare or await self._spawn(), None
        os.write(spawned.control, f"{index}\n".encode())
        self.controls.append(spawned.control)  # open for the worker's life
        process = spawned.process
        self.processes[index] = process
        ready = False
        with trio.move_on_after(START_TIMEOUT):
            async with trio.lowlevel.FdStream(spawned.ready) as pipe:
                ready = (await pipe.receive_some(16)).startswith(b"ready")
        if ready:
            log.info("event=worker-started worker=%d pid=%d", index, process.pid)
        await self.refill()
        return process, ready

    def signal_all(self, signum: int) -> None:
        spare = [self.spare.process] if self.spare is not None else []
        for process in [*self.processes.values(), *spare]:
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
        spare = [self.spare.process] if self.spare is not None else []
        for process in [*self.processes.values(), *spare]:
            await process.wait()
        for fd in self.controls:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.controls.clear()


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
