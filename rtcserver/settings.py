"""Settings: the one place every default lives.

The command line (`--help`), the `RTCSERVER_*` environment variables, the README and
the docs all quote the fields below; none of them restates a default. Each field's
metadata carries its help text, so adding an option is one edit here. Layer 1: a
frozen value that every layer may read; it imports nothing else of rtcserver (reading
it from flags and the environment is `config.py`'s job, at the top).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs


def bundled_pages() -> Path:
    """The directory of the pages that come with rtcserver.

    Installed from a wheel they are package data, `rtcserver/www`. In a checkout
    (an editable install, `tools/serve.sh`) they are `www/` beside the package, where
    the wheel takes them from.
    """
    packaged = importlib.resources.files("rtcserver") / "www"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "www"


def _opt(default: Any, help: str, *, metavar: str | None = None) -> Any:
    return attrs.field(default=default, metadata={"help": help, "metavar": metavar})


def _tuple_opt(default: tuple[str, ...], help: str) -> Any:
    return attrs.field(
        default=default,
        converter=to_tuple,
        metadata={"help": help, "metavar": "A,B,..."},
    )


def to_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


@attrs.frozen
class Settings:
    """Every tunable of the server, with its default. Frozen: built once at start-up."""

    host: str = _opt("0.0.0.0", "address to listen on")
    port: int = _opt(30000, "TCP port for HTTP and WebSocket (0 picks a free port)")
    www: Path = attrs.field(
        default=bundled_pages(),
        converter=Path,
        metadata={
            "help": "directory of the web pages served at / (the default is the pages that "
            "come with rtcserver)",
            "metavar": "DIR",
        },
    )
    csp: str = _opt(
        "",
        "Content-Security-Policy header for pages served from a --www DIR of your own "
        "(default: none, so pages written with inline scripts and styles, such as the "
        "book's and the tutorials', run); rtcserver's own pages always get the strict one",
        metavar="POLICY",
    )
    log_level: str = _opt("info", "debug, info, warning or error")
    max_message_size: int = _opt(
        64 * 1024, "largest WebSocket message accepted, in bytes of UTF-8 (larger: close 1009)"
    )
    # Bytes, not messages, as Redis and NATS bound client buffers. Measured and argued in
    # docs/PROTOCOL.md ("Limits"): a 2 MB burst to a phone on a slow link stays under the
    # soft limit; hard = 4 x soft, as Redis's 32 MB / 8 MB; the budget bounds the sum.
    mailbox_soft_limit: int = _opt(
        4 * 1024 * 1024,
        "bytes waiting for one client (queued + being written) that it may hold for at most "
        "mailbox_soft_seconds before it is closed as a slow consumer (close 4000)",
    )
    mailbox_soft_seconds: float = _opt(
        30.0, "seconds a client may stay over mailbox_soft_limit (grace for a slow link)"
    )
    mailbox_hard_limit: int = _opt(
        16 * 1024 * 1024,
        "bytes waiting for one client over which it is closed at once (close 4000)",
    )
    queue_budget: int = _opt(
        256 * 1024 * 1024,
        "bytes waiting for all clients together; over it the client holding the most is "
        "closed (close 4000), then the next, so memory stays bounded whatever the number "
        "of clients that stop reading",
    )
    keepalive_interval: float = _opt(
        20.0, "seconds of silence towards a client before the server pings it"
    )
    keepalive_timeout: float = _opt(
        20.0,
        "seconds a ping may wait for its pong, and a write for progress, before the "
        "client is dropped (close 4001 / 4000)",
    )
    resume_grace: float = _opt(
        30.0,
        "seconds a session keeps its room, name and mail after its socket is lost "
        "(without a close frame), waiting for a RESUME",
    )
    reload_grace: float = _opt(
        5.0,
        "seconds a session that closed with 1001 (a page reload, and a closed tab alike) "
        "keeps its place for its RESUME (at most resume_grace); a lost socket keeps the "
        "full resume_grace, so a newcomer waits for a closed tab only this long",
    )
    resume_replay_bytes: int = _opt(
        65536,
        "bytes of the last messages written to a resumable client that the server keeps, "
        "to send again on RESUME what the lost socket may not have delivered",
    )
    handshake_timeout: float = _opt(
        10.0, "seconds a client has to send its HTTP request head and finish the upgrade"
    )
    max_connections: int = _opt(
        10000,
        "open TCP connections at most; the excess gets HTTP 503 (lowered at start when the "
        "open-files limit cannot hold it)",
    )
    max_connections_per_address: int = _opt(
        8000,
        "open connections from one client address (with --trust-proxy, the X-Forwarded-For "
        "address); the excess gets HTTP 503. Below max_connections, so one address cannot "
        "take every place; far above what an office behind one NAT opens",
    )
    max_handshakes_per_address: int = _opt(
        256,
        "slow request heads from one peer address: connections still sending their head "
        "slow_head_grace seconds after their accept; a head that turns slow past this gets "
        "HTTP 503 then, while heads that complete promptly are never counted (not applied "
        "with --trust-proxy: the proxy reads heads)",
    )
    slow_head_grace: float = _opt(
        1.0,
        "seconds a request head may take before it counts against "
        "max_handshakes_per_address (a head sent at once arrives in one round trip); "
        "longer while its bytes wait for a busy server",
    )
    silent_head_grace: float = _opt(
        5.0,
        "seconds a connection that has sent nothing yet may wait before it counts against "
        "max_handshakes_per_address (a client busy opening many sockets sends each head "
        "late, but whole)",
    )
    gc_freeze: bool = _opt(
        True,
        "after start-up, move every object that exists into the garbage collector's "
        "permanent generation (gc.freeze): full collections no longer scan the modules, "
        "so their pauses are shorter (python -m rtcserver only)",
    )
    gc_thresholds: tuple[str, ...] = _tuple_opt(
        (),
        "the garbage collector's thresholds (gc.set_threshold: 1 to 3 counts, e.g. "
        "50000,20,20); empty: Python's own (python -m rtcserver only)",
    )
    rate_limit: float = _opt(
        500.0,
        "messages per second one connection may send on average; faster senders are "
        "throttled (read more slowly), never dropped or closed (0: no limit)",
    )
    rate_burst: int = _opt(2000, "messages one connection may send in a burst at full speed")
    room_capacity: int = _opt(
        2, "members of a room whose creator asks for no capacity (the book's rooms hold two)"
    )
    max_room_capacity: int = _opt(
        8, 'the largest capacity a room\'s creator may ask for (GETROOM "capacity")'
    )
    workers: str = _opt(
        "auto",
        "worker processes that share the port and act as one server (docs/ARCHITECTURE.md, "
        '"Workers"); "auto": one per CPU this process may use',
        metavar="N|auto",
    )
    worker_restart_period: float = _opt(
        10.0,
        "with --workers: more than 5 worker deaths within this many seconds stop the server "
        "(exit status 1) rather than restart them again",
    )
    drain_timeout: float = _opt(
        5.0, "seconds a shutdown waits for connections to close before it cuts them"
    )
    trust_proxy: bool = _opt(
        False, "log the client address from X-Forwarded-For (only behind your own proxy)"
    )
    stun: tuple[str, ...] = _tuple_opt(
        ("stun:stun.l.google.com:19302",),
        "STUN URLs handed to browsers (empty string for none)",
    )

    ring_timeout: float = _opt(30.0, "seconds an unanswered call rings before NOANSWER")
    directory: bool = _opt(
        True, "push the list of logged-in users and their presence to every user"
    )
    presence_interval: float = _opt(
        0.05,
        "at least this many seconds between two directory updates: the changes in between "
        "go out together, one frame per user",
    )
    presence_rate: float = _opt(
        25000.0,
        "directory frames per second for all users together: with many users, updates "
        "come less often than presence_interval (users / presence_rate seconds apart)",
    )
    turn: tuple[str, ...] = _tuple_opt(
        (), "TURN URLs handed to browsers, e.g. turn:turn.example.org:3478?transport=udp"
    )
    turn_secret: str = _opt(
        "", "shared secret of the TURN server (coturn use-auth-secret); never sent to clients"
    )
    turn_ttl: int = _opt(86400, "seconds a client's ephemeral TURN credentials stay valid")
    relay_only: bool = _opt(
        False, "tell browsers to use only TURN relays (iceTransportPolicy relay), to test TURN"
    )
    tls_cert: str = _opt("", "PEM certificate chain: serve HTTPS and WSS on the same port")
    tls_key: str = _opt("", "PEM private key for --tls-cert")
    auth_secret: str = _opt(
        "",
        "token mode: WebSockets must present an HS256 token signed with this secret "
        "(at least 32 bytes), as ?token= or a first AUTH message",
    )
    users_file: str = _opt(
        "",
        "password mode: a users file of scrypt hashes (tools/users.py); clients send "
        "AUTH with name and password first",
    )
    allowed_origins: tuple[str, ...] = _tuple_opt(
        (),
        "browser origins allowed besides the server's own (e.g. https://app.example.org); "
        "others get 403",
    )
    allowed_hosts: tuple[str, ...] = _tuple_opt(
        (),
        "Host names served besides IP addresses, localhost, this machine's names, the TLS "
        "certificate's names and --allowed-origins' hosts (*.example.org for subdomains, * "
        "for any); other names get 421 (DNS rebinding). With --trust-proxy and none given: any",
    )
    require_origin: bool = _opt(
        False, "refuse WebSocket clients that send no Origin header (tools, native apps)"
    )
    metrics_token: str = _opt(
        "", "when set, /metrics answers only requests with `Authorization: Bearer <token>`"
    )
    admin_token: str = _opt(
        "",
        "when set, the admin REST API answers under /api/v1/ to `Authorization: Bearer "
        "<token>` (docs/API.md); unset: every /api/ path is 404",
    )
    webhook_url: tuple[str, ...] = attrs.field(
        default=(),
        converter=to_tuple,
        metadata={
            "help": "POST the server's events (rooms, members, users, sessions, calls) to "
            "this URL, signed per Standard Webhooks (docs/API.md); repeat the flag for more "
            "receivers (the variable takes A,B,...)",
            "metavar": "URL",
            "repeatable": True,
        },
    )
    webhook_secret: str = _opt(
        "",
        "the webhooks' signing secret, whsec_<base64 of 24-64 random bytes> (needed with "
        "--webhook-url)",
    )
    webhook_retry_for: float = _opt(
        3600.0,
        "seconds an event is retried (exponential backoff) while its receiver fails; "
        "then it is dropped and counted",
    )
    webhook_queue_bytes: int = _opt(
        1024 * 1024,
        "bytes of events waiting for one receiver; past it new events are dropped, counted "
        "(/metrics) and logged",
    )
    webhook_timeout: float = _opt(10.0, "seconds one webhook POST may take before it is retried")
    redis: str = _opt(
        "",
        "cluster mode: a Redis URL (redis://host:port/db); every node given the same Redis "
        "acts as one server (rooms, relay and PEERLEFT cross nodes); empty: one node",
        metavar="URL",
    )
    lease_ttl: float = _opt(
        3.0,
        "cluster mode: seconds a node's lease on Redis lives unrenewed; the members of a "
        "node that died are removed (their peers get PEERLEFT) within about 4/3 of it",
    )
    redis_timeout: float = _opt(
        1.0, "cluster mode: seconds one Redis operation may take before it counts as failed"
    )
    bus_queue_size: int = _opt(
        10000,
        "cluster mode: messages for one other node waiting to be sent (or acknowledged); "
        "beyond it a cross-node message gets ERROR cluster-unavailable",
    )
    cluster_link_host: str = _opt(
        "",
        "cluster mode: address this node's link listener binds and announces in Redis, "
        "for the frames other nodes relay to it (empty: --host; a wildcard --host "
        "announces this machine's address towards Redis)",
        metavar="HOST",
    )
    cluster_link_port: int = _opt(
        0,
        "cluster mode: TCP port of this node's link listener (0 picks a free one; set it "
        "when a firewall stands between the nodes); with --workers N, worker i listens on "
        "this port + i",
    )
    cluster_link_queue_bytes: int = _opt(
        4 * 1024 * 1024,
        "cluster mode: bytes waiting for one other node (queued + sent, not yet "
        "acknowledged); beyond it a cross-node message gets ERROR cluster-unavailable. "
        "Also the largest frame a node accepts on its links: the same on every node",
    )

    @property
    def auth_mode(self) -> str | None:
        if self.auth_secret:
            return "token"
        if self.users_file:
            return "password"
        return None

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def own_pages(self) -> bool:
        """Whether the pages served are rtcserver's own (no --www, or --www naming them)."""
        return self.www.resolve() == bundled_pages().resolve()

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in attrs.fields(cls)]
