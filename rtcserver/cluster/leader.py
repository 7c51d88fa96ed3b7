"""The leader: the one node that runs the cluster's switchboard and name table.

gproc keeps its global names (`{n,g,Name}`) consistent with a leader; so do we. One
node at a time holds the Redis lock `leader` (`scripts.LEAD`, a lease renewed with the
node's own). It alone runs the pure `calls.Switchboard` and the table name → (node,
actor), and it is driven only by requests from the nodes (`P` frames on the bus, see
`names.py`), handled synchronously in arrival order: exactly the single-node rules,
one sequence of messages for the whole cluster.

Effects go back over the bus to the nodes that hold the named users:
- `Send`            `T|actor|name` + the text, to the holder's node;
- `PresenceChanged` and arrivals/departures: `D` + the directory message, to every node
                    that holds a name (each node tells its own logged-in users);
- `CreateRoom`      `scripts.PRIVATE` makes the room in Redis with both parties in it,
                    then `R|room|member,member` tells their nodes (their mirrors learn it),
                    then CALLACCEPTED follows on the same channels, so after the room;
- `CloseRoom`       `X|room` to the parties' nodes at once (before the HANGUP of the same
                    step: whoever hears HANGUP is out of the room), then `scripts.CLOSE`
                    empties it in Redis.

A request for a name the leader does not know (it took over, or took the node for dead
during a Redis outage) is refused with ERROR `cluster-unavailable`, and `Y` asks that
node to resync its names.

A leader that loses the lock forgets everything (`Leader` is thrown away); the next
one is rebuilt from the nodes' resyncs. Names of nodes whose lease is gone are taken
offline by `check_nodes`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
import trio

from .. import protocol
from ..directory import calls
from ..protocol import ErrorCode
from ..rooms.registry import draw_room_number
from ..security.lookalike import skeleton
from . import scripts
from .errors import ClusterUnavailable
from .mirror import member_id, parse_member

if TYPE_CHECKING:
    from .nodeview import NodeView

log = logging.getLogger("rtcserver.cluster")

Holder = tuple[str, int]  # (node, actor id)


class Leader:
    def __init__(self, cluster: NodeView, nursery: trio.Nursery) -> None:
        self.cluster = cluster
        self.node = cluster.node
        self.nursery = nursery  # room scripts run here, so requests never wait on Redis
        self.board = calls.Switchboard(
            ring_timeout=cluster.state.settings.ring_timeout,
            new_id=lambda: secrets.token_urlsafe(12),
            # The webhooks' call events come from the leader alone: once per call.
            watcher=cluster.state.switchboard.watcher,
        )
        self.names: dict[str, Holder] = {}
        # TR39 skeleton -> the name holding it: no two logged-in names look alike.
        self.skeletons: dict[str, str] = {}
        self.rooms: dict[int, list[str]] = {}  # the calls' rooms: their members
        self.ring_changed = trio.Event()
        self.since = trio.current_time()
        self.snapshot_sent = False  # the whole directory, once the resyncs are in

    # ================================================================ requests

    def handle(self, request: dict[str, Any]) -> None:
        """One request from a node (`names.py` sends them). Synchronous: the requests
        of the whole cluster form one sequence, as on one node."""
        op, node, actor = request["op"], str(request["node"]), int(request["actor"])
        if op == "directory":  # the admin API's GET /api/v1/users, from any node
            users = orjson.dumps(self.directory()).decode()
            self.cluster.bus.control(node, f"U|{int(request['req'])}\n{users}")
            return
        if op == "resync":  # all of the node's names: what it does not list is gone
            listed = {(str(name), int(actor_id)) for name, actor_id in request["names"]}
            for name, holder in list(self.names.items()):
                if holder[0] == node and (name, holder[1]) not in listed:
                    self._offline(name)
            for name, actor_id in sorted(listed):
                self._online(name, (node, actor_id), reply_to=None)
            return
        name = str(request["name"])
        if op == "login":
            self._online(name, (node, actor), reply_to=int(request["req"]))
            return
        if self.names.get(name) != (node, actor):
            if op != "logout":  # a leader that does not know you: ask your node to resync
                why = "the cluster's leader lost track of your name; it is being re-registered"
                self._tell(node, actor, name, _cluster_error(f"{op} not done: {why}"))
                self.cluster.bus.control(node, "Y")
            return
        board = self.board
        if op == "logout":
            self._offline(name)
            return
        now = trio.current_time()
        self.apply(board.expire(now))  # exact ring deadlines, as in phone.call_control
        if op == "CALL":
            self.apply(board.call(name, str(request["to"]), str(request["media"]), now))
            self.ring_changed.set()
            return
        self.apply(board.respond(op, name, str(request["call"])))

    def _online(self, name: str, holder: Holder, reply_to: int | None) -> None:
        node, actor = holder
        key = skeleton(name)
        if name in self.names or key in self.skeletons:
            if reply_to is not None:
                reason = "name taken"
                if name not in self.names:
                    reason = "name taken: it looks like the name of someone logged in"
                self._reply(node, actor, reply_to, {"ok": False, "reason": reason})
            elif self.names.get(name, self.names.get(self.skeletons[key])) != holder:
                log.warning("node=%s event=resync-conflict user=%s", self.node, name)
            return
        self.names[name] = holder
        self.skeletons[key] = name
        if reply_to is not None:
            board = self.board
            users = [
                [other, board.status(other).value] for other in sorted(self.names) if other != name
            ]
            self._reply(node, actor, reply_to, {"ok": True, "users": users})
        effects = self.board.online(name)
        self.broadcast(protocol.UserJoined(name=name, status="available"), exclude=name)
        self.apply([e for e in effects if not _presence_of(e, name)])

    def directory(self) -> list[list[Any]]:
        """Every name, its status and its call (`[id, state, other party, room]` or
        None), in name order: what the admin API lists."""
        board = self.board
        call_of: dict[str, list[Any]] = {}
        for call in board.calls():
            for party in (call.caller, call.callee):
                call_of[party] = [call.id, call.state.name.lower(), call.other(party), call.room]
        return [[n, board.status(n).value, call_of.get(n)] for n in sorted(self.names)]

    def expire(self) -> None:
        self.apply(self.board.expire(trio.current_time()))

    def nodes_gone(self, dead: Iterable[str]) -> None:
        """These nodes' leases are gone: their users are offline (their calls end)."""
        gone = set(dead)
        for name, (node, _) in list(self.names.items()):
            if node in gone:
                log.info("node=%s event=name-reaped user=%s holder=%s", self.node, name, node)
                self._offline(name)

    def _offline(self, name: str) -> None:
        del self.names[name]
        self.skeletons.pop(skeleton(name), None)
        effects = self.board.offline(name)
        self.apply([e for e in effects if not _presence_of(e, name)])
        self.broadcast(protocol.UserLeft(name=name), exclude=name)
        self.ring_changed.set()

    def snapshot(self) -> None:
        """After a takeover: the whole directory, so the dead leader's names leave."""
        if not self.cluster.state.settings.directory:
            return
        board = self.board
        users = orjson.dumps([[n, board.status(n).value] for n in sorted(self.names)]).decode()
        for node in self.holder_nodes():
            self.cluster.bus.control(node, f"S\n{users}")

    def holder_nodes(self) -> set[str]:
        return {node for node, _ in self.names.values()}

    # ================================================================ effects

    def apply(self, effects: Iterable[calls.Effect]) -> None:
        effects = list(effects)
        for effect in effects:
            if isinstance(effect, calls.CloseRoom):
                # The nodes drop the room first, so whoever hears HANGUP is out of it.
                for node in {parse_member(m)[0] for m in self.rooms.pop(effect.room, ())}:
                    self.cluster.bus.control(node, f"X|{effect.room}")
        for effect in effects:
            match effect:
                case calls.Send(to=to, message=message):
                    holder = self.names.get(to)
                    if holder is not None:
                        self._tell(holder[0], holder[1], to, orjson.dumps(dict(message)).decode())
                case calls.PresenceChanged(name=name, status=status):
                    if status is not calls.Status.OFFLINE:
                        self.broadcast(protocol.Presence(name=name, status=status.value))
                case calls.CreateRoom(call=call_id, caller=caller, callee=callee):
                    self.nursery.start_soon(self._create_room, call_id, caller, callee)
                case calls.CloseRoom(room=room):
                    self.nursery.start_soon(self._close_room, room)

    async def _create_room(self, call_id: str, caller: str, callee: str) -> None:
        cluster = self.cluster
        holders = [self.names.get(caller), self.names.get(callee)]
        members = [member_id(*h) for h in holders if h is not None]
        try:
            for _ in range(8):
                room = draw_room_number()
                reply = await cluster.call("call-room", scripts.PRIVATE, room, *members)
                if reply[0] != "exists":
                    break
            else:
                raise ClusterUnavailable("no free room number found")
            if reply[0] != "ok":
                raise ClusterUnavailable(f"node {reply[1]} has no lease")
        except ClusterUnavailable as failure:
            log.warning(
                "node=%s event=call-room-failed call=%s error=%s", self.node, call_id, failure
            )
            call = self.board.lookup(call_id)
            if call is not None:  # end it: both parties hear HANGUP
                holder = self.names.get(call.caller)
                if holder is not None:
                    self._tell(*holder, call.caller, _message("HANGUP", call=call_id))
                self.apply(self.board.hangup(call.caller, call_id))
            return
        cluster.announce_reaped(reply[1:])  # the rooms they left hear PEERLEFT
        self.rooms[room] = members
        for node in {parse_member(m)[0] for m in members}:
            cluster.bus.control(node, f"R|{room}|{','.join(members)}")
        log.info("node=%s event=call-room call=%s room=%d", self.node, call_id, room)
        self.apply(self.board.room_created(call_id, room))

    async def _close_room(self, room: int) -> None:
        """Empty the room in Redis (its nodes were told `X` already)."""
        with contextlib.suppress(ClusterUnavailable):  # else the lease's reaping does it
            await self.cluster.call("call-room-close", scripts.CLOSE, room)

    # ================================================================ sending

    def broadcast(self, message: protocol.ServerMessage, exclude: str = "") -> None:
        """A directory message for every node holding a name; `exclude` is not told."""
        if not self.cluster.state.settings.directory:
            return
        text = protocol.encode(message)
        for node in self.holder_nodes():
            self.cluster.bus.control(node, f"D|{exclude}\n{text}")

    def _tell(self, node: str, actor: int, name: str, text: str) -> None:
        self.cluster.bus.control(node, f"T|{actor}|{name}\n{text}")

    def _reply(self, node: str, actor: int, req: int, body: dict[str, Any]) -> None:
        self.cluster.bus.control(node, f"A|{actor}|{req}\n{orjson.dumps(body).decode()}")


def _message(type_: str, **fields: str | int) -> str:
    return orjson.dumps({"type": type_, **fields}).decode()


def _cluster_error(text: str) -> str:
    return protocol.encode(protocol.Error(code=ErrorCode.CLUSTER_UNAVAILABLE, message=text))


def _presence_of(effect: calls.Effect, name: str) -> bool:
    return isinstance(effect, calls.PresenceChanged) and effect.name == name
