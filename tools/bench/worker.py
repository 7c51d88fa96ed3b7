"""Load-generator processes and the conversation between them and the conductor.

The conductor (the parent process) owns a `Pool`. Each worker process runs one
asyncio loop that waits for commands on a pipe and runs the load named in each
(see loads.py). A load talks back with small tuples: ("progress", n),
("ready", info), ("stopped", info), ("result", info), or ("error", traceback).
Several processes, not threads: each has its own interpreter lock and its own file
descriptor limit, and the conductor reads every one's CPU time from /proc.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import resource
import time
import traceback
from collections.abc import Callable
from typing import Any, cast

Message = tuple[Any, ...]


class WorkerError(RuntimeError):
    """A worker failed; the message carries its traceback."""


class Quit(Exception):
    """The conductor told this worker to exit."""


class Control:
    """A load's side of the pipe, inside the worker's event loop."""

    def __init__(self, conn: multiprocessing.connection.Connection, index: int, count: int):
        self.conn = conn
        self.index = index
        self.count = count
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        asyncio.get_running_loop().add_reader(conn.fileno(), self._on_readable)
        # What "progress" means is the running load's business: it sets `counter`.
        self.counter: Callable[[], int] = lambda: 0

    def _on_readable(self) -> None:
        while self.conn.poll():
            try:
                self._queue.put_nowait(self.conn.recv())
            except EOFError:  # the conductor is gone: stop
                self._queue.put_nowait(("quit",))
                asyncio.get_running_loop().remove_reader(self.conn.fileno())
                return

    def send(self, *message: Any) -> None:
        self.conn.send(message)

    async def recv(self) -> Message:
        message = await self._queue.get()
        if message[0] == "quit":
            raise Quit
        return message

    async def expect(self, kind: str) -> Message:
        message = await self.recv()
        if message[0] != kind:
            raise WorkerError(f"expected {kind!r} from the conductor, got {message[0]!r}")
        return message

    async def report_progress(self, every: float = 0.25) -> None:
        """Run as a task during a load: tell the conductor how far it got."""
        last = -1
        while True:
            await asyncio.sleep(every)
            now = self.counter()
            if now != last:
                last = now
                self.send("progress", now)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def _worker_main(conn: multiprocessing.connection.Connection, index: int, count: int) -> None:
    raise_fd_limit()
    asyncio.run(_serve(conn, index, count))


async def _serve(conn: multiprocessing.connection.Connection, index: int, count: int) -> None:
    from .loads import LOADS

    control = Control(conn, index, count)
    while True:
        try:
            message = await control.recv()
        except Quit:
            return
        name, params = message[0], message[1]
        control.counter = lambda: 0
        reporter = asyncio.create_task(control.report_progress())
        try:
            await LOADS[name](control, **params)
        except Quit:
            return
        except Exception:
            control.send("error", f"worker {index}, load {name}:\n{traceback.format_exc()}")
        finally:
            reporter.cancel()


class Pool:
    """The conductor's handle on the worker processes."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[multiprocessing.connection.Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for index in range(count):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(child_end, index, count), name=f"bench-worker-{index}"
            )
            proc.start()
            child_end.close()
            self.conns.append(parent_end)
            self.procs.append(proc)
        self.progress = [0] * count
        self._pending: list[collections.deque[Message]] = [collections.deque() for _ in self.conns]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def __len__(self) -> int:
        return len(self.conns)

    def start(self, load: str, params_for: Callable[[int], dict[str, Any]]) -> None:
        """Start `load` in every worker; `params_for(i)` gives worker i its share."""
        self.progress = [0] * len(self.conns)
        for pending in self._pending:
            pending.clear()
        for index, conn in enumerate(self.conns):
            conn.send((load, params_for(index)))

    def tell_all(self, *message: Any) -> None:
        for conn in self.conns:
            conn.send(message)

    def _pump(self, timeout: float) -> None:
        """Read what the workers said within `timeout`: progress is noted, errors raise."""
        ready = multiprocessing.connection.wait(self.conns, max(0.0, timeout))
        for conn in cast(list[multiprocessing.connection.Connection], ready):
            index = self.conns.index(conn)
            while conn.poll():
                try:
                    message: Message = conn.recv()
                except EOFError:
                    raise WorkerError(f"worker {index} died") from None
                if message[0] == "progress":
                    self.progress[index] = message[1]
                elif message[0] == "error":
                    raise WorkerError(message[1])
                else:
                    self._pending[index].append(message)

    def gather(
        self,
        kind: str,
        timeout: float,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Any]:
        """Wait for one `kind` message from every worker; return their payloads in order."""
        deadline = time.monotonic() + timeout
        got: dict[int, Any] = {}
        while True:
            for index, pending in enumerate(self._pending):
                if index not in got and pending:
                    message = pending.popleft()
                    if message[0] != kind:
                        raise WorkerError(f"worker {index} sent {message[0]!r}, expected {kind!r}")
                    got[index] = message[1] if len(message) > 1 else None
            if on_progress is not None:
                on_progress(sum(self.progress))
            if len(got) == len(self.conns):
                return [got[i] for i in range(len(self.conns))]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = [i for i in range(len(self.conns)) if i not in got]
                raise WorkerError(f"workers {missing} sent no {kind!r} within {timeout:.0f}s")
            self._pump(min(remaining, 0.1))

    def wait_until(
        self, deadline_ns: int, on_progress: Callable[[int], None] | None = None
    ) -> None:
        """Sleep until a monotonic_ns deadline, keeping progress current meanwhile."""
        while True:
            remaining = (deadline_ns - time.monotonic_ns()) / 1e9
            if remaining <= 0:
                return
            self._pump(min(remaining, 0.1))
            if on_progress is not None:
                on_progress(sum(self.progress))

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("quit",))
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, 9)
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
