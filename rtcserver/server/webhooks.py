"""Webhook delivery: signed POSTs of the server's events, at least once, in order.

`emit` is what signaling calls: synchronous, O(1), it never waits. The event is encoded
once and queued for each `--webhook-url`; each URL's queue is bounded in bytes
(`webhook_queue_bytes`): past the bound the new event is dropped, counted
(`webhook:dropped`, in /metrics) and logged, so a slow or dead receiver costs a bounded
amount of memory and nothing else. One task per URL (`deliver`, a permanent child)
sends the queue's head until the receiver answers 2xx, retrying with exponential
backoff, and gives up on an event after `webhook_retry_for` seconds (`webhook:expired`).
One event in flight per URL keeps every room's events (and every user's) in order.

Signed per Standard Webhooks (`security/webhooksig.py`); the HTTP client is httpx,
which runs on Trio through anyio.
"""

from __future__ import annotations

import collections
import datetime
import logging
import secrets
import time
from typing import Any, Final

import attrs
import httpx
import orjson
import trio

from ..security import webhooksig
from ..settings import Settings
from ..wire import logsafe

log = logging.getLogger("rtcserver.webhooks")

FIRST_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 30.0
# A drop is logged when it starts and then every this many, not once per event.
DROP_LOG_EVERY: Final = 1000


@attrs.frozen
class Event:
    id: str  # the webhook-id: the same on every attempt, the receiver's idempotency key
    body: bytes
    made: float  # trio time, for the retry window


@attrs.define(eq=False)
class Lane:
    """One receiver's queue."""

    url: str
    queue: collections.deque[Event] = attrs.field(factory=collections.deque)
    queued_bytes: int = 0
    dropped: int = 0
    wake: trio.Event = attrs.field(factory=trio.Event)

    @property
    def shown(self) -> str:
        """The URL for logs: scheme, host, port and path; no credentials, no query."""
        url = httpx.URL(self.url)
        return logsafe.clean(f"{url.scheme}://{url.host}:{url.port or ''}{url.path}")


@attrs.define(eq=False)
class Webhooks:
    settings: Settings
    counters: collections.Counter[str]
    key: bytes = attrs.field(init=False)
    lanes: list[Lane] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.key = webhooksig.parse_secret(self.settings.webhook_secret)
        self.lanes = [Lane(url) for url in self.settings.webhook_url]

    @property
    def queued_bytes(self) -> int:
        return sum(lane.queued_bytes for lane in self.lanes)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Queue event `kind` for every receiver. Never blocks, never raises."""
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        body = orjson.dumps({"type": kind, "timestamp": stamp.replace("+00:00", "Z"), "data": data})
        event = Event("msg_" + secrets.token_urlsafe(16), body, trio.current_time())
        limit = self.settings.webhook_queue_bytes
        for lane in self.lanes:
            if lane.queued_bytes + len(body) > limit:
                self.counters["webhook:dropped"] += 1
                if lane.dropped % DROP_LOG_EVERY == 0:
                    log.warning(
                        "event=webhook-dropped url=%s type=%s queued_bytes=%d dropped=%d",
                        lane.shown,
                        kind,
                        lane.queued_bytes,
                        lane.dropped + 1,
                    )
                lane.dropped += 1
                continue
            lane.queue.append(event)
            lane.queued_bytes += len(body)
            self.counters["webhook:queued"] += 1
            lane.wake.set()

    async def deliver(self) -> None:
        """Send every lane's events, forever (a permanent child of the supervisor)."""
        timeout = httpx.Timeout(self.settings.webhook_timeout)
        async with httpx.AsyncClient(timeout=timeout) as client, trio.open_nursery() as nursery:
            for lane in self.lanes:
                nursery.start_soon(self._deliver_lane, client, lane)

    async def _deliver_lane(self, client: httpx.AsyncClient, lane: Lane) -> None:
        while True:
            while not lane.queue:
                lane.wake = trio.Event()
                await lane.wake.wait()
            event = lane.queue[0]
            await self._send_until_done(client, lane, event)
            lane.queue.popleft()
            lane.queued_bytes -= len(event.body)

    async def _send_until_done(self, client: httpx.AsyncClient, lane: Lane, event: Event) -> None:
        """Attempt `event` until a 2xx or the end of its retry window."""
        backoff = FIRST_BACKOFF
        give_up = event.made + self.settings.webhook_retry_for
        while True:
            problem = await self._attempt(client, lane, event)
            if problem is None:
                self.counters["webhook:delivered"] += 1
                return
            self.counters["webhook:failed-attempts"] += 1
            now = trio.current_time()
            if now + backoff > give_up:
                self.counters["webhook:expired"] += 1
                log.warning(
                    "event=webhook-expired url=%s id=%s last=%s", lane.shown, event.id, problem
                )
                return
            log.info(
                "event=webhook-retry url=%s id=%s in=%.1fs last=%s",
                lane.shown,
                event.id,
                backoff,
                problem,
            )
            await trio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _attempt(self, client: httpx.AsyncClient, lane: Lane, event: Event) -> str | None:
        """One POST; None if the receiver took it, else what went wrong."""
        headers = webhooksig.headers(self.key, event.id, int(time.time()), event.body)
        try:
            reply = await client.post(lane.url, content=event.body, headers=headers)
        except httpx.HTTPError as error:
            return type(error).__name__
        if 200 <= reply.status_code < 300:
            return None
        return f"status-{reply.status_code}"
