"""Command line: ``python tools/bench [--url WS_URL] [--quick] [--json PATH] ...``."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from .config import QUICK, SCENARIOS, Plan, make_plan
from .crossnode import run_cluster
from .directory import run_directory
from .fanout import run_fanout
from .plot import matplotlib_missing
from .progress import say
from .run import run
from .targets import (
    Launcher,
    baseline_launcher,
    baseline_ready,
    remote_launcher,
    rtcserver_launcher,
)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def _scenarios(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {unknown}; choose from {SCENARIOS}")
    return names


def _default(field: str) -> str:
    normal = getattr(Plan, field)
    shown = (
        ",".join(map(str, normal))
        if isinstance(normal, tuple)
        else f"{normal:g}"
        if isinstance(normal, float)
        else str(normal)
    )
    if field in QUICK:
        return f"default {shown}; --quick {QUICK[field]:g}"
    return f"default {shown}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python tools/bench",
        description="Benchmark rtcserver: relay throughput, latency under a fixed rate, idle "
        "connections and their memory, room setups, server CPU per message. Without --url it "
        "starts a local rtcserver, and the Node baseline relay (tools/baseline) when node is "
        "installed, and reports both with their ratio.",
    )
    target = p.add_argument_group("what to measure")
    target.add_argument(
        "--url",
        help="a running server's WebSocket URL (ws:// or wss://); "
        "without it a local rtcserver is started on 127.0.0.1",
    )
    target.add_argument(
        "--server-pid",
        type=int,
        help="with --url: the PID of that server if it runs on this machine, "
        "to read its CPU time and memory",
    )
    target.add_argument(
        "--insecure", action="store_true", help="with a wss:// URL: do not verify the certificate"
    )
    target.add_argument(
        "--baseline",
        choices=("auto", "on", "off", "only"),
        default="auto",
        help="the Node baseline: auto = when node is present and no --url "
        "is given; only = the baseline alone (default auto)",
    )
    target.add_argument(
        "--server-dir",
        type=Path,
        help="run the local rtcserver from this source tree (a worktree, an exported "
        "commit) instead of the checkout the benchmark is in",
    )
    target.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the local rtcserver (repeatable)",
    )
    target.add_argument(
        "--cluster",
        action="store_true",
        help="instead of the scenarios: cross-node relay over Redis (two rtcserver nodes "
        "and a private redis-server) against one node, ping-pong in the same run "
        "(uses --rooms, --seconds and the first of --payloads)",
    )
    target.add_argument(
        "--directory",
        action="store_true",
        help="instead of the scenarios: directory storms (N LOGINs at once), 10%% of N "
        "users leaving at once, N/2 calls at once, against the naive Node directory "
        "(tools/baseline/directory.js) in the same run",
    )
    target.add_argument(
        "--storm-sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1000, 5000],
        metavar="N,N",
        help="--directory: users logging in at once, per storm (default 1000,5000); the "
        "largest also measures RSS per user and one extra login seen by all",
    )
    target.add_argument(
        "--leave-users",
        type=int,
        default=10000,
        metavar="N",
        help="--directory: users logged in when 10%% of them leave at once (default 10000; "
        "rtcserver only unless --baseline on)",
    )
    target.add_argument(
        "--call-users",
        type=int,
        default=1000,
        metavar="N",
        help="--directory: users logged in when N/2 of them call the others (default 1000)",
    )
    target.add_argument(
        "--fanout",
        action="store_true",
        help='instead of the scenarios: rooms of 8 (broadcast, and targeted with "to") '
        "against rooms of two, CPU per delivered message, closed loop (uses --rooms: a "
        "quarter as many rooms of 8; --seconds and the first of --payloads)",
    )
    how = p.add_argument_group("how")
    how.add_argument(
        "--scenarios",
        type=_scenarios,
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default all)",
    )
    how.add_argument(
        "--quick",
        action="store_true",
        help="small counts and short windows: the whole run in under 30 s",
    )
    how.add_argument(
        "--repeat",
        type=int,
        help=f"runs per scenario; medians with min–max are reported ({_default('repeat')})",
    )
    how.add_argument(
        "--loadgen",
        type=int,
        dest="workers",
        help=f"load-generator processes ({_default('workers')})",
    )
    how.add_argument(
        "--workers",
        dest="server_workers",
        metavar="N",
        help="the local rtcserver's worker processes (its --workers: N or auto; default 1). "
        "CPU and memory are summed over its supervisor and workers",
    )
    how.add_argument(
        "--placement",
        choices=("kernel", "apart", "same", "seated"),
        default="kernel",
        help="with --workers N (N > 1): where each room's two members go. kernel: where "
        "the kernel puts them (default); apart: the joiner lands on another worker than "
        "the room's (then handed over); same: on the room's own worker; seated: the "
        "joiner logs in and the room is another worker's, so every relay crosses the "
        "local link (the baseline runs as always)",
    )
    how.add_argument(
        "--pin",
        action="store_true",
        help="pin the server to core 0 and the load generator to core 1",
    )
    sizes = p.add_argument_group("sizes (each scenario is bounded in count and in time)")
    sizes.add_argument(
        "--rooms",
        type=int,
        dest="pingpong_rooms",
        help=f"ping-pong rooms ({_default('pingpong_rooms')})",
    )
    sizes.add_argument(
        "--payloads", type=_ints, help=f"ping-pong message sizes in bytes ({_default('payloads')})"
    )
    sizes.add_argument(
        "--seconds",
        type=float,
        dest="pingpong_seconds",
        help=f"ping-pong window per size ({_default('pingpong_seconds')})",
    )
    sizes.add_argument("--open-rooms", type=int, help=f"open-loop rooms ({_default('open_rooms')})")
    sizes.add_argument(
        "--rate",
        type=float,
        dest="open_rate",
        help=f"open-loop total msgs/s ({_default('open_rate')})",
    )
    sizes.add_argument(
        "--open-seconds", type=float, help=f"open-loop window ({_default('open_seconds')})"
    )
    sizes.add_argument(
        "--late-ms",
        type=float,
        help=f"open loop: a message slower than this is late ({_default('late_ms')})",
    )
    sizes.add_argument(
        "--idle",
        type=int,
        dest="idle_connections",
        help=f"idle connections ({_default('idle_connections')})",
    )
    sizes.add_argument("--setups", type=int, help=f"room setups at most ({_default('setups')})")
    sizes.add_argument(
        "--setups-seconds",
        type=float,
        help=f"room setups: time limit ({_default('setups_seconds')})",
    )
    sizes.add_argument(
        "--setup-concurrency",
        type=int,
        help=f"room setups in parallel ({_default('setup_concurrency')})",
    )
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write every figure as JSON to this path")
    out.add_argument(
        "--plot", type=Path, help="draw the latency distributions to this PNG (needs matplotlib)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    plan = make_plan(
        args.quick,
        scenarios=args.scenarios,
        repeat=args.repeat,
        workers=args.workers,
        insecure=args.insecure or None,
        pingpong_rooms=args.pingpong_rooms,
        payloads=args.payloads,
        pingpong_seconds=args.pingpong_seconds,
        open_rooms=args.open_rooms,
        open_rate=args.open_rate,
        open_seconds=args.open_seconds,
        late_ms=args.late_ms,
        idle_connections=args.idle_connections,
        setups=args.setups,
        setups_seconds=args.setups_seconds,
        setup_concurrency=args.setup_concurrency,
    )
    if plan.repeat < 1 or plan.workers < 1:
        say("--repeat and --loadgen must be at least 1")
        return 2
    if args.plot is not None and (missing := matplotlib_missing()) is not None:
        say(missing)
        return 2
    if args.pin and (os.cpu_count() or 1) < 2:
        say("--pin needs at least two cores; running unpinned")
        args.pin = False

    log_dir = Path(tempfile.mkdtemp(prefix="rtcbench-"))
    if args.directory:
        node_ok, why = baseline_ready()
        if not node_ok:
            say(why)
        status = run_directory(
            log_dir,
            args.pin,
            args.json,
            sizes=args.storm_sizes,
            leave_n=args.leave_users,
            calls_n=args.call_users,
            baseline=node_ok and args.baseline != "off",
            baseline_leave=args.baseline == "on",
        )
        if status == 0:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            say(f"server logs kept in {log_dir}")
        return status
    if args.cluster or args.fanout:
        if args.cluster:
            status = run_cluster(plan, log_dir, args.pin, args.json, args.server_dir)
        else:
            status = run_fanout(plan, log_dir, args.pin, args.json)
        if status == 0:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            say(f"server logs kept in {log_dir}")
        return status
    launchers: dict[str, Launcher] = {}
    if args.url:
        launchers["rtcserver"] = remote_launcher(args.url, args.server_pid)
    elif args.baseline != "only":
        placement = ""
        if args.placement != "kernel":
            count = args.server_workers or "1"
            count = str(len(os.sched_getaffinity(0))) if count == "auto" else count
            if int(count) < 2:
                say(f"--placement {args.placement} needs --workers 2 or more")
                return 2
            placement = f"{args.placement}:{count}"
            if args.placement == "seated":  # no directory pushes to the logged-in joiners
                args.server_arg = [*args.server_arg, "--no-directory"]
        launchers["rtcserver"] = rtcserver_launcher(
            log_dir,
            args.pin,
            [
                *args.server_arg,
                # One process unless asked: the ratios to Node's one process stay comparable.
                "--workers",
                args.server_workers or "1",
            ],
            args.server_dir,
            placement,
        )
    want_baseline = args.baseline in ("on", "only") or (args.baseline == "auto" and not args.url)
    if want_baseline:
        ok, why = baseline_ready()
        if ok:
            launchers["baseline"] = baseline_launcher(log_dir, args.pin)
        elif args.baseline in ("on", "only"):
            say(why)
            return 2
        else:
            say(why)
    if not launchers:
        say("nothing to measure")
        return 2
    say(
        f"targets: {', '.join(launchers)}; scenarios: {', '.join(plan.scenarios)}; "
        f"{plan.workers} load-generator processes"
    )
    try:
        status = run(
            plan,
            launchers,
            args.pin,
            args.json,
            args.plot,
            {
                "command": shlex.join([sys.executable, "tools/bench", *(argv or sys.argv[1:])]),
                "url": args.url,
            },
        )
    except RuntimeError as exc:
        say(f"{exc}\n(server logs kept in {log_dir})")
        return 2
    except KeyboardInterrupt:
        say(f"interrupted (server logs kept in {log_dir})")
        return 130
    if status == 0:
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        say(f"server logs kept in {log_dir}")
    return status
