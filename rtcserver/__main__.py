"""`python -m rtcserver`: parse options, set up logging, run until SIGINT/SIGTERM.

`python -m rtcserver admin …` is the admin API's command-line client instead
(`admincli.py`)."""

from __future__ import annotations

import logging
import sys

import trio

from . import admincli, extras, processes
from .app import display_url
from .app import main as run
from .config import load_settings, worker_count


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["admin"]:
        return admincli.main(args[1:])
    settings = load_settings(args)
    problem = extras.missing("cluster", "--redis") if settings.redis else None
    if problem is not None:
        print(f"rtcserver: {problem}", file=sys.stderr)
        return 2  # a usage error, as argparse's own
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    place = processes.worker_place()
    count = worker_count(settings) or 1
    if place is None and count > 1:
        args = sys.argv[1:] if argv is None else argv
        url = display_url(settings, "{port}")
        try:
            return trio.run(processes.supervise, settings, count, args, url)
        except OSError as taken:
            where = f"{settings.host}:{settings.port}"
            print(f"rtcserver: cannot listen on {where}: {taken}", file=sys.stderr)
            return 1
    if place is None and settings.tls and settings.workers.strip() != "1":
        logging.getLogger("rtcserver").warning(
            "event=workers-single why=tls: with TLS in rtcserver one process serves"
        )
    failures: list[BaseException] = []
    try:
        trio.run(run, settings, place)
    except* OSError as group:
        failures.extend(group.exceptions)
    for error in failures:
        # Most often the port is taken: say so in one line, not a traceback.
        print(
            f"rtcserver: cannot listen on {settings.host}:{settings.port}: {error}", file=sys.stderr
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
