"""The other workers of this server, asked for their figures: /healthz and /metrics
answer for the whole server, whichever worker takes the request.

Questions and answers are Unix datagrams between the workers' inboxes (wire/fdpass.py),
the same ones that carry handed-over sockets, told apart by carrying no descriptor.
A worker that does not answer within `ANSWER_TIMEOUT` (restarting, say) is left out,
and the answer says how many did. The admin API's questions to other workers
(`workeradmin.py`) travel the same way, as "admin?" datagrams.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Any, Final, Protocol

import attrs
import orjson
import trio
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from ..directory.calls import Switchboard
from ..rooms.owners import Workers
from ..rooms.peers import Peer
from ..rooms.registry import Registry
from ..wire import fdpass
from . import workeradmin

log = logging.getLogger("rtcserver")

ANSWER_TIMEOUT: Final = 1.0
# What an admin answer may take of a datagram (the rest: its envelope).
_ANSWER_ROOM: Final = fdpass.MAX_DATAGRAM - 1024


class Figures(Protocol):
    """What a worker tells about itself (ServerState gives it)."""

    def health_figures(self) -> dict[str, Any]: ...

    def metrics_text(self) -> bytes: ...


class Worker(Figures, Protocol):
    """What a worker answers for: its figures, and the admin API's questions
    (`workeradmin.serve` reads its registry and switchboard)."""

    @property
    def registry(self) -> Registry[Peer]: ...

    @property
    def switchboard(self) -> Switchboard: ...


@attrs.define(eq=False)
class Siblings:
    workers: Workers
    timeout: float = ANSWER_TIMEOUT
    waiting: dict[int, tuple[trio.Event, dict[int, dict[str, Any]]]] = attrs.field(factory=dict)
    _ids: itertools.count[int] = attrs.field(factory=itertools.count)

    async def ask(self) -> dict[int, dict[str, Any]]:
        """Every other worker's figures ({index: {"health":…, "metrics":…}}) that came
        within the timeout."""
        others = [i for i in range(self.workers.count) if i != self.workers.index]
        return await self.question(others, {"op": "figures?"})

    async def question(
        self, indices: list[int], question: dict[str, Any]
    ) -> dict[int, dict[str, Any]]:
        """Ask the workers `indices` `question` (its "op" ends in "?"): their answers
        ({index: answer}) that came within `ANSWER_TIMEOUT`; an unreachable worker
        (dead, restarting) is left out at once."""
        workers = self.workers
        request_id = next(self._ids)
        answers: dict[int, dict[str, Any]] = {}
        datagram = orjson.dumps({**question, "id": request_id, "from": workers.index})
        try:
            with trio.move_on_after(self.timeout):
                self.waiting[request_id] = (trio.Event(), answers)
                asked = 0
                for index in indices:
                    with contextlib.suppress(fdpass.Unreachable):
                        await fdpass.send(workers.inbox(index), datagram)
                        asked += 1
                while len(answers) < asked:
                    arrived = trio.Event()
                    self.waiting[request_id] = (arrived, answers)
                    await arrived.wait()
            return answers
        finally:
            del self.waiting[request_id]

    async def take(self, data: bytes, mine: Worker) -> None:
        """A datagram without a descriptor: a question to answer, or an answer."""
        try:
            message = orjson.loads(data)
            op = message["op"]
            asker = int(message["from"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("event=bad-inbox-datagram")
            return
        answer: dict[str, Any]
        if op == "figures?":
            answer = {
                "op": "figures",
                "health": mine.health_figures(),
                "metrics": mine.metrics_text().decode(),
            }
        elif op == "admin?":
            answer = {"op": "admin", **await workeradmin.serve(mine, message, _ANSWER_ROOM)}
        else:
            waiting = self.waiting.get(message.get("id"))
            if waiting is not None:
                waiting[1][asker] = message
                waiting[0].set()
            return
        answer.update({"id": message.get("id"), "from": self.workers.index})
        if not 0 <= asker < self.workers.count:
            return
        with (
            trio.move_on_after(ANSWER_TIMEOUT),
            contextlib.suppress(fdpass.Unreachable, ValueError),
        ):
            await fdpass.send(self.workers.inbox(asker), orjson.dumps(answer))


def merged_health(
    mine: dict[str, Any], index: int, others: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """/healthz for the whole server: sums, and each worker's own figures."""
    per_worker = {index: mine, **{i: answer["health"] for i, answer in others.items()}}
    total: dict[str, Any] = {"status": "ok"}
    for key in ("connections", "rooms"):
        total[key] = sum(int(figures.get(key, 0)) for figures in per_worker.values())
    total["workers"] = [{"worker": i, **per_worker[i]} for i in sorted(per_worker)]
    return total


def merged_metrics(texts: dict[int, str]) -> bytes:
    """/metrics for the whole server: every worker's samples with a `worker` label, one
    HELP and TYPE per metric (Prometheus sums them with `sum without (worker)`)."""
    families: dict[str, tuple[str, str, list[str]]] = {}
    for index in sorted(texts):
        for family in text_string_to_metric_families(texts[index]):
            entry = families.setdefault(family.name, (family.documentation, family.type, []))
            for sample in family.samples:
                labels = {**sample.labels, "worker": str(index)}
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
                value = floatToGoString(sample.value)  # type: ignore[no-untyped-call]
                entry[2].append(f"{sample.name}{{{rendered}}} {value}")
    lines: list[str] = []
    for name, (documentation, kind, samples) in families.items():
        # The text format names a counter by its samples' `_total` (the parser drops it).
        shown = f"{name}_total" if kind == "counter" else name
        help_text = documentation.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {shown} {help_text}")
        lines.append(f"# TYPE {shown} {kind}")
        lines.extend(samples)
    return ("\n".join(lines) + "\n").encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
