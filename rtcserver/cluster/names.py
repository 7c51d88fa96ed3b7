"""Names, the directory and calls by name across the cluster: this node's side.

One node leads (`leader.py`); every node, the leader too, talks to it over the bus, so
the cluster's LOGINs and call messages form one sequence, as on one node. What this
node does:
- LOGIN: checked here as on one node (`phone.login`), then a request to the
  leader; the reader awaits the answer (`Session.pending`), so the client's next
  message is read only once the name is (or is not) its own. The name is then also
  registered in this node's mirror, so it dies with its actor (`Registry.forget` →
  `phone.logout` → a logout request).
- CALL, ACCEPT, REJECT, CANCEL, HANGUP: forwarded to the leader as requests.
- The admin API's `directory` question (P), answered by the leader with `U` (every name,
  its status and call).
- What the leader sends back: `A` (an answer to a LOGIN), `T` (a message for one of
  our users), `D` (a directory change) and `S` (the whole directory, after a takeover),
  both into this node's `state.presence`, which coalesces them per local subscriber;
  `R` (a call's private room, already made in Redis: the mirror learns it), `X` (that
  room is closed) and `Y` (resync: the leader does not know one of our names).
- `run`, a permanent child: every `lease_ttl / 3` it renews or contests the leader
  lock. When the leader changes, this node ends its users' calls (HANGUP when
  active, CANCELLED while ringing: the new leader never knew them) and re-registers
  its names with the new leader (a resync). The same resync follows a new lease of
  this node (after a Redis outage the leader may have taken its names offline).
  While it leads, it also takes the names of dead nodes offline and times out calls.

No request is lost silently: one that cannot reach the leader comes back to its sender
as ERROR `cluster-unavailable`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
from typing import TYPE_CHECKING, Any

import orjson
import trio

from .. import protocol
from ..actors.actor import Actor
from ..directory import calls, phone
from ..protocol import ErrorCode
from ..wire import logsafe
from . import scripts
from .errors import ClusterUnavailable
from .leader import Leader
from .mirror import parse_member

if TYPE_CHECKING:
    from .nodeview import NodeView

log = logging.getLogger("rtcserver.cluster")

_ENDED = frozenset({"REJECTED", "CANCELLED", "NOANSWER", "HANGUP"})


class _Waiter:
    """A LOGIN waiting for the leader's answer."""

    def __init__(self, req: int, actor: Actor, name: str) -> None:
        self.req, self.actor, self.name = req, actor, name
        self.done = trio.Event()


