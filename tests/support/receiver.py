"""A webhook receiver for the tests: a small HTTP/1.1 server on Trio (h11), on a real port.

It records every request (headers and body) in arrival order and answers 200. It can
go `down` (the listener and every connection closed: the server's POSTs are refused)
and come back `up` on the same port, or `hang` (read requests, never answer).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import attrs
import h11
import trio


@attrs.define
class Delivery:
    headers: dict[str, str]
    body: bytes


@attrs.define(eq=False)
class Receiver:
    nursery: trio.Nursery
    port: int = 0
    hang: bool = False
    deliveries: list[Delivery] = attrs.field(factory=list)
    _arrived: trio.Event = attrs.field(factory=trio.Event)
    _serving: trio.CancelScope | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def up(self) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        scope = trio.CancelScope()
        self._serving = scope

        async def serve() -> None:
            with scope:
                await trio.serve_listeners(self._connection, listeners)

        self.nursery.start_soon(serve)

    def down(self) -> None:
        assert self._serving is not None
        self._serving.cancel()
        self._serving = None

    async def wait_for(self, count: int, timeout: float) -> list[Delivery]:
        """The first `count` deliveries, once they have arrived (fails after `timeout`)."""
        with trio.fail_after(timeout):
            while len(self.deliveries) < count:
                self._arrived = trio.Event()
                await self._arrived.wait()
        return self.deliveries[:count]

    async def _connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                headers: dict[str, str] = {}
                body = b""
                while True:
                    event = connection.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        connection.receive_data(data)
                    elif isinstance(event, h11.Request):
                        headers = {k.decode(): v.decode() for k, v in event.headers}
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:
                        return
                if self.hang:
                    await trio.sleep_forever()
                self.deliveries.append(Delivery(headers, body))
                self._arrived.set()
                reply = h11.Response(status_code=200, headers=[("content-length", "0")])
                await stream.send_all(connection.send(reply) + connection.send(h11.EndOfMessage()))
                if connection.our_state is not h11.DONE:
                    return
                connection.start_next_cycle()


@contextlib.asynccontextmanager
async def running_receiver(hang: bool = False) -> AsyncIterator[Receiver]:
    async with trio.open_nursery() as nursery:
        receiver = Receiver(nursery, hang=hang)
        await receiver.up()
        yield receiver
        nursery.cancel_scope.cancel()
