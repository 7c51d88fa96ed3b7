"""The workers' own sockets trust only this server's user. Their addresses are abstract
(no file, so no permissions): any process on the machine can reach them. A datagram
to a worker's inbox or a connection to its link from another user is dropped unread
(wire/fdpass.py: SCM_CREDENTIALS; wire/links.py: SO_PEERCRED), so nobody else can hand
a worker a socket, ask it admin questions, or seat a guest in a room.

The foreign sender is a child process that drops to user `nobody` (the tests run as
root here; the system Python, as the project's venv may not be readable by nobody)."""

from __future__ import annotations

import contextlib
import os

import orjson
import trio

from rtcserver.connection import handover
from rtcserver.connection.seats import OPEN
from rtcserver.security.auth import Identity
from rtcserver.wire import links
from tests.conftest import StartServer
from tests.support import owners
from tests.test_workers import _creator_on

NOBODY = 65534

_HANDOVER_CHILD = r"""
import array, socket, sys
address, header = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
mine, theirs = socket.socketpair()
sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
fd = array.array("i", [theirs.fileno()]).tobytes()
sender.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd)], 0, address)
theirs.close()
mine.settimeout(10)
print("ANSWERED" if mine.recv(65536) else "CLOSED")
"""

_LINK_CHILD = r"""
import socket, sys
address, records = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
link.connect(address)
link.settimeout(10)
try:
    link.sendall(records)
    print("CLOSED" if link.recv(1) == b"" else "OPEN")
except OSError:
    print("CLOSED")
"""


def _become_nobody() -> None:
    os.setgid(NOBODY)
    os.setuid(NOBODY)


async def _as_nobody(script: str, *args: bytes) -> str:
    assert os.geteuid() == 0, "these tests act as another user: run them as root"
    done = await trio.run_process(
        ["/usr/bin/python3", "-c", script, *(a.hex() for a in args)],
        capture_stdout=True,
        capture_stderr=True,
        preexec_fn=_become_nobody,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


async def test_a_socket_handed_over_by_another_user_is_closed_unread(
    start_server: StartServer,
) -> None:
    server = await start_server(workers="2")
    worker = owners.SIBLINGS[server][0]
    header = handover.encode(
        handover.Handover(
            messages=['{"type":"GETROOM","value":""}'],
            address="127.0.0.1:1",
            identity=Identity(),
            first=False,
        )
    )
    inbox = worker.state.workers.inbox(0)
    assert await _as_nobody(_HANDOVER_CHILD, inbox, header) == "CLOSED"
    assert worker.state.registry.statistics().rooms == 0
    # The same datagram from this server's user is taken: the check is the user's.
    done = await trio.run_process(
        ["/usr/bin/python3", "-c", _HANDOVER_CHILD, inbox.hex(), header.hex()],
        capture_stdout=True,
    )
    assert done.stdout.decode().strip() == "ANSWERED"


async def test_a_link_from_another_user_seats_nobody(start_server: StartServer) -> None:
    server = await start_server(workers="2")
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        creator, room = await _creator_on(stack, url, 0)
        opening = orjson.dumps(
            {"address": "evil", "name": "mallory", "text": f'{{"type":"ENTERROOM","value":{room}}}'}
        )
        records = links.encode(links.HELLO, "", b"1") + links.encode(OPEN, "1.999", opening)
        address = owners.SIBLINGS[server][0].state.workers.link(0)
        assert await _as_nobody(_LINK_CHILD, address, records) == "CLOSED"
        await creator.expect_nothing(0.5)  # no guest joined
        assert len(owners.registry(server, room).members(room)) == 1
