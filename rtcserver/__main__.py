"""`python -m rtcserver`: parse options, set up logging, run until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import sys

import trio

from .app import main as run
from .config import load_settings


def main(argv: list[str] | None = None) -> int:
    settings = load_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    trio.run(run, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
