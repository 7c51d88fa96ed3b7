"""The benchmark's plan: every default lives here, once, and `--help` quotes it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

SCENARIOS = ("pingpong", "openloop", "idle", "setups")


@dataclass(frozen=True)
class Plan:
    scenarios: tuple[str, ...] = SCENARIOS
    workers: int = 2
    repeat: int = 1
    insecure: bool = False

    # ping-pong: closed loop, one message in flight per room, once per payload size
    pingpong_rooms: int = 100
    payloads: tuple[int, ...] = (200, 2048)
    pingpong_seconds: float = 5.0
    pingpong_max_messages: int = 5_000_000

    # open loop: a fixed total rate spread over many rooms, whatever the server does
    open_rooms: int = 500
    open_rate: float = 5000.0
    open_seconds: float = 10.0
    open_size: int = 200
    late_ms: float = 50.0

    # idle: connections in quiet rooms, and what each costs the server in memory
    idle_connections: int = 10_000
    idle_hold_seconds: float = 2.0

    # room setups: connect, GETROOM, connect, ENTERROOM, first relay; back to back
    setups: int = 3000
    setups_seconds: float = 20.0
    setup_concurrency: int = 32

    # how the loads open their rooms, and how long anything may take before it fails
    room_open_concurrency: int = 64
    setup_timeout: float = 10.0
    drain_timeout: float = 5.0


# `--quick`: the same scenarios, small enough to finish in well under 30 seconds.
QUICK = {
    "pingpong_rooms": 20,
    "pingpong_seconds": 1.0,
    "open_rooms": 50,
    "open_rate": 1000.0,
    "open_seconds": 1.5,
    "idle_connections": 400,
    "idle_hold_seconds": 0.3,
    "setups": 200,
    "setups_seconds": 5.0,
    "setup_concurrency": 8,
}


def make_plan(quick: bool, **overrides: object) -> Plan:
    """The default plan (or the quick one), with the options the user gave on top."""
    values: dict[str, object] = dict(QUICK) if quick else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(Plan(), **values)  # type: ignore[arg-type]


def share(total: int, parts: int) -> list[int]:
    """Split `total` into `parts` near-equal whole shares."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
