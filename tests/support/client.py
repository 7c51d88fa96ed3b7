"""A small WebSocket test client: JSON in, JSON out, every wait with a deadline."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    WebSocketConnection,
    open_websocket_url,
)

DEFAULT_TIMEOUT = 5.0
# The server's directory frames (docs/PROTOCOL.md, "Directory"): a snapshot and net changes.
DIRECTORY_TYPES = frozenset({"USERS", "DIRECTORY"})


class Client:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        # The directory as this client learnt it from USERS and DIRECTORY frames (`fold`).
        self.directory: dict[str, str] = {}
        self.directory_frames = 0
        # The session the server gave unasked, before the answer to the first message
        # (docs/PROTOCOL.md, "Sessions and resume"); None until it came. A client that
        # sends SESSION itself reads the reply as any other message.
        self.session: dict[str, Any] | None = None
        self.asked_session = False

    def fold(self, message: dict[str, Any]) -> bool:
        """Apply a directory frame to `directory` as the phone page does; False if
        `message` is not one."""
        if not fold_directory(self.directory, message):
            return False
        self.directory_frames += 1
        return True

    async def directory_until(
        self, wanted: Callable[[dict[str, str]], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, str]:
        """Read directory frames until the directory satisfies `wanted`; anything else
        arriving meanwhile fails the test."""
        with trio.fail_after(timeout):
            while not wanted(self.directory):
                message = await self.recv(timeout)
                assert message["type"] in DIRECTORY_TYPES, f"expected a directory frame: {message}"
        return self.directory

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            self.asked_session |= message.get("type") in ("SESSION", "RESUME")
            message = orjson.dumps(message).decode()
        await self.ws.send_message(message)

    async def recv_text(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """The next text frame; the unasked SESSION is taken into `session`, once."""
        with trio.fail_after(timeout):
            while True:
                message = await self.ws.get_message()
                assert isinstance(message, str), f"expected a text frame, got {message!r}"
                if (
                    self.session is None
                    and not self.asked_session
                    and message.startswith('{"type":"SESSION"')
                ):
                    self.session = orjson.loads(message)
                    continue
                return message

    async def recv_relayed(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """The next text that is not a directory frame, exactly as it came. Directory
        frames go out whenever the connection writes, so they may come first; they are
        folded into `directory`."""
        with trio.fail_after(timeout):
            while True:
                text = await self.recv_text(timeout)
                if not text.startswith(('{"type":"DIRECTORY"', '{"type":"USERS"')):
                    return text
                self.fold(orjson.loads(text))

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        value = orjson.loads(await self.recv_text(timeout))
        assert isinstance(value, dict)
        self.fold(value)  # every directory frame read counts, whoever reads it
        return value

    async def expect(self, kind: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        message = await self.recv(timeout)
        assert message.get("type") == kind, f"expected {kind}, got {message}"
        return message

    async def expect_nothing(self, within: float = 0.3) -> None:
        """Assert no message arrives within `within` seconds (used for 'never echoed')."""
        with trio.move_on_after(within):
            message = await self.recv_text(within + 1)
            raise AssertionError(f"expected no message, got {message!r}")

    async def expect_close(self, timeout: float = DEFAULT_TIMEOUT) -> CloseReason:
        with trio.fail_after(timeout):
            while True:
                try:
                    await self.ws.get_message()
                except ConnectionClosed as closed:
                    assert closed.reason is not None
                    return closed.reason

    async def create_room(self) -> int:
        await self.send({"type": "GETROOM", "value": ""})
        reply = await self.expect("GETROOM")
        room = reply["value"]
        assert isinstance(room, int)
        return room


@contextlib.asynccontextmanager
async def connect(url: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with open_websocket_url(url, **kwargs) as ws:
        yield Client(ws)


async def make_pair(stack: contextlib.AsyncExitStack, url: str) -> tuple[Client, Client, int]:
    """Two clients in one fresh room: the creator (after PEERJOINED) and the joiner."""
    creator = await stack.enter_async_context(connect(url))
    joiner = await stack.enter_async_context(connect(url))
    room = await creator.create_room()
    await joiner.send({"type": "ENTERROOM", "value": room})
    await creator.expect("PEERJOINED")
    return creator, joiner, room


def fold_directory(directory: dict[str, str], message: dict[str, Any]) -> bool:
    """Apply a directory frame (USERS replaces, DIRECTORY changes) to `directory` as the
    phone page does; False, and nothing changed, if `message` is not one."""
    kind = message.get("type")
    if kind == "USERS":
        directory.clear()
        directory.update({u["name"]: u["status"] for u in message["users"]})
    elif kind == "DIRECTORY":
        for change in message["changes"]:
            if change["status"] == "offline":
                directory.pop(change["name"], None)
            else:
                directory[change["name"]] = change["status"]
    else:
        return False
    return True
