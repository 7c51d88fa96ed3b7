"""A request body, read with bounds: a `Content-Length` is required, and limited.

The front door reads only request heads; the few requests that carry a body (the admin
API's POSTs) read it here, after their head was accepted, from the bytes already
received and then the socket. Anything unbounded is refused before it is read: no
`Content-Length` (chunked bodies included) is 411, one over the limit is 413, a body
that does not arrive in time is 408. Each refusal names the problem.
"""

from __future__ import annotations

import attrs
import h11
import trio


class BodyRefused(Exception):
    """The body cannot be read; `status` and `message` are the answer to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@attrs.frozen
class BodyReader:
    """How to read the body of one request, if its handler wants it: `raw` is every
    byte received so far (the head and maybe the start of the body)."""

    stream: trio.abc.Stream
    raw: bytes
    timeout: float

    async def read(self, limit: int) -> bytes:
        """The whole body, at most `limit` bytes; BodyRefused otherwise."""
        connection = h11.Connection(h11.SERVER)
        connection.receive_data(self.raw)
        request = connection.next_event()
        assert isinstance(request, h11.Request), "the front door parsed this head already"
        length = _content_length(request)
        if length > limit:
            raise BodyRefused(413, f"the body is {length} bytes; the limit is {limit}")
        if connection.they_are_waiting_for_100_continue:
            await self.stream.send_all(
                connection.send(h11.InformationalResponse(status_code=100, headers=[]))
            )
        body = bytearray()
        with trio.move_on_after(self.timeout) as waiting:
            while True:
                try:
                    event = connection.next_event()
                except h11.RemoteProtocolError:
                    raise BodyRefused(400, "malformed request body") from None
                if isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    return bytes(body)
                elif event is h11.NEED_DATA:
                    data = await self.stream.receive_some(8192)
                    if not data:
                        raise BodyRefused(
                            400, f"the body ended after {len(body)} of {length} bytes"
                        )
                    connection.receive_data(bytes(data))
                else:
                    raise BodyRefused(400, "malformed request body")
        assert waiting.cancelled_caught
        raise BodyRefused(408, f"the body did not arrive within {self.timeout:g}s")


def _content_length(request: h11.Request) -> int:
    for name, value in request.headers:
        if name == b"transfer-encoding":
            raise BodyRefused(411, "send the body with a Content-Length, not chunked")
        if name == b"content-length":
            return int(value)  # h11 checked it is a decimal number
    raise BodyRefused(411, "a body needs a Content-Length")
