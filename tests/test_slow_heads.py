"""The per-address head limit bites on slow heads only, and refusals are logged sparingly.

Pure cores (`limits.SlowHeads`, `refusals.RefusalLog`), with the clock passed in.
The real-socket cases (a flash crowd of 1,000, slowloris meanwhile) are in
tests/test_flash_crowd.py.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

import pytest
import trio

from rtcserver.connection.frontdoor import HeardStream
from rtcserver.security.limits import PendingHead, Progress, SlowHeads
from rtcserver.security.refusals import RefusalLog


def stalled() -> Progress:
    return Progress.STALLED


def arrive(
    heads: SlowHeads, address: str, now: float, progress: Callable[[], Progress] = stalled
) -> tuple[PendingHead, list[str]]:
    cut: list[str] = []
    head = heads.arrive(address, now, lambda: cut.append(address), progress)
    return head, cut


def slow_heads(limit: int) -> SlowHeads:
    return SlowHeads(limit=limit, grace=1.0, silent_grace=5.0)


def test_heads_that_complete_within_the_grace_never_count() -> None:
    heads = slow_heads(limit=2)
    crowd = [arrive(heads, "10.0.0.1", 0.0)[0] for _ in range(1000)]
    assert heads.young == 1000
    for head in crowd:
        heads.leave(head)
    assert heads.promote(5.0) == []
    assert heads.young == 0 and not heads.slow
    assert heads.next_due() is None


def test_a_head_pending_past_the_grace_takes_a_place_and_gives_it_back() -> None:
    heads = slow_heads(limit=2)
    head, _ = arrive(heads, "10.0.0.1", 0.0)
    assert heads.next_due() == 1.0
    assert heads.promote(0.99) == [] and not heads.slow
    assert heads.promote(1.0) == []
    assert head.slow and heads.slow == {"10.0.0.1": 1}
    heads.leave(head)
    assert not heads.slow and heads.young == 0


def test_slow_heads_past_the_limit_are_refused_when_their_grace_ends() -> None:
    heads = slow_heads(limit=2)
    pending = [arrive(heads, "10.0.0.1", t / 10) for t in range(5)]
    other, _ = arrive(heads, "10.0.0.2", 0.4)
    refused = heads.promote(1.25)  # the first three are due: two places, one refused
    assert refused == [pending[2][0]]
    assert refused[0].refused and not refused[0].slow
    assert heads.slow == {"10.0.0.1": 2}
    for head in refused:
        head.refuse()
        heads.leave(head)
    assert pending[2][1] == ["10.0.0.1"]
    refused = heads.promote(1.45)
    assert refused == [pending[3][0], pending[4][0]]
    assert other.slow  # another address has places of its own
    assert heads.slow == {"10.0.0.1": 2, "10.0.0.2": 1}
    heads.leave(pending[0][0])  # a slow head that completes frees its place
    late, _ = arrive(heads, "10.0.0.1", 2.0)
    assert heads.promote(3.0) == [] and late.slow
    assert heads.slow == {"10.0.0.1": 2, "10.0.0.2": 1}


def test_a_fast_head_is_served_while_its_address_has_no_slow_place_left() -> None:
    heads = slow_heads(limit=1)
    slow, _ = arrive(heads, "10.0.0.1", 0.0)
    heads.promote(1.0)
    assert slow.slow
    fast, cut = arrive(heads, "10.0.0.1", 1.5)
    heads.leave(fast)  # its head came within the grace: nothing to refuse
    assert heads.promote(10.0) == [] and cut == []


def test_a_head_waiting_for_a_busy_server_gets_another_grace() -> None:
    heads = slow_heads(limit=1)
    standing = [Progress.UNREAD]
    first, _ = arrive(heads, "10.0.0.1", 0.0)
    behind, cut = arrive(heads, "10.0.0.1", 0.1, lambda: standing[0])
    assert heads.promote(1.5) == [] and first.slow  # the place is taken...
    assert not behind.slow and heads.next_due() == 2.5  # ...but the delay is ours
    assert heads.promote(2.5) == []
    standing[0] = Progress.STALLED  # read now, and still not whole: slow, no place
    assert heads.promote(3.5) == [behind] and behind.refused


def test_a_silent_connection_counts_after_the_silent_grace() -> None:
    heads = slow_heads(limit=1)
    standing = [Progress.SILENT]
    first, _ = arrive(heads, "10.0.0.1", 0.0)
    quiet, _ = arrive(heads, "10.0.0.1", 0.0, lambda: standing[0])
    late, _ = arrive(heads, "10.0.0.1", 0.0, lambda: standing[0])
    assert heads.promote(1.0) == [] and first.slow
    assert (heads.young, heads.silent) == (0, 2) and heads.next_due() == 5.0
    heads.leave(late)  # its head came whole, late: it never counted
    assert heads.promote(4.9) == []
    standing[0] = Progress.STALLED
    assert heads.promote(5.0) == [quiet]
    assert heads.silent == 0 and heads.next_due() is None


def refusal_log(window: float = 1.0, max_addresses: int = 100) -> tuple[RefusalLog, list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(f"test-refusals-{id(lines)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(Collect())
    counters: collections.Counter[str] = collections.Counter()
    return RefusalLog(counters, logger, window=window, max_addresses=max_addresses), lines


def test_every_refusal_is_counted_and_an_address_gets_one_line_a_window() -> None:
    log, lines = refusal_log()
    for i in range(500):
        log.refuse(i / 1000, "10.0.0.1", 503, "max-handshakes-per-address", "limit=256")
    log.refuse(0.6, "10.0.0.2", 408, "handshake-timeout")
    assert log.counters["refused:max-handshakes-per-address"] == 500
    assert log.counters["refused:handshake-timeout"] == 1
    assert lines == [
        "addr=10.0.0.1 event=refused status=503 cause=max-handshakes-per-address limit=256",
        "addr=10.0.0.2 event=refused status=408 cause=handshake-timeout",
    ]
    log.refuse(1.2, "10.0.0.1", 421, "host", "host=evil.example")  # a window later
    assert lines[2:] == [  # the count of the ended window, then the new line
        "addr=10.0.0.1 event=refused suppressed=499",
        "addr=10.0.0.1 event=refused status=421 cause=host host=evil.example",
    ]


def test_a_window_that_suppressed_lines_says_how_many_when_it_ends() -> None:
    log, lines = refusal_log()
    log.refuse(0.0, "10.0.0.1", 503, "max-connections")
    log.refuse(0.5, "10.0.0.1", 503, "max-connections")
    log.refuse(2.0, "10.0.0.2", 503, "max-connections")
    assert "addr=10.0.0.1 event=refused suppressed=1" in lines
    log.refuse(2.1, "10.0.0.1", 503, "max-connections")
    assert lines[-1] == "addr=10.0.0.1 event=refused status=503 cause=max-connections"


@pytest.mark.parametrize("addresses", [10, 1000])
def test_a_flood_from_many_addresses_writes_a_bounded_number_of_lines(addresses: int) -> None:
    log, lines = refusal_log(max_addresses=10)
    for i in range(addresses):
        log.refuse(0.0, f"10.0.{i // 256}.{i % 256}", 503, "max-connections")
    assert log.counters["refused:max-connections"] == addresses
    assert len(lines) == min(addresses, 11)  # ten addresses, then one line for the rest
    if addresses > 10:
        assert lines[-1].startswith("addr=* event=refused")


async def test_the_front_door_tells_silent_unread_and_stalled_heads_apart() -> None:
    """`HeardStream.progress` on a real socket pair: what the sweeper asks at the grace."""
    ours, theirs = trio.socket.socketpair()
    async with trio.SocketStream(ours) as server_side, trio.SocketStream(theirs) as client:
        heard = HeardStream(server_side)
        assert heard.progress() is Progress.SILENT
        await client.send_all(b"GET / HTTP/1.1\r\n")
        assert heard.progress() is Progress.UNREAD  # a socket pair's kernel has it at once
        assert await heard.receive_some(8192) == b"GET / HTTP/1.1\r\n"
        assert heard.progress() is Progress.STALLED
