"""`Cluster`: this node's membership of a cluster of rtcserver nodes sharing one Redis.

What the handler awaits: `create` (GETROOM) and `enter` (ENTERROOM), one Lua script
each. Everything else runs in permanent supervisor children, started by `run`:
- `keep_lease`   takes the node's lease, renews it every `lease_ttl / 3`, and after
                 a loss (Redis gone for `lease_ttl`, a lost subscription, news
                 lost for a node that still lives) resynchronises: cut cross-node rooms
                 (PEERLEFT here), reap what the old lease left in Redis (PEERLEFT
                 there), take a new lease, and put every local member back in its
                 room (PEERJOINED to whoever is already there, who then renegotiates).
- `reap_dead`    the janitor: removes the members of nodes whose lease expired and
                 tells their peers (PEERLEFT).
- `departures`   writes local departures to Redis in order (the connection's
                 `finally` stays synchronous) and tells other nodes (L).
- `names.run`    the leader lock; names, the directory and calls (`names.py`).
- the bus's subscriber (`bus.py`); and the links (`links.py`: the listener, one
  writer per node this one sends to), children of the cluster's own nursery.

Long because `Cluster` is one state machine: the lease, the outage flags, the
resync and the departures queue are read and written by every operation here, and
splitting them would hand that state around instead of keeping it in one object.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import random
import re
import secrets
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import coredis
import trio
from coredis.retry import NoRetryPolicy

from .. import protocol
from ..actors.actor import Actor
from ..protocol import ErrorCode, WrongRoomReason
from ..protocol.codes import CloseCode
from ..rooms.peers import Peer, roster_text
from ..rooms.registry import Created, Departure, Entered, Refused, draw_room_number, is_multi_party
from . import linkwire, scripts
from .bus import Bus
from .errors import ClusterUnavailable
from .links import RegistryDown, announced_host
from .mirror import Mirror, RemoteMember, member_id, parse_member
from .names import Names

if TYPE_CHECKING:
    from ..actors.supervisor import Supervisor
    from .nodeview import Host

log = logging.getLogger("rtcserver.cluster")

PREFIX = "rtc:"
CREATE_ATTEMPTS = 8  # room numbers drawn before giving up (a clash is ~2^-53)
DEFERRED_LIMIT = 1024  # frames held for one actor while its join is in flight
_NAME_FRAMES = frozenset("PATDSRXYU")  # names and calls: names.py


def new_node_id() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:32] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class Cluster:
    def __init__(self, state: Host, node: str | None = None) -> None:
        settings = state.settings
        self.state = state
        self.node = node or new_node_id()
        self.prefix = PREFIX
        self.ttl = settings.lease_ttl
        self.timeout = settings.redis_timeout
        self.capacity = settings.room_capacity
        self.min_backoff = 0.05
        self.max_backoff = max(0.1, min(1.0, self.ttl / 3))
        self.redis: coredis.Redis[str] = coredis.Redis.from_url(
            settings.redis,
            decode_responses=True,
            stream_timeout=self.timeout,
            connect_timeout=self.timeout,
            retry_policy=NoRetryPolicy(),
        )
        self.mirror = Mirror(settings.room_capacity, self._departed, self.member_id_of)
        self.id_key: bytes | None = None  # the cluster's secret for member ids (Redis `idkey`)
        self.bus = Bus(self, settings.bus_queue_size, settings.cluster_link_queue_bytes)
        self.address = ""  # host:port of this node's link listener, once it listens
        self.names = Names(self)
        self.token: str | None = None  # the lease's token while this node holds one
        self.valid_until = float("-inf")  # the lease surely lives until then
        self.ready = False  # lease taken and memberships restored
        self.why_down = "the cluster is starting: this node has no lease on Redis yet"
        self._subscribed = False
        self._resync = False
        # Bytes relayed per room that Redis has been told of (`_add_relayed`).
        self._added: dict[int, int] = {}
        self._outage = False
        self._wake = trio.Event()
        self._up = trio.Event()
        # Departures (actor id, room) and, behind them, what must follow them (logouts).
        self._departures_out, self._departures_in = trio.open_memory_channel[
            tuple[int, int] | Callable[[], None]
        ](settings.bus_queue_size)
        self.joining: dict[int, list[str]] = {}

    # ================================================================ status

    @property
    def available(self) -> bool:
        return self.ready and self._subscribed and trio.current_time() < self.valid_until

    def _check(self) -> None:
        if not self.available:
            raise ClusterUnavailable(self.why_down)

    def lose_lease(self, why: str) -> None:
        """Our view of the cluster can no longer be trusted: cut every cross-node room
        (local members get PEERLEFT; the other nodes do the same for theirs when they
        reap us or resync), and let `keep_lease` start afresh."""
        self._resync = True
        self.why_down = f"this node lost its place in the cluster ({why}); reconnecting"
        if self.ready or self.token is not None:
            log.warning("node=%s event=lease-lost reason=%r", self.node, why)
            self.state.counters["cluster:lease-lost"] += 1
        self.ready = False
        self.token = None
        self.valid_until = float("-inf")
        self._sever()
        self._wake.set()

    def _sever(self) -> None:
        mirror = self.mirror
        for members in mirror.cross_node_rooms().values():
            for member in members:
                if isinstance(member, RemoteMember):
                    departure = mirror.drop(member)
                    if departure is not None:
                        _tell_left(departure)
        # Departures still queued for Redis: the next lease's reaping covers them.
        with contextlib.suppress(trio.WouldBlock):
            while True:
                item = self._departures_in.receive_nowait()
                if callable(item):
                    item()

    def subscribed(self, up: bool, failure: BaseException | None = None) -> None:
        if up:
            self._subscribed = True
            self._wake.set()
            return
        if self._subscribed:
            log.warning("node=%s event=subscription-lost error=%r", self.node, failure)
            # Frames may have been lost with the connection: resynchronise once back.
            self._resync = True
        self._subscribed = False
        self._outage_begins(failure)

    def _outage_begins(self, failure: BaseException | None) -> None:
        self.state.counters["cluster:redis-failures"] += 1
        if not self._outage:
            self._outage = True
            log.warning("node=%s event=redis-unreachable error=%r", self.node, failure)
        if self.token is not None:
            self.why_down = f"Redis is unreachable from this node ({failure!r})"

    def _outage_ends(self) -> None:
        if self._outage:
            self._outage = False
            self.state.counters["cluster:reconnects"] += 1
            log.info("node=%s event=redis-reconnected", self.node)

    # ================================================================ Redis calls

    async def call(self, op: str, script: str, *args: object) -> Any:
        """One script, bounded by `redis_timeout`; any failure is ClusterUnavailable."""
        started = trio.current_time()
        try:
            with trio.fail_after(self.timeout):
                reply = await self.redis.eval(script, [], [self.prefix, *map(str, args)])
        except Exception as failure:
            self._outage_begins(failure)
            raise ClusterUnavailable(f"Redis did not answer ({type(failure).__name__})") from None
        self.state.metrics.redis_roundtrip.labels(op).observe(trio.current_time() - started)
        return reply

    @property
    def link_key(self) -> bytes | None:
        return None if self.id_key is None else linkwire.link_key(self.id_key)

    async def link_address(self, node: str) -> str | None:
        """Where `node`'s link listener is, as it announced with its lease."""
        try:
            with trio.fail_after(self.timeout):
                address = await self.redis.get(f"{self.prefix}addr:{node}")
        except Exception as failure:
            self._outage_begins(failure)
            raise RegistryDown(f"Redis did not answer ({type(failure).__name__})") from None
        return address

    @contextlib.asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[Any]:
        pubsub = self.redis.pubsub(
            ignore_subscribe_messages=True,
            retry_policy=NoRetryPolicy(),
            subscription_timeout=self.timeout,
            max_idle_seconds=max(1.0, self.ttl),
        )
        async with pubsub:
            with trio.fail_after(self.timeout):
                await pubsub.subscribe(channel)
            yield pubsub

    # ================================================================ GETROOM, ENTERROOM

    def member_id_of(self, room: int, member: Peer) -> str:
        """A member's id in `room`, the same on every node: an HMAC of the room and the
        member under the cluster's `idkey`, so clients cannot guess it."""
        assert self.id_key is not None, "nobody joins before the lease (and the key) is taken"
        if isinstance(member, RemoteMember):
            who = member_id(member.node, member.actor)
        else:
            assert isinstance(member, Actor)
            who = member_id(self.node, member.id)
        return self.public_id(room, who)

    def public_id(self, room: int, who: str) -> str:
        """The id of member `who` (`<node>/<actor>`, as in Redis) in `room`."""
        assert self.id_key is not None, "nobody joins before the lease (and the key) is taken"
        digest = hmac.new(self.id_key, f"{room}|{who}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:9]).decode()

    async def create(self, actor: Actor, capacity: int) -> Created[Peer]:
        self._check()
        outcome = await self._join(actor, "create", None, capacity)
        assert isinstance(outcome, Created)
        return outcome

    async def enter(self, room: int | None, actor: Actor) -> Entered[Peer] | Refused[Peer]:
        mirror = self.mirror
        if room is not None and mirror.room_of(actor) == room:
            return Refused(reason=WrongRoomReason.ALREADY_IN_ROOM, left=None)
        if room is None:
            return Refused(reason=WrongRoomReason.INVALID_ROOM, left=mirror.depart(actor))
        self._check()
        outcome = await self._join(actor, "enter", room, self.capacity)
        assert not isinstance(outcome, Created)
        return outcome

    async def _join(
        self, actor: Actor, mode: str, wanted: int | None, capacity: int
    ) -> Created[Peer] | Entered[Peer] | Refused[Peer]:
        mirror = self.mirror
        left: Departure[Peer] | None = None
        current = mirror.room_of(actor)
        if current is not None and current not in mirror.shared:
            left = mirror.depart(actor)  # a node-local room: leave it here
        member = member_id(self.node, actor.id)
        name = mirror.name_of(actor) or ""
        token = self.token
        self.joining[actor.id] = []
        try:
            for _ in range(CREATE_ATTEMPTS):
                room = draw_room_number() if wanted is None else wanted
                reply = await self.call(
                    mode, scripts.JOIN, self.node, token, member, mode, room, capacity, name
                )
                if reply[0] != "exists":
                    break
            else:
                raise ClusterUnavailable("no free room number found")
            if reply[0] == "no-lease":
                self.lose_lease("a join found the lease gone")
                raise ClusterUnavailable(self.why_down)
        except BaseException:
            # The outcome is unknown (timeout, Redis lost, or this connection ended):
            # take the member out of every room, here and in Redis.
            with trio.CancelScope(shield=True):
                await self._forget_after_failed_join(actor, member)
            raise
        finally:
            deferred = self.joining.pop(actor.id, [])
        status, old_room, count = reply[0], reply[1], int(reply[2])
        if current is not None and current in mirror.shared:
            left = mirror.drop(actor)
        if old_room:
            self._news("L", int(old_room), member, reply[4 : 4 + count])
        try:
            if status != "ok":
                return Refused(reason=WrongRoomReason(status), left=left)
            there = reply[4 + count :]
            local = self._admit(room, actor, there, int(reply[3]))
            self._news("J", room, member, there[0::2], name)
            if mode == "create":
                return Created(room=room, left=left)
            return Entered(room=room, already_there=local, left=left)
        finally:
            for frame in deferred:
                self.on_frame(frame)

    def _admit(
        self, room: int, actor: Actor, there: Sequence[str], capacity: int
    ) -> tuple[Peer, ...]:
        """Put `actor` and the members Redis says are `there` (member, name pairs) in
        the mirror's `room`. Returns the local ones (the caller tells them PEERJOINED)."""
        mirror = self.mirror
        local: list[Peer] = []
        for member, name in zip(there[0::2], there[1::2], strict=True):
            node, actor_id = parse_member(member)
            if node == self.node:
                peer = mirror.local.get(actor_id)
                if peer is not None and mirror.room_of(peer) == room:
                    local.append(peer)
            else:
                remote = mirror.remote_member(node, actor_id, self.bus)
                mirror.add(room, remote, capacity)
                if name:
                    mirror.remote_names[remote] = name
        mirror.add(room, actor, capacity)
        return tuple(local)

    async def _forget_after_failed_join(self, actor: Actor, member: str) -> None:
        departure = self.mirror.drop(actor)
        if departure is not None:
            _tell_left(departure)
        if self.token is None:
            return  # the next lease's reaping removes it from Redis
        try:  # now, not queued: a later join of the same actor must not be undone
            reply = await self.call("leave", scripts.LEAVE, self.node, member, "")
        except ClusterUnavailable:
            self.lose_lease("a member in an unknown state could not be removed")
            return
        if reply:
            self._news("L", int(reply[0]), member, reply[1:])

    def _news(
        self, kind: str, room: int, member: str, targets: Iterable[str], name: str = ""
    ) -> None:
        """Tell the other nodes holding `targets` that `member` joined (J, with its
        LOGIN name) or left (L)."""
        by_node: dict[str, list[str]] = defaultdict(list)
        for target in targets:
            node, _, actor_id = target.rpartition("/")
            if node != self.node:
                by_node[node].append(actor_id)
        for node, actor_ids in by_node.items():
            news = f"{kind}|{room}|{member}|{','.join(actor_ids)}"
            self.bus.control(node, f"{news}|{name}" if name else news)

    # ================================================================ departures

    def _departed(self, actor: Actor, room: int) -> None:
        """Mirror hook: a local actor left shared `room` (its local peers are told)."""
        self.queue_departure(actor.id, room)

    def queue_departure(self, actor_id: int, room: int) -> None:
        if self.token is None:
            return  # no lease: the next lease's reaping removes it from Redis
        try:
            self._departures_out.send_nowait((actor_id, room))
        except trio.WouldBlock:
            self.lose_lease("too many departures waiting for Redis")

    def after_departures(self, then: Callable[[], None]) -> None:
        """Run `then` once the departures queued so far are written and announced: a
        logout's HANGUP must reach the peer's node after the PEERLEFT of the room."""
        if self.token is None:
            then()
            return
        try:
            self._departures_out.send_nowait(then)
        except trio.WouldBlock:
            then()

    async def departures(self) -> None:
        """Permanent child: write departures to Redis in order; tell the other nodes."""
        async for item in self._departures_in:
            if callable(item):
                item()
                continue
            actor_id, room = item
            member = member_id(self.node, actor_id)
            backoff = self.min_backoff
            while self.token is not None:
                try:
                    reply = await self.call(
                        "leave", scripts.LEAVE, self.node, member, room if room else ""
                    )
                except ClusterUnavailable:
                    await trio.sleep(backoff)  # retried while the lease may still live
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                if reply:
                    self._news("L", int(reply[0]), member, reply[1:])
                break

    # ================================================================ frames from other nodes

    def on_frame(self, frame: str) -> None:
        try:
            self._on_frame(frame)
        except (ValueError, IndexError):
            log.warning("node=%s event=bad-frame frame=%r", self.node, frame[:200])

    def _on_frame(self, frame: str) -> None:
        header, _, body = frame.partition("\n")
        fields = header.split("|")
        kind = fields[0]
        mirror = self.mirror
        if kind == "M":
            room, source, target = int(fields[1]), fields[2], int(fields[3])
            if self._defer(target, frame):
                return
            actor = mirror.local.get(target)
            if actor is not None and (room == 0 or mirror.room_of(actor) == room):
                actor.tell(body)
            elif source != "-":
                node, sender = parse_member(source)
                message = "not delivered: the peer had left the room"
                self.state.counters["cluster:undelivered:peer-left"] += 1
                self.bus.control(node, f"E|{sender}|{ErrorCode.NO_PEER}\n{message}")
        elif kind in ("J", "L"):
            room, member = int(fields[1]), fields[2]
            node, actor_id = parse_member(member)
            remote = mirror.remote_member(node, actor_id, self.bus)
            known = mirror.room_of(remote) == room
            name = fields[4] if len(fields) > 4 and fields[4] else None
            for target in (int(t) for t in fields[3].split(",") if t):
                news = f"{kind}|{room}|{member}|{target}"
                if self._defer(target, f"{news}|{name}" if name else news):
                    continue
                actor = mirror.local.get(target)
                if actor is None or mirror.room_of(actor) != room:
                    continue  # it has left since; its own departure news is on its way
                if kind == "J":
                    # Every target was there before the newcomer, so this frame is how it
                    # hears of it, even when the mirror already knows the newcomer (from
                    # the roster of a later local joiner: a race of several joins).
                    if not known:
                        mirror.add(room, remote)
                        known = True
                    if name:
                        mirror.remote_names[remote] = name
                    multi = is_multi_party(mirror.capacity_of(room))
                    joined_id = mirror.member_id(remote) if multi else None
                    actor.tell(protocol.peer_joined_text(joined_id, name))
                elif mirror.room_of(remote) == room:
                    departure = mirror.drop(remote)
                    if departure is not None:
                        _tell_left(departure)
        elif kind in _NAME_FRAMES:
            self.names.on_frame(kind, fields, body)
        elif kind == "K":
            self._admin_close(int(fields[1]), CloseCode(int(fields[2])), fields[3], body)
        elif kind == "E":
            actor = mirror.local.get(int(fields[1])) or self._any_local(int(fields[1]))
            if actor is not None:
                code = ErrorCode(fields[2])
                self.state.counters[f"error:{code}"] += 1
                actor.tell(protocol.encode(protocol.Error(code=code, message=body)))

    def _admin_close(self, room: int, code: CloseCode, targets: str, reason: str) -> None:
        """K: the admin API closes these actors of this node (by id, or `@name`), if they
        are still in `room` (0: wherever they are)."""
        mirror = self.mirror
        if targets.startswith("@"):
            named = mirror.actor_named(targets[1:])
            found = [named] if isinstance(named, Actor) else []
        else:
            found = [a for a in (mirror.local.get(int(t)) for t in targets.split(",") if t) if a]
        for actor in found:
            if room == 0 or mirror.room_of(actor) == room:
                actor.kick(code, reason, cause="admin")

    def _any_local(self, actor_id: int) -> Actor | None:
        for actor in self.state.actors:
            if actor.id == actor_id:
                return actor
        return None

    def _defer(self, target: int, frame: str) -> bool:
        """Hold frames for an actor whose join is in flight; replayed when it is done."""
        held = self.joining.get(target)
        if held is None:
            return False
        if len(held) < DEFERRED_LIMIT:
            held.append(frame)
        return True

    # ================================================================ lease, janitor

    def unadded_relayed(self, room: int) -> int:
        """Bytes relayed in `room` here that Redis has not been told of yet."""
        return self.state.registry.relayed_bytes(room) - self._added.get(room, 0)

    async def _add_relayed(self) -> None:
        """Tell Redis what was relayed in this node's rooms since last time (with the
        lease renewal: the admin API's totals are at most `lease_ttl / 3` behind)."""
        registry = self.state.registry
        live = registry.rooms()
        self._added = {room: n for room, n in self._added.items() if room in live}
        news = {room: self.unadded_relayed(room) for room in live}
        args = [str(v) for room, delta in news.items() if delta > 0 for v in (room, delta)]
        if not args:
            return
        await self.call("relayed", scripts.ADD_RELAYED, *args)
        for room, delta in news.items():
            if delta > 0:
                self._added[room] = self._added.get(room, 0) + delta

    async def keep_lease(self) -> None:
        """Permanent child: hold the lease; resynchronise whenever it was lost."""
        backoff = self.min_backoff
        while True:
            now = trio.current_time()
            if self.token is not None and now >= self.valid_until:
                self.lose_lease(f"Redis unreachable for the lease's {self.ttl:g}s")
            try:
                if self.token is None or self._resync:
                    if self._subscribed:
                        await self._acquire()
                        self._outage_ends()
                else:
                    sent = trio.current_time()
                    renewed = await self.call(
                        "renew", scripts.RENEW, self.node, self.token, int(self.ttl * 1000)
                    )
                    if not renewed:
                        self.lose_lease("the lease expired or was taken over")
                        continue
                    self.valid_until = sent + self.ttl
                    self._outage_ends()
                    await self._add_relayed()
                backoff = self.min_backoff
                pause = self.ttl / 3 if self.ready else self.max_backoff
            except ClusterUnavailable:
                pause = backoff
                backoff = min(backoff * 2, self.max_backoff)
            if self.token is not None:
                pause = min(pause, max(0.0, self.valid_until - trio.current_time()))
            self._wake = trio.Event()
            with trio.move_on_after(pause):
                await self._wake.wait()

    async def _acquire(self) -> None:
        if self.ready or self.token is not None:
            self.lose_lease("resynchronising after a lost subscription")
        self._resync = False
        token = secrets.token_hex(8)
        sent = trio.current_time()
        # A Redis that lost its data (restarted empty) gets back the key the nodes
        # already share, from whichever node comes back first: ids stay the same.
        proposal = self.id_key.decode() if self.id_key else secrets.token_hex(32)
        self.id_key = (await self.call("idkey", scripts.ID_KEY, proposal)).encode()
        reaped = await self.call(
            "acquire", scripts.ACQUIRE, self.node, token, int(self.ttl * 1000), self.address
        )
        self.token, self.valid_until = token, sent + self.ttl
        self.announce_reaped(reaped)
        try:
            for room, actor in self.mirror.local_memberships():
                await self._rejoin(room, actor)
        except ClusterUnavailable:
            self.lose_lease("Redis failed during resynchronisation")
            raise
        if self._resync or self.token != token:
            return  # lost again meanwhile: the next round starts over
        self.ready = True
        self._up.set()
        log.info("node=%s event=lease-acquired", self.node)

    async def _rejoin(self, room: int, actor: Actor) -> None:
        member = member_id(self.node, actor.id)
        name = self.mirror.name_of(actor) or ""
        capacity = self.mirror.capacity_of(room)
        reply = await self.call(
            "rejoin", scripts.JOIN, self.node, self.token, member, "rejoin", room, capacity, name
        )
        if self.mirror.room_of(actor) != room:
            self.queue_departure(actor.id, room)  # it left meanwhile: undo the rejoin
            return
        if reply[0] == "no-lease":
            raise ClusterUnavailable("the lease vanished during resynchronisation")
        if reply[0] != "ok":
            departure = self.mirror.drop(actor)
            if departure is not None:
                _tell_left(departure)
            message = f"lost the place in room {room} while Redis was unreachable ({reply[0]})"
            self.state.counters[f"error:{ErrorCode.CLUSTER_UNAVAILABLE}"] += 1
            actor.tell(
                protocol.encode(protocol.Error(code=ErrorCode.CLUSTER_UNAVAILABLE, message=message))
            )
            return
        count = int(reply[2])
        there = reply[4 + count :]
        self._admit(room, actor, there, int(reply[3]))
        self._news("J", room, member, there[0::2], name)
        if is_multi_party(self.mirror.capacity_of(room)):
            # Back in the room after an outage, it is the newcomer: the members it
            # was cut off from are in its roster (and they hear PEERJOINED).
            actor.tell(roster_text(self.mirror, actor, room))

    def announce_reaped(self, reply: Sequence[str]) -> int:
        """Tell every node holding a remaining member of a reaped room (L)."""
        i = members = 0
        while i < len(reply):
            room, member, count = int(reply[i]), reply[i + 1], int(reply[i + 2])
            remaining = reply[i + 3 : i + 3 + count]
            i += 3 + count
            members += 1
            by_node: dict[str, list[str]] = defaultdict(list)
            for target in remaining:
                node, _, actor_id = target.rpartition("/")
                by_node[node].append(actor_id)
            for node, actor_ids in by_node.items():
                if node != self.node or not member.startswith(f"{self.node}/"):
                    self.bus.control(node, f"L|{room}|{member}|{','.join(actor_ids)}")
        return members

    async def reap_dead(self) -> None:
        """Permanent child (the janitor): reap nodes whose lease expired."""
        while True:
            await trio.sleep(self.ttl / 3 * random.uniform(0.8, 1.2))
            if not self.available:
                continue
            with contextlib.suppress(ClusterUnavailable):
                reaped = await self.call("reap", scripts.REAP_DEAD, self.node)
                if reaped:
                    count = self.announce_reaped(reaped)
                    self.state.counters["cluster:reaped"] += count
                    log.info("node=%s event=reaped members=%d", self.node, count)

    # ================================================================ life

    async def run(
        self,
        supervisor: Supervisor,
        startup_wait: float,
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Open the Redis client, start the services, report started once the lease is
        held (or after `startup_wait`: a node may start before its Redis)."""
        log.info(
            "node=%s event=cluster-start redis=%s", self.node, _redacted(self.state.settings.redis)
        )
        settings = self.state.settings
        bind = settings.cluster_link_host or settings.host
        async with self.redis, trio.open_nursery() as nursery:
            # Not a restartable child: the port is announced with the lease, and a node
            # that cannot listen (the port is taken) should say so and stop.
            port = settings.cluster_link_port
            if port:  # each worker process is a node of its own: worker i takes port + i
                port += self.state.workers.index
            port = await nursery.start(self.bus.links.run, bind, port, self.on_frame)
            host = announced_host(bind, settings.redis)
            self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            log.info("node=%s event=link-listening address=%s", self.node, self.address)
            nursery.start_soon(
                supervisor.permanent, "cluster-subscriber", self.bus.run_subscriber, self.on_frame
            )
            nursery.start_soon(supervisor.permanent, "cluster-lease", self.keep_lease)
            nursery.start_soon(supervisor.permanent, "cluster-janitor", self.reap_dead)
            nursery.start_soon(supervisor.permanent, "cluster-departures", self.departures)
            nursery.start_soon(supervisor.permanent, "cluster-names", self.names.run)
            with trio.move_on_after(startup_wait):
                await self._up.wait()
                await self.names.known.wait()
            if not self._up.is_set():
                log.warning("node=%s event=started-without-redis", self.node)
            task_status.started()

    async def leave(self, budget: float) -> None:
        """Graceful exit: hand the lease back and reap our own members, so their peers
        hear PEERLEFT now rather than when the lease expires."""
        with trio.move_on_after(budget):
            if self.token is not None:
                with contextlib.suppress(ClusterUnavailable):
                    reaped = await self.call("release", scripts.RELEASE, self.node)
                    self.token, self.ready = None, False
                    self.announce_reaped(reaped)
            while self.bus.backlog:
                await trio.sleep(0.01)
        self.token, self.ready = None, False


def _tell_left(departure: Departure[Peer]) -> None:
    _tell_all(departure.remaining, protocol.peer_left_text(departure.left_id))


def _tell_all(peers: Iterable[Peer], text: str) -> None:
    for peer in peers:
        peer.tell(text)


def _redacted(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)
