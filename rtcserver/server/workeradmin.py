"""The admin API across workers (`--workers N`): whichever worker takes the request
answers for the whole server.

A request about one room goes to the room's owner (`room % N`, rooms/owners.py), one
about users to the directory worker (0). If that worker does not answer in time, the
request fails with `Unavailable` (503, naming the worker): a single room is never
guessed at. A room list asks every worker for its first `limit` rooms after the cursor
and merges them (`merge`), so a cursor taken from one page works whichever worker
answers the next; a worker that does not answer is left out and the list says so.

Questions and answers are "admin?" datagrams between the workers' inboxes
(`siblings.py`); `serve` answers one with this worker's own `LocalAdmin`.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
import cattrs
import orjson

from ..rooms.owners import DIRECTORY_WORKER, Workers
from .adminview import Listing, LocalAdmin, LocalState, RoomInfo, Unavailable, UserInfo

_converter = cattrs.Converter()


class Asker(Protocol):
    """How a question reaches other workers (`siblings.Siblings`)."""

    @property
    def timeout(self) -> float: ...

    async def question(
        self, indices: list[int], question: dict[str, Any]
    ) -> dict[int, dict[str, Any]]: ...


@attrs.frozen
class WorkersAdmin:
    """`AdminView` for the whole server: this worker's `LocalAdmin`, and the others asked."""

    local: LocalAdmin
    workers: Workers
    siblings: Asker

    async def rooms(self, after: int | None, limit: int) -> Listing[RoomInfo]:
        others = [i for i in range(self.workers.count) if i != self.workers.index]
        answers = await self.siblings.question(others, _question("rooms", after, limit))
        listings = {self.workers.index: self.local.room_listing(after, limit)}
        for index, answer in answers.items():
            if "result" in answer:
                listings[index] = _converter.structure(answer["result"], Listing[RoomInfo])
        return merge(listings, limit, self.workers.count, lambda room: room.number)

    async def room(self, number: int) -> RoomInfo | None:
        result = await self._on(self.workers.owner(number), "room", number)
        return result if isinstance(result, RoomInfo | None) else _structure(result, RoomInfo)

    async def close_room(self, number: int) -> bool:
        return bool(await self._on(self.workers.owner(number), "close_room", number))

    async def remove_member(self, number: int, member_id: str) -> bool:
        owner = self.workers.owner(number)
        return bool(await self._on(owner, "remove_member", number, member_id))

    async def post(self, number: int, data: dict[str, Any], to: str | None) -> int | None:
        told = await self._on(self.workers.owner(number), "post", number, data, to)
        return None if told is None else int(told)

    async def users(self, after: str | None, limit: int) -> Listing[UserInfo]:
        result = await self._on(DIRECTORY_WORKER, "users", after, limit)
        # One worker holds them all: it answers (or the request fails), so no count.
        listing: Listing[UserInfo]
        listing = result if isinstance(result, Listing) else _structure(result, Listing[UserInfo])
        return listing

    async def sign_out(self, name: str) -> bool:
        return bool(await self._on(DIRECTORY_WORKER, "sign_out", name))

    async def _on(self, index: int, call: str, *args: Any) -> Any:
        """`call(*args)` on worker `index`: its answer (objects when it is this worker,
        their JSON form from another)."""
        if index == self.workers.index:
            return await _local_call(self.local, call, list(args))
        answers = await self.siblings.question([index], _question(call, *args))
        answer = answers.get(index)
        if answer is None:
            raise Unavailable(
                f"worker {index}", f"did not answer within {self.siblings.timeout:g} s"
            )
        if "result" not in answer:
            raise Unavailable(f"worker {index}", f"could not answer: {answer.get('error')}")
        return answer["result"]


def merge(listings: dict[int, Listing[Any]], limit: int, count: int, key: Any) -> Listing[Any]:
    """One page from each worker's first `limit` items after the cursor: the first
    `limit` of them all, but none past the last item of a worker that has more (what
    it did not send may come before it). So the next cursor misses nothing."""
    cutoff = min(
        (key(lst.items[-1]) for lst in listings.values() if lst.more and lst.items), default=None
    )
    items = sorted((item for lst in listings.values() for item in lst.items), key=key)
    if cutoff is not None:
        items = [item for item in items if key(item) <= cutoff]
    more = len(items) > limit or any(lst.more for lst in listings.values())
    return Listing(tuple(items[:limit]), more, tuple(sorted(listings)), count)


async def serve(mine: LocalState, message: dict[str, Any], size: int) -> dict[str, Any]:
    """The answer to another worker's "admin?" question, at most `size` bytes encoded (a
    list is cut short, saying it has more)."""
    try:
        result = await _local_call(LocalAdmin(mine), message["call"], message["args"])
    except (KeyError, TypeError, ValueError) as bad:
        return {"error": f"bad admin question: {bad}"}
    if isinstance(result, Listing):
        while len(orjson.dumps(_converter.unstructure(result))) > size and len(result.items) > 1:
            result = Listing(result.items[: len(result.items) // 2], True)
    return {"result": _converter.unstructure(result)}


async def _local_call(local: LocalAdmin, call: str, args: list[Any]) -> Any:
    match call, args:
        case "rooms", [int() | None as after, int() as limit]:
            return local.room_listing(after, limit)
        case "room", [int() as number]:
            return local.room_info(number)
        case "close_room", [int() as number]:
            return await local.close_room(number)
        case "remove_member", [int() as number, str() as member]:
            return await local.remove_member(number, member)
        case "post", [int() as number, dict() as data, str() | None as to]:
            return await local.post(number, data, to)
        case "users", [str() | None as after, int() as limit]:
            return local.user_listing(after, limit)
        case "sign_out", [str() as name]:
            return await local.sign_out(name)
    raise ValueError(f"no admin call {str(call)[:40]!r} with those arguments")


def _question(call: str, *args: Any) -> dict[str, Any]:
    return {"op": "admin?", "call": call, "args": list(args)}


def _structure(value: Any, kind: Any) -> Any:
    try:
        return _converter.structure(value, kind)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as bad:
        raise Unavailable("a worker", f"gave an answer this worker cannot read: {bad}") from None
