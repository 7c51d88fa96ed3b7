"""`--directory`: directory storms and simultaneous calls (issue 12), rtcserver against
the naive Node directory (tools/baseline/directory.js) in the same run.

Scenarios, each on a fresh server, each bounded in count and time:

- `storm-N`   N clients connect, then all send LOGIN at once; the window ends when every
              client knows every other. Server CPU, wall time, clients closed, the
              load generator's CPU; at the largest N also RSS per logged-in user
              (server RSS growth from before the connections to after the storm ÷ N)
              and `extra`: three more logins, one at a time, each until all N saw it
              (p50/p99 of the N × 3 delays).
- `leave-N`   N logged in (gradually), then 10% drop their connections at once: the
              time until every remaining client knows (rtcserver only by default: the
              naive server's N² login frames take minutes at N = 10,000).
- `calls-N`   N logged in, then N/2 CALLs at once (client 2k calls 2k+1), each callee
              ACCEPTs its INCOMINGCALL: INCOMINGCALL delay p50/p99, calls completed,
              clients closed, server CPU.

The load generator is this one asyncio process (client.py's lean WebSocket); with
`--pin` it runs on core 1 and the server on core 0. Its CPU is reported per window.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from . import procstat
from .client import Connection, Endpoint, connect
from .progress import say
from .stats import percentile
from .targets import BASELINE_DIR, LOADGEN_CORE, Launcher, Target, _launch, rtcserver_launcher
from .worker import raise_fd_limit

WINDOW_LIMIT = 300.0  # seconds any one window may take before it is called failed


def directory_baseline_launcher(log_dir: Path, pin: bool) -> Launcher:
    node = shutil.which("node")
    assert node is not None
    cmd = [node, str(BASELINE_DIR / "directory.js"), "--host", "127.0.0.1", "--port", "0"]
    counter = iter(range(1_000_000))

    def launch() -> Target:
        path = log_dir / f"node-directory-{next(counter)}.log"
        return _launch("node-directory", cmd, BASELINE_DIR, path, pin)

    return launch


# Names are read with C-speed regular expressions, not a JSON parser: the load
# generator folds millions of directory entries and must stay well under one core.
# Both servers write {"name":N,"status":S} in that order (orjson, JSON.stringify).
_NAME = re.compile(rb'"name":"([^"]*)"')
_ONLINE = re.compile(rb'"name":"([^"]*)","status":"(?:available|in-call)"')
_OFFLINE = re.compile(rb'"name":"([^"]*)","status":"offline"')


class User:
    """One client's view of the directory (names as bytes), folded from either
    server's frames.

    rtcserver (protocol v2): USERS (a snapshot, you included) and DIRECTORY (net changes).
    The Node directory (v1): USERS (the others), USERJOINED, USERLEFT, PRESENCE.
    """

    __slots__ = ("conn", "inbox", "known", "name", "on_change")

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name.encode()
        self.known: set[bytes] = set()
        self.inbox: list[tuple[float, dict[str, Any]]] = []
        self.on_change: Any = None
        conn.on_text = self.on_text

    def on_text(self, payload: bytes) -> None:
        head = payload[:24]
        known = self.known
        if head.startswith(b'{"type":"DIRECTORY"'):
            known.update(_ONLINE.findall(payload))
            known.difference_update(_OFFLINE.findall(payload))
        elif head.startswith(b'{"type":"USERJOINED"'):
            known.update(_NAME.findall(payload))
        elif head.startswith(b'{"type":"USERLEFT"'):
            known.difference_update(_NAME.findall(payload))
        elif head.startswith(b'{"type":"PRESENCE"'):
            return
        elif head.startswith(b'{"type":"USERS"'):
            self.known = known = set(_NAME.findall(payload))
        else:
            self.inbox.append((time.monotonic(), orjson.loads(payload)))
            if self.on_change is not None:
                self.on_change(self)
            return
        known.add(self.name)  # the Node server lists only the others
        if self.on_change is not None:
            self.on_change(self)


class Waiter:
    """Resolves `future` once every user's view satisfies `done`, or its connection
    is gone (counted as closed by the caller, never waited for)."""

    def __init__(self, users: list[User], done: Any) -> None:
        self.pending = {id(u) for u in users if not done(u) and not u.conn.lost.done()}
        self.done = done
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for user in users:
            user.on_change = self.check
            user.conn.lost.add_done_callback(functools.partial(self._lost, id(user)))
        self.drop(0)

    def check(self, user: User) -> None:
        if id(user) in self.pending and self.done(user):
            self.drop(id(user))

    def _lost(self, key: int, _: object) -> None:
        self.drop(key)

    def drop(self, key: int) -> None:
        self.pending.discard(key)
        if not self.pending and not self.future.done():
            self.future.set_result(None)


async def _open(endpoint: Endpoint, count: int, first: int, prefix: str) -> list[User]:
    users: list[User] = []
    sem = asyncio.Semaphore(100)

    async def one(i: int) -> None:
        async with sem:
            users.append(User(await connect(endpoint), f"{prefix}{i}"))

    await asyncio.gather(*(one(i) for i in range(first, first + count)))
    return users


def _closed(users: list[User]) -> int:
    return sum(1 for u in users if u.conn.lost.done())


def _close_codes(users: list[User]) -> dict[str, int]:
    """How the closed ones were closed: the server's close code, or `none` (TCP only)."""
    codes: dict[str, int] = {}
    for user in users:
        if user.conn.lost.done():
            key = str(user.conn.close_code)
            codes[key] = codes.get(key, 0) + 1
    return codes


