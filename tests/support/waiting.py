"""Waiting for state that sends no event: another process's (Redis, another node's
/healthz), or what a server's timer does (a lost socket's session ending at its grace).

Such state is polled, always under a deadline. This is the one place that polls;
everything else waits on events or messages instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import trio

POLL_INTERVAL = 0.05


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str = "condition"
) -> None:
    """Return as soon as `check()` is true; fail after `timeout` seconds."""
    with trio.move_on_after(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await trio.sleep(POLL_INTERVAL)
    raise AssertionError(f"{what} not reached within {timeout:g}s")