class Names:
    def __init__(self, cluster: NodeView) -> None:
        self.cluster = cluster
        self.node = cluster.node
        self.local: dict[str, Actor] = {}  # names logged in on this node
        self.leader_node: str | None = None
        self.leader: Leader | None = None  # while this node leads
        # actor id -> (call id, "caller" | "callee" | "active", room or 0): to end them
        # when the leader changes, since the new leader never knew them.
        self.calls: dict[int, tuple[str, str, int]] = {}
        self._waiting: dict[int, _Waiter] = {}
        # The admin API's directory questions to the leader: req -> (answered, answer).
        self._directories: dict[int, tuple[trio.Event, list[Any]]] = {}
        self._requests = itertools.count(1)
        self._synced_token: str | None = None
        self.known = trio.Event()  # set once a leader is known (the node is ready)

    # ================================================================ from the handler

    async def login(self, actor: Actor, name: str) -> None:
        """LOGIN, already checked locally (`phone.login`): ask the leader whether `name`
        is free. The answer is carried out when it arrives (`_answered`, synchronous, so
        in order with the directory news behind it); this only waits for it."""
        leader = self._leader_or_error(actor, "LOGIN")
        if leader is None:
            return
        waiter = self._waiting[actor.id] = _Waiter(next(self._requests), actor, name)
        request = {"op": "login", "node": self.node, "actor": actor.id, "name": name}
        self.cluster.bus.request(leader, request | {"req": waiter.req}, actor)
        try:
            with trio.move_on_after(2 * self.cluster.timeout + self.cluster.ttl):
                await waiter.done.wait()
        finally:
            self._waiting.pop(actor.id, None)
            if not waiter.done.is_set():  # unknown outcome: make sure the leader forgets it
                self.cluster.bus.request(leader, request | {"op": "logout"}, None)
                _cluster_error(self.cluster, actor, "LOGIN: the cluster's leader did not answer")

    def _answered(self, waiter: _Waiter, reply: dict[str, Any]) -> None:
        waiter.done.set()
        actor, name = waiter.actor, waiter.name
        if "unavailable" in reply:
            _cluster_error(self.cluster, actor, f"LOGIN not done: {reply['unavailable']}")
            return
        if not reply["ok"]:
            actor.tell(protocol.encode(protocol.LoginRefused(reason=str(reply["reason"]))))
            return
        state = self.cluster.state
        if not state.registry.register_name(name, actor):  # cannot happen: checked before
            request = {"op": "logout", "node": self.node, "actor": actor.id, "name": name}
            self.cluster.bus.request(self.leader_node or self.node, request, None)
            return
        self.local[name] = actor
        log.info(
            "conn=%d addr=%s event=login user=%s", actor.id, actor.address, logsafe.clean(name)
        )
        actor.tell(protocol.encode(protocol.LoginOk(name=name)))
        if state.settings.directory and len(self.local) == 1:
            # Our view was not kept while nobody here was listed: the leader's is news.
            state.presence.replace({str(n): str(s) for n, s in reply["users"]})
            state.presence_changed()
        phone.subscribe(state, actor)

    async def directory(self, timeout: float) -> list[list[Any]] | None:
        """The cluster's directory as the leader knows it (`Leader.directory`), for the
        admin API; None if the leader does not answer within `timeout` (or none is known).
        This node's own `presence` is not enough: a node none of whose users is listed
        stops hearing the directory's changes."""
        if self.leader is not None:
            return self.leader.directory()
        if self.leader_node is None:
            return None
        req = next(self._requests)
        answered: tuple[trio.Event, list[Any]] = (trio.Event(), [])
        self._directories[req] = answered
        try:
            request = {"op": "directory", "node": self.node, "actor": 0, "req": req}
            self.cluster.bus.request(self.leader_node, request, None)
            with trio.move_on_after(timeout):
                await answered[0].wait()
            return answered[1] if answered[0].is_set() else None
        finally:
            del self._directories[req]

    def logout(self, name: str) -> None:
        """The connection holding `name` ended (its registrations are already gone)."""
        actor = self.local.pop(name, None)
        if actor is None:
            return
        self.calls.pop(actor.id, None)
        payload = {"op": "logout", "node": self.node, "actor": actor.id, "name": name}

        def send() -> None:
            if self.leader_node is not None:
                self.cluster.bus.request(self.leader_node, payload, None)

        # Behind the actor's departure from its room: its peer hears PEERLEFT first.
        self.cluster.after_departures(send)

    def call_control(self, actor: Actor, name: str, kind: str, fields: dict[str, Any]) -> None:
        request: dict[str, Any] = {"op": kind, "node": self.node, "actor": actor.id, "name": name}
        if kind == "CALL":
            to, media = fields.get("to"), fields.get("media", "video")
            if not isinstance(to, str) or not isinstance(media, str):
                _error(
                    self.cluster, actor, ErrorCode.BAD_TYPE, "CALL needs string `to` and `media`"
                )
                return
            request |= {"to": to, "media": media}
        else:
            call_id = fields.get("call")
            if not isinstance(call_id, str):
                text = f"{kind} needs the string `call` id it is about"
                _error(self.cluster, actor, ErrorCode.BAD_TYPE, text)
                return
            request["call"] = call_id
            tracked = self.calls.get(actor.id)
            if tracked is not None and tracked[0] == call_id and kind != "ACCEPT":
                del self.calls[actor.id]  # it ends here (the party that ends it hears nothing)
                mirror = self.cluster.mirror
                if kind == "HANGUP" and tracked[2] and mirror.room_of(actor) == tracked[2]:
                    mirror.drop(actor)  # out of the room now, as on one node (Redis: `X`)
        leader = self._leader_or_error(actor, kind)
        if leader is not None:
            self.cluster.bus.request(leader, request, actor)

    def _leader_or_error(self, actor: Actor, what: str) -> str | None:
        cluster = self.cluster
        if not cluster.available:
            _cluster_error(cluster, actor, f"{what} not done: {cluster.why_down}")
            return None
        if self.leader_node is None:
            _cluster_error(cluster, actor, f"{what} not done: the cluster has no leader yet")
            return None
        return self.leader_node

    def undelivered(self, sender: Actor | None, message: str) -> None:
        """A request could not reach the leader (bus.py): say so, end a LOGIN's wait."""
        if sender is None:
            return
        waiter = self._waiting.get(sender.id)
        if waiter is not None:
            waiter.done.set()
        _cluster_error(self.cluster, sender, message)

    # ================================================================ from the leader

    def on_frame(self, kind: str, fields: list[str], body: str) -> None:
        try:
            self._on_frame(kind, fields, body)
        except (KeyError, TypeError, ValueError, calls.NotOnline) as failure:
            log.warning("node=%s event=bad-name-frame kind=%s error=%r", self.node, kind, failure)

    def _on_frame(self, kind: str, fields: list[str], body: str) -> None:
        if kind == "P":
            request = orjson.loads(body)
            if self.leader is not None:
                self.leader.handle(request)
                return
            # It took us for the leader, but we are not (any more).
            why = "the cluster's leader changed; try again"
            node, actor = str(request["node"]), request["actor"]
            if request["op"] == "login":
                answer = orjson.dumps({"ok": False, "unavailable": why}).decode()
                self.cluster.bus.control(node, f"A|{actor}|{request['req']}\n{answer}")
            elif request["op"] not in ("logout", "resync", "directory"):
                self.cluster.bus.control(node, f"T|{actor}|{request['name']}\n{_error_text(why)}")
        elif kind == "A":
            waiter = self._waiting.get(int(fields[1]))
            if waiter is not None and waiter.req == int(fields[2]) and not waiter.done.is_set():
                self._answered(waiter, orjson.loads(body))
        elif kind == "T":
            actor = self.local.get(fields[2])
            if actor is not None and actor.id == int(fields[1]):
                self._track(actor, body)
                actor.tell(body)
        elif kind == "D":
            self._directory_change(fields[1], body)
        elif kind == "S":
            self._directory_snapshot(dict(orjson.loads(body)))
        elif kind == "U":
            asked = self._directories.get(int(fields[1]))
            if asked is not None and not asked[0].is_set():
                asked[1].extend(orjson.loads(body))
                asked[0].set()
        elif kind == "R":
            self._room_made(int(fields[1]), fields[2].split(","))
        elif kind == "Y":
            self._resync()  # the leader lost track of our names
        elif kind == "X":
            mirror = self.cluster.mirror
            for member in mirror.members(int(fields[1])):
                mirror.drop(member)  # both parties already heard HANGUP: without a word more

    def _track(self, actor: Actor, text: str) -> None:
        message = orjson.loads(text)
        kind, call_id = message.get("type"), message.get("call")
        if kind in ("RINGING", "INCOMINGCALL"):
            self.calls[actor.id] = (call_id, "caller" if kind == "RINGING" else "callee", 0)
        elif kind == "CALLACCEPTED":
            self.calls[actor.id] = (call_id, "active", int(message["room"]))
        elif kind in _ENDED and self.calls.get(actor.id, ("",))[0] == call_id:
            del self.calls[actor.id]

    def _room_made(self, room: int, members: list[str]) -> None:
        cluster = self.cluster
        mirror = cluster.mirror
        for member in members:
            node, actor_id = parse_member(member)
            if node != self.node:
                continue
            actor = next((a for a in self.local.values() if a.id == actor_id), None)
            if actor is None:  # gone meanwhile: take it out of the room in Redis too
                cluster.queue_departure(actor_id, room)
                continue
            departure = mirror.drop(actor)  # Redis already moved it
            if departure is not None:
                left = protocol.peer_left_text(departure.left_id)
                for peer in departure.remaining:
                    peer.tell(left)
            for other in members:
                other_node, other_id = parse_member(other)
                if other_node != self.node:
                    mirror.add(room, mirror.remote_member(other_node, other_id, cluster.bus))
            mirror.add(room, actor)

    def _directory_change(self, exclude: str, text: str) -> None:
        """A change the leader saw: into this node's directory, which coalesces it
        with the others for each local subscriber (presence.py)."""
        message = orjson.loads(text)
        kind, name = message["type"], message["name"]
        presence = self.cluster.state.presence
        if kind == "USERLEFT":
            presence.remove(name)
        else:
            presence.set(name, message["status"])
        self.cluster.state.presence_changed()

    def _directory_snapshot(self, users: dict[str, str]) -> None:
        """After a takeover: whoever is not listed any more has left."""
        self.cluster.state.presence.replace(users)
        self.cluster.state.presence_changed()

    # ================================================================ the leader lock

    async def run(self) -> None:
        """Permanent child: hold or follow the leader lock; lead while holding it."""
        self.leader_node, self.leader = None, None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ring_timer)
            while True:
                await self._tick(nursery)
                if self.leader_node is None:  # starting: look again soon
                    await trio.sleep(self.cluster.min_backoff)
                else:
                    await trio.sleep(self.cluster.ttl / 3 * random.uniform(0.8, 1.0))

    async def _tick(self, nursery: trio.Nursery) -> None:
        cluster = self.cluster
        if not cluster.available:
            return
        try:
            holder = await cluster.call("lead", scripts.LEAD, self.node, int(cluster.ttl * 1000))
        except ClusterUnavailable:
            return
        if not holder:
            return
        if holder != self.leader_node:
            self._leader_changed(str(holder), nursery)
        elif cluster.token != self._synced_token:
            self._resync()  # a new lease of ours: the leader may have dropped our names
        leader = self.leader
        if leader is None:
            return
        if not leader.snapshot_sent and trio.current_time() > leader.since + cluster.ttl:
            leader.snapshot_sent = True  # the resyncs are in: the dead leader's names go
            leader.snapshot()
        others = sorted(leader.holder_nodes() - {self.node})
        if others:
            try:
                dead = await cluster.call("dead-nodes", scripts.DEAD_NODES, *others)
            except ClusterUnavailable:
                return
            if not dead or self.leader is not leader:
                return
            # Reap their rooms first (what the janitor does), so that the parties of
            # their calls hear PEERLEFT before HANGUP, as when a connection ends.
            with contextlib.suppress(ClusterUnavailable):
                reaped = await cluster.call("reap", scripts.REAP_DEAD, self.node)
                cluster.state.counters["cluster:reaped"] += cluster.announce_reaped(reaped)
            if self.leader is leader:
                leader.nodes_gone(dead)

    def _leader_changed(self, holder: str, nursery: trio.Nursery) -> None:
        previous = self.leader_node
        log.info("node=%s event=leader leader=%s previous=%s", self.node, holder, previous)
        self.leader_node = holder
        self.known.set()
        self.leader = Leader(self.cluster, nursery) if holder == self.node else None
        if previous is not None:
            self._end_calls()
        self._resync()

    def _end_calls(self) -> None:
        """The leader changed: calls it knew are gone with it. Their parties hear it."""
        mirror = self.cluster.mirror
        for actor_id, (call_id, role, room) in list(self.calls.items()):
            actor = next((a for a in self.local.values() if a.id == actor_id), None)
            if actor is None:
                continue
            kind = "HANGUP" if role == "active" else "CANCELLED"
            actor.tell(orjson.dumps({"type": kind, "call": call_id}).decode())
            if room and mirror.room_of(actor) == room:
                mirror.depart(actor)  # the other node hears L and tells PEERLEFT
        self.calls.clear()

    def _resync(self) -> None:
        self._synced_token = self.cluster.token
        if self.leader_node is None:
            return
        names = [[name, actor.id] for name, actor in self.local.items()]
        request = {"op": "resync", "node": self.node, "actor": 0, "names": names}
        self.cluster.bus.request(self.leader_node, request, None)

    async def _ring_timer(self) -> None:
        while True:
            leader = self.leader
            if leader is None:
                await trio.sleep(self.cluster.ttl / 3)
                continue
            deadline = leader.board.next_deadline()
            changed = leader.ring_changed = trio.Event()
            with trio.move_on_at(deadline if deadline is not None else float("inf")):
                with trio.move_on_after(self.cluster.ttl / 3):  # look for a new leader
                    await changed.wait()
                continue
            if self.leader is leader:
                leader.expire()


def _error_text(message: str) -> str:
    return protocol.encode(protocol.Error(code=ErrorCode.CLUSTER_UNAVAILABLE, message=message))


def _cluster_error(cluster: NodeView, actor: Actor, message: str) -> None:
    _error(cluster, actor, ErrorCode.CLUSTER_UNAVAILABLE, message)


def _error(cluster: NodeView, actor: Actor, code: ErrorCode, message: str) -> None:
    cluster.state.counters[f"error:{code}"] += 1
    actor.tell(protocol.encode(protocol.Error(code=code, message=message)))
