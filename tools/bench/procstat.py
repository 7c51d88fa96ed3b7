"""What Linux says about a process: CPU time and resident memory, from /proc."""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        # After "pid (comm)": state is field 3, ppid field 4, utime 14, stime 15.
        return f.read().rsplit(b")", 1)[1].split()


def tree(pid: int) -> list[int]:
    """`pid` and every live descendant (a server with worker processes is its tree)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(_stat(int(entry))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of every thread of `pid` and of its live
    descendants, in seconds (a worker that died takes its time with it)."""
    total = 0
    for member in tree(pid):
        try:
            fields = _stat(member)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def total_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of `pid` and its live descendants, in bytes."""
    total = 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    if not total:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    return total


def available(pid: int | None) -> bool:
    return pid is not None and os.path.exists(f"/proc/{pid}/stat")