async def _until(users: list[User], done: Any, limit: float) -> bool:
    """Wait (at most `limit` s) until every user still connected satisfies `done`."""
    waiter = Waiter(users, done)
    try:
        async with asyncio.timeout(limit):
            await waiter.future
        return all(done(u) for u in users)
    except TimeoutError:
        return False
    finally:
        for user in users:
            user.on_change = None


def knows_all(everyone: set[bytes]) -> Any:
    """Whether a user knows `everyone`: the size first, so that checking after every
    frame stays cheap (a superset test is O(N))."""
    size = len(everyone)
    return lambda u: len(u.known) >= size and u.known >= everyone


class Cpu:
    def __init__(self, server: int | None) -> None:
        self.server, self.t0, self.s0, self.l0 = server, 0.0, 0.0, 0.0

    def begin(self) -> None:
        self.t0 = time.monotonic()
        self.s0 = procstat.cpu_seconds(self.server) if self.server else 0.0
        self.l0 = time.process_time()

    def end(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        server = (procstat.cpu_seconds(self.server) - self.s0) if self.server else float("nan")
        loadgen = time.process_time() - self.l0
        return {
            "wall_s": wall,
            "server_cpu_s": server,
            "loadgen_cpu_s": loadgen,
            "loadgen_cores": loadgen / wall if wall else 0.0,
        }


async def storm(target: Target, n: int, extra: bool) -> dict[str, Any]:
    endpoint = Endpoint.resolve(target.ws_url)
    rss0 = procstat.rss_bytes(target.pid) if target.pid else 0
    users = await _open(endpoint, n, 0, "u")
    everyone = {u.name for u in users}
    cpu = Cpu(target.pid)
    cpu.begin()
    for user in users:
        user.conn.send_json({"type": "LOGIN", "name": user.name.decode()})
    complete = await _until(users, knows_all(everyone), WINDOW_LIMIT)
    result: dict[str, Any] = {"scenario": f"storm-{n}", "n": n, "complete": complete}
    result |= cpu.end()
    result["closed"] = _closed(users)
    result["close_codes"] = _close_codes(users)
    result["learnt_all"] = sum(1 for u in users if knows_all(everyone)(u))
    if target.pid:
        result["rss_per_user_kb"] = (procstat.rss_bytes(target.pid) - rss0) / n / 1024
    if extra and complete:
        delays: list[float] = []
        for k in range(3):
            name = f"extra{k}".encode()
            newcomer = (await _open(endpoint, 1, k, "extra"))[0]
            start = time.monotonic()
            newcomer.conn.send_json({"type": "LOGIN", "name": name.decode()})
            seen: dict[int, float] = {}

            def saw(user: User, name: bytes = name, seen: dict[int, float] = seen) -> bool:
                if name in user.known and id(user) not in seen:
                    seen[id(user)] = time.monotonic()
                return name in user.known

            await _until(users, saw, 30.0)
            delays += [t - start for t in seen.values()]
            delays += [float("inf")] * (len(users) - len(seen))
            await asyncio.sleep(1.0)  # a quiet spell between two extra logins
        delays.sort()
        result["extra_p50_ms"] = percentile(delays, 50) * 1000
        result["extra_p99_ms"] = percentile(delays, 99) * 1000
    for user in users:
        user.conn.abort()
    return result


async def _logged_in(target: Target, n: int, limit: float) -> list[User]:
    """N users, logged in in batches (not a storm: the setup of another scenario)."""
    endpoint = Endpoint.resolve(target.ws_url)
    users = await _open(endpoint, n, 0, "u")
    everyone = {u.name for u in users}
    for start in range(0, n, 500):
        for user in users[start : start + 500]:
            user.conn.send_json({"type": "LOGIN", "name": user.name.decode()})
        await asyncio.sleep(0.2)
    await _until(users, knows_all(everyone), limit)
    return users


async def leave(target: Target, n: int) -> dict[str, Any]:
    users = await _logged_in(target, n, WINDOW_LIMIT)
    cut = n // 10
    leaving, staying = users[:cut], users[cut:]
    remaining = {u.name for u in staying}
    cpu = Cpu(target.pid)
    cpu.begin()
    for user in leaving:
        user.conn.abort()
    complete = await _until(
        staying, lambda u: len(u.known) == len(remaining) and u.known == remaining, WINDOW_LIMIT
    )
    result: dict[str, Any] = {"scenario": f"leave-{n}", "n": n, "complete": complete}
    result |= cpu.end()
    result["closed"] = _closed(staying)
    result["close_codes"] = _close_codes(staying)
    for user in staying:
        user.conn.abort()
    return result


async def calls(target: Target, n: int) -> dict[str, Any]:
    users = await _logged_in(target, n, WINDOW_LIMIT)
    callers, callees = users[0::2], users[1::2]
    for user in users:
        user.inbox.clear()
    cpu = Cpu(target.pid)
    cpu.begin()
    sent = time.monotonic()
    for caller, callee in zip(callers, callees, strict=True):
        caller.conn.send_json({"type": "CALL", "to": callee.name.decode(), "media": "data"})
    incoming: dict[int, float] = {}

    def accepted(user: User) -> bool:
        for at, message in user.inbox:
            if message.get("type") == "INCOMINGCALL" and id(user) not in incoming:
                incoming[id(user)] = at - sent
                user.conn.send_json({"type": "ACCEPT", "call": message["call"]})
        return any(m.get("type") == "CALLACCEPTED" for _, m in user.inbox)

    complete = await _until(users, accepted, WINDOW_LIMIT)
    result: dict[str, Any] = {"scenario": f"calls-{n}", "n": n, "complete": complete}
    result |= cpu.end()
    result["closed"] = _closed(users)
    result["close_codes"] = _close_codes(users)
    result["calls_completed"] = sum(
        1 for c in callers if any(m.get("type") == "CALLACCEPTED" for _, m in c.inbox)
    )
    delays = sorted(incoming.values()) + [float("inf")] * (len(callees) - len(incoming))
    result["incoming_p50_ms"] = percentile(delays, 50) * 1000
    result["incoming_p99_ms"] = percentile(delays, 99) * 1000
    for user in users:
        user.conn.abort()
    return result


SCENARIOS = ("storm", "leave", "calls")


def run_directory(
    log_dir: Path,
    pin: bool,
    json_path: Path | None,
    sizes: list[int],
    leave_n: int,
    calls_n: int,
    baseline: bool,
    baseline_leave: bool,
) -> int:
    raise_fd_limit()
    if pin:
        os.sched_setaffinity(0, {LOADGEN_CORE})
    launchers: dict[str, Launcher] = {
        # 127.0.0.1 is one address: lift the per-address limit for the load generator.
        "rtcserver": rtcserver_launcher(
            log_dir, pin, ["--log-level", "warning", "--max-connections-per-address", "100000"]
        )
    }
    if baseline:
        launchers["node"] = directory_baseline_launcher(log_dir, pin)
    results: list[dict[str, Any]] = []

    def measure(name: str, scenario: Any, *args: Any) -> None:
        target = launchers[name]()
        try:
            say(f"{name}: {scenario.__name__} {args}")
            result = asyncio.run(scenario(target, *args))
            result["target"] = name
            results.append(result)
            say(json.dumps(result))
        finally:
            target.stop()

    for n in sizes:
        for name in launchers:
            measure(name, storm, n, n == max(sizes))
    for name in launchers:
        if name == "rtcserver" or baseline_leave:
            measure(name, leave, leave_n)
    for name in launchers:
        measure(name, calls, calls_n)
    _print(results)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"directory": results}, indent=2))
    return 0 if all(r["complete"] and not r["closed"] for r in results) else 1


def _print(results: list[dict[str, Any]]) -> None:
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    keys = [
        "wall_s", "server_cpu_s", "loadgen_cores", "closed", "rss_per_user_kb",
        "extra_p50_ms", "extra_p99_ms", "calls_completed", "incoming_p50_ms", "incoming_p99_ms",
    ]  # fmt: skip
    print(f"\n{'scenario':<12} {'target':<10} {'ok':<3} " + " ".join(f"{k:>15}" for k in keys))
    for r in results:
        cells = " ".join(f"{fmt(r.get(k, '-')):>15}" for k in keys)
        print(f"{r['scenario']:<12} {r['target']:<10} {'y' if r['complete'] else 'n':<3} {cells}")
