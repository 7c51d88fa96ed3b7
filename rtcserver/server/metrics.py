"""`/metrics`: the node's numbers in Prometheus text format (prometheus_client).

Nothing on the relay's hot path feeds a Prometheus object. The server already keeps
plain counters (`ServerState.counters`, a `collections.Counter`), the registry keeps its
sizes, and the supervisor its children; a collector reads them when `/metrics` is
scraped. Only the few timings that need distributions (cross-node relay latency,
Redis round trips) are real histograms, observed off the hot path by the cluster's
own tasks. Each server has its own `CollectorRegistry`, so several servers in one
process (the tests) never share figures.
"""

from __future__ import annotations

import collections
import gc
from collections.abc import Iterator, Sized
from typing import Any, Final, Protocol

import attrs
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..actors.backlog import Budget
from ..rooms.registry import Registry
from ..security.auth import Gatekeeper
from ..security.limits import SlowHeads

# The classic text format (what `generate_latest` writes), which every scraper reads.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
# Loopback round trips are tens of microseconds; a distant Redis, milliseconds.
LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class ObservedBus(Protocol):
    @property
    def backlog(self) -> int: ...


class ObservedCluster(Protocol):
    @property
    def available(self) -> bool: ...

    @property
    def bus(self) -> ObservedBus: ...


class Observed(Protocol):
    """What a scrape reads of the server (`server.state.ServerState`, which holds these
    metrics: a protocol here keeps the two modules from importing each other)."""

    @property
    def actors(self) -> Sized: ...

    @property
    def connections(self) -> int: ...

    @property
    def counters(self) -> collections.Counter[str]: ...

    @property
    def registry(self) -> Registry[Any]: ...

    @property
    def budget(self) -> Budget: ...

    @property
    def throttled_seconds(self) -> float: ...

    @property
    def gatekeeper(self) -> Gatekeeper: ...

    @property
    def slow_heads(self) -> SlowHeads: ...

    @property
    def cluster(self) -> ObservedCluster | None: ...


