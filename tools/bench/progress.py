"""A plain-text progress bar on stderr: one line redrawn in place on a terminal,
one line per finished step otherwise (so CI logs stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 28


class Bar:
    def __init__(self, label: str, total: float, unit: str = "", stream: TextIO | None = None):
        self.label = label
        self.total = max(total, 1e-9)
        self.unit = unit
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def update(self, done: float, note: str = "") -> None:
        now = time.monotonic()
        if not self.live or now - self._last < 0.1:
            return
        self._last = now
        self._draw(done, note)

    def finish(self, note: str = "") -> None:
        elapsed = time.monotonic() - self._started
        line = f"{self.label:<28} done in {elapsed:5.1f}s  {note}"
        if self.live:
            self.stream.write("\r\033[K" + line + "\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _draw(self, done: float, note: str) -> None:
        fraction = min(1.0, max(0.0, done / self.total))
        filled = int(fraction * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        self.stream.write(f"\r\033[K{self.label:<28} [{bar}] {fraction * 100:3.0f}% {note}")
        self.stream.flush()


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
