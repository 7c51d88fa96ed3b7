"""Crash containment, after OTP's `one_for_one` supervisor.

Two kinds of children, as in the book's `rtcserver_sup`:
- *temporary* children (one per connection): a crash is logged and ends that child
  only. Nothing is restarted; the client reconnects if it wants to.
- *permanent* children (long-lived services such as the listener): a crash is logged
  and the child restarted, unless it crashed more than `intensity` times within
  `period` seconds; then the supervisor gives up and escalates by raising
  `RestartIntensityExceeded`, which ends the server (Erlang's default: 5 in 10 s).

The supervisor also keeps the books: which children are running right now, so
tests and `/metrics` can see that nothing outlives its connection.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

log = logging.getLogger("rtcserver.supervisor")


class RestartIntensityExceeded(Exception):
    """A permanent child crashed too often; the supervisor escalates."""


@attrs.define(eq=False)
class Supervisor:
    intensity: int = 5
    period: float = 10.0
    running: collections.Counter[str] = attrs.field(factory=collections.Counter)
    crashes: collections.Counter[str] = attrs.field(factory=collections.Counter)
    restarts: collections.Counter[str] = attrs.field(factory=collections.Counter)

    async def temporary(self, kind: str, work: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run one temporary child to its end; contain (log) any crash."""
        self.running[kind] += 1
        try:
            await work(*args)
        except Exception:
            self.crashes[kind] += 1
            log.exception("temporary child %s crashed; the rest of the server carries on", kind)
        finally:
            self.running[kind] -= 1

    async def permanent(self, name: str, work: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run `work` forever, restarting it after a crash, within the intensity limit."""
        recent: collections.deque[float] = collections.deque()
        while True:
            self.running[name] += 1
            try:
                await work(*args)
                log.warning("permanent child %s returned; restarting it", name)
                failure: BaseException | None = None
            except Exception as exc:
                self.crashes[name] += 1
                log.exception("permanent child %s crashed", name)
                failure = exc
            finally:
                self.running[name] -= 1
            now = trio.current_time()
            recent.append(now)
            while recent and recent[0] <= now - self.period:
                recent.popleft()
            if len(recent) > self.intensity:
                raise RestartIntensityExceeded(
                    f"{name} stopped {len(recent)} times within {self.period:g}s "
                    f"(limit {self.intensity}); escalating"
                ) from failure
            self.restarts[name] += 1

    def live_children(self) -> int:
        return sum(self.running.values())
