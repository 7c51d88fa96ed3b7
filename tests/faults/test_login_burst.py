"""The login burst (security issue, item 1): 300 clients logging in at once used to
close 300 of the 301 logged in with 4000, because every login was one frame queued
for every user and the mailboxes overflowed. Now the directory is state, taken when a
connection writes (presence.py): the burst costs each user a few frames, and nobody
who reads is closed. Here it stays fixed, against the same in-process server the
other chaos tests use, with its default limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from rtcserver.app import Server, serve
from tests.conftest import settings_for_tests
from tests.support.storm import StormUser, assert_nobody_closed, logged_in_storm, until_all

BURST = 300
DEADLINE = 90.0  # completeness, not speed: the machine may be shared


@pytest.fixture
async def default_server() -> AsyncIterator[Server]:
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, settings_for_tests())
        yield server
        await server.shutdown()


async def test_a_burst_of_logins_closes_nobody_and_everyone_learns_everyone(
    default_server: Server,
) -> None:
    async with (
        logged_in_storm(default_server.port, 1, DEADLINE, prefix="first") as first,
        logged_in_storm(default_server.port, BURST, DEADLINE, prefix="burst") as burst,
    ):
        everyone: list[StormUser] = first + burst
        names = {u.name for u in everyone}
        await until_all(everyone, lambda d: d.keys() == names, DEADLINE)
        assert_nobody_closed(everyone)
        assert default_server.state.counters["mailbox-overflow"] == 0
        # A burst is a handful of frames per user, not one per login.
        assert max(u.frames for u in everyone) < BURST // 3
