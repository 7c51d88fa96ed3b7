"""Refusals at the front door: every one counted, and logged at most once a second per address.

A refusal is an HTTP answer instead of what the client asked for (503 over a limit,
408 for a head that never came, 421, 403, 401, 400). Each is counted as
`refused:<cause>` in `ServerState.counters` (`rtcserver_refused{reason=...}` in
/metrics) and logged with its cause. A flood from one address must not flood the log:
the first refusal of an address in a `window` is logged at once; later ones in the
same window are only counted, and their number goes out as `suppressed=N` on that
address's next line (a window or more later). Memory is bounded too: past
`max_addresses` addresses seen within one window, the others share one line a window
(`addr=*`). Pure: the caller passes the clock.
"""

from __future__ import annotations

import collections
import logging
from typing import Final

import attrs

# One line a second per address: enough to see who is refused and why, and a flood
# from one host writes one line a second, not one per connection.
WINDOW: Final = 1.0
MAX_ADDRESSES: Final = 4096
ANY_ADDRESS: Final = "*"


@attrs.define(eq=False, slots=True)
class _Window:
    start: float
    suppressed: int = 0


@attrs.define(eq=False)
class RefusalLog:
    counters: collections.Counter[str]
    logger: logging.Logger
    window: float = WINDOW
    max_addresses: int = MAX_ADDRESSES
    _windows: dict[str, _Window] = attrs.field(factory=dict)
    _swept: float = float("-inf")

    def refuse(self, now: float, address: str, status: int, cause: str, detail: str = "") -> None:
        """Count one refusal of `address` (a host, no port) for `cause`, and log it
        unless this address already had its line in the current window. `detail` is
        appended to the line as it is (`key=value` pairs, made log-safe by the caller)."""
        self.counters[f"refused:{cause}"] += 1
        if now - self._swept >= self.window:
            self._sweep(now)
        window = self._windows.get(address)
        if window is None and len(self._windows) >= self.max_addresses:
            address = ANY_ADDRESS  # every tracked address is in its window: share a line
            window = self._windows.get(address)
        if window is not None and now - window.start < self.window:
            window.suppressed += 1
            return
        suppressed = window.suppressed if window is not None else 0
        self._windows[address] = _Window(start=now)
        self.logger.info(
            "addr=%s event=refused status=%d cause=%s%s%s",
            address,
            status,
            cause,
            f" {detail}" if detail else "",
            f" suppressed={suppressed}" if suppressed else "",
        )

    def _sweep(self, now: float) -> None:
        """Forget the windows that have ended; one that suppressed lines says how many."""
        self._swept = now
        ended = [a for a, w in self._windows.items() if now - w.start >= self.window]
        for address in ended:
            window = self._windows.pop(address)
            if window.suppressed:
                self.logger.info("addr=%s event=refused suppressed=%d", address, window.suppressed)