@attrs.define(eq=False)
class ServerMetrics:
    """One server's Prometheus registry and the histograms its cluster tasks observe."""

    registry: CollectorRegistry
    relay_latency: Histogram
    redis_roundtrip: Histogram

    @classmethod
    def create(cls) -> ServerMetrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            relay_latency=Histogram(
                "rtcserver_relay_latency_seconds",
                "cross-node relay: from the sender's tell to Redis accepting the PUBLISH "
                "(queueing included); local relay is a synchronous mailbox put",
                registry=registry,
                buckets=LATENCY_BUCKETS,
            ),
            redis_roundtrip=Histogram(
                "rtcserver_redis_roundtrip_seconds",
                "one Redis operation (script, publish batch, lease renewal), by operation",
                ["op"],
                registry=registry,
                buckets=LATENCY_BUCKETS,
            ),
        )

    def attach(self, state: Observed) -> None:
        self.registry.register(_StateCollector(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    """Reads the server's plain counters and sizes at scrape time."""

    def __init__(self, state: Observed) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # unchecked: families are built from what exists at scrape time

    def collect(self) -> Iterator[Metric]:
        state = self.state
        counters = state.counters
        stats = state.registry.statistics()
        yield _gauge("rtcserver_connections", "open WebSocket connections", len(state.actors))
        yield _gauge(
            "rtcserver_tcp_connections",
            "open TCP connections (HTTP and WebSocket)",
            state.connections,
        )
        heads = state.slow_heads
        pending = GaugeMetricFamily(
            "rtcserver_pending_heads",
            "connections sending their request head, by state (young: within "
            "slow_head_grace, or waiting for a busy server; silent: nothing sent yet, within "
            "silent_head_grace; slow: past them, counted against their address)",
            labels=["state"],
        )
        pending.add_metric(["young"], heads.young)
        pending.add_metric(["silent"], heads.silent)
        pending.add_metric(["slow"], heads.slow.total())
        yield pending
        yield _gauge(
            "rtcserver_gc_frozen_objects",
            "objects in the garbage collector's permanent generation (--gc-freeze)",
            gc.get_freeze_count(),
        )
        thresholds = GaugeMetricFamily(
            "rtcserver_gc_threshold",
            "the garbage collector's thresholds, by generation (--gc-thresholds)",
            labels=["generation"],
        )
        for generation, threshold in enumerate(gc.get_threshold()):
            thresholds.add_metric([str(generation)], threshold)
        yield thresholds
        yield _gauge(
            "rtcserver_rooms",
            "rooms with a member on this node (in cluster mode: seen from here)",
            stats.rooms,
        )
        yield _gauge("rtcserver_room_members", "room memberships this node knows of", stats.members)
        yield _gauge("rtcserver_logged_in_users", "names held by LOGIN on this node", stats.names)
        remote = counters["cluster:relayed"]
        relayed = CounterMetricFamily(
            "rtcserver_messages_relayed",
            "messages relayed to a room's other members, by path (local: same node, "
            "in memory; remote: over Redis to another node)",
            labels=["path"],
        )
        relayed.add_metric(["local"], counters["relayed"] - remote)
        relayed.add_metric(["remote"], remote)
        yield relayed
        yield _counter_family(
            counters, "error:", "rtcserver_errors", "ERROR replies sent, by code", "code"
        )
        yield _counter_family(
            counters, "refused:", "rtcserver_refused", "connections refused, by reason", "reason"
        )
        yield _counter(
            "rtcserver_mailbox_overflows",
            "slow consumers disconnected (close 4000): over a byte limit or the server's "
            "budget, or a write that made no progress for keepalive_timeout",
            counters["mailbox-overflow"],
        )
        yield _gauge(
            "rtcserver_queued_bytes",
            "bytes waiting to be written to clients, all connections together",
            state.budget.total,
        )
        yield _gauge(
            "rtcserver_queued_bytes_largest",
            "bytes waiting for the connection that holds the most",
            state.budget.largest(),
        )
        yield _gauge(
            "rtcserver_queue_budget_bytes",
            "queue_budget: the server-wide limit",
            state.budget.limit,
        )
        yield _counter(
            "rtcserver_throttled_seconds",
            "seconds connections' readers waited for the rate limit (summed)",
            state.throttled_seconds,
        )
        yield _counter_family(
            counters,
            "close:",
            "rtcserver_closes",
            "WebSocket connections ended, by cause (client, lost, hard-limit, soft-limit, "
            "budget, write-timeout, write-stuck, keepalive-timeout, going-away, ...)",
            "cause",
        )
        yield _counter("rtcserver_crashes", "connection actors that crashed", counters["crashes"])
        yield _counter_family(
            counters,
            "webhook:",
            "rtcserver_webhook_events",
            "webhook events queued, delivered, dropped (queue full), expired; failed attempts",
            "outcome",
        )
        yield _counter(
            "rtcserver_password_checks",
            "passwords hashed and checked (password mode)",
            state.gatekeeper.hashed,
        )
        yield _counter(
            "rtcserver_password_checks_skipped",
            "password checks skipped because the client had left while it waited",
            state.gatekeeper.abandoned,
        )
        cluster = state.cluster
        if cluster is None:
            return
        yield _gauge(
            "rtcserver_cluster_up",
            "1 while this node holds its lease on Redis (cross-node operations work)",
            1 if cluster.available else 0,
        )
        yield _gauge(
            "rtcserver_cluster_bus_queue",
            "messages waiting to be published to other nodes",
            cluster.bus.backlog,
        )
        yield _counter(
            "rtcserver_redis_reconnects",
            "times this node got Redis back after losing it",
            counters["cluster:reconnects"],
        )
        yield _counter(
            "rtcserver_redis_failures",
            "Redis operations that failed (unreachable, timed out, refused)",
            counters["cluster:redis-failures"],
        )
        yield _counter(
            "rtcserver_cluster_lease_losses",
            "times this node lost its lease and cut its cross-node rooms (PEERLEFT)",
            counters["cluster:lease-lost"],
        )
        yield _counter(
            "rtcserver_cluster_reaped_members",
            "members of dead nodes this node removed from rooms",
            counters["cluster:reaped"],
        )
        yield _counter_family(
            counters,
            "cluster:undelivered:",
            "rtcserver_cluster_undelivered",
            "cross-node messages not delivered (their sender got an ERROR), by reason",
            "reason",
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _counter_family(
    counters: dict[str, int], prefix: str, name: str, documentation: str, label: str
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(counters.items()):
        if key.startswith(prefix):
            family.add_metric([key[len(prefix) :]], value)
    return family
