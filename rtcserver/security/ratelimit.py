"""A token bucket: the per-connection message-rate limit. Pure; time is passed in."""

from __future__ import annotations

import attrs


@attrs.define
class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up. A rate of 0 means no limit."""

    rate: float
    burst: int
    tokens: float = attrs.field(init=False)
    stamp: float = attrs.field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> bool:
        """Spend one token if there is one. Returns whether the message may pass."""
        if self.rate <= 0:
            return True
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def delay(self, now: float) -> float:
        """Spend one token if there is one (0.0); otherwise the seconds until there is
        (nothing spent: ask again then)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def _refill(self, now: float) -> None:
        elapsed = now - self.stamp
        self.stamp = now
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
