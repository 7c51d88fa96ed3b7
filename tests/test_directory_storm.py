"""Directory storms at a small N (issue 12): everyone logs in at once, everyone learns
everyone, nobody is closed; then everyone calls at once, in pairs, and every call
connects. The figures at N = 1,000 to 10,000 are the benchmark's (tools/bench
--directory); the suite holds completeness."""

from __future__ import annotations

from tests.conftest import StartServer
from tests.support.storm import assert_nobody_closed, calls_at_once, logged_in_storm, until_all

N = 120
DEADLINE = 60.0  # generous: the machine is shared; nothing here measures time


async def test_everyone_logging_in_at_once_learns_everyone_and_nobody_is_closed(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with logged_in_storm(server.port, N, DEADLINE) as users:
        assert server.state.counters["mailbox-overflow"] == 0
        # Each learnt it in a few frames, not one per login.
        assert all(u.directory.keys() == {f"u{i}" for i in range(N)} for u in users)


async def test_half_of_them_calling_the_other_half_at_once_all_connect(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with logged_in_storm(server.port, N, DEADLINE) as users:
        await calls_at_once(users, DEADLINE)
        await until_all(users, lambda d: set(d.values()) == {"in-call"}, DEADLINE)
        assert_nobody_closed(users)
        assert server.state.switchboard.statistics().active == N // 2


async def test_a_tenth_leaving_at_once_is_learnt_by_all_who_stay(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with logged_in_storm(server.port, N, DEADLINE) as users:
        leaving, staying = users[: N // 10], users[N // 10 :]
        for user in leaving:
            user.leave()
        remaining = {u.name for u in staying}
        await until_all(staying, lambda d: d.keys() == remaining, DEADLINE)
        assert_nobody_closed(staying)
