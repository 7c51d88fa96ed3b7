"""Settings: the one place every default lives.

The command line (`--help`), the `RTCSERVER_*` environment variables, the README and
the docs all quote the fields below; none of them restates a default. Each field's
metadata carries its help text, so adding an option is one edit here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from . import __version__
from .static import bundled_pages

ENV_PREFIX = "RTCSERVER_"


def _opt(default: Any, help: str, *, metavar: str | None = None) -> Any:
    return attrs.field(default=default, metadata={"help": help, "metavar": metavar})


def _tuple_opt(default: tuple[str, ...], help: str) -> Any:
    return attrs.field(
        default=default,
        converter=_to_tuple,
        metadata={"help": help, "metavar": "A,B,..."},
    )


def _to_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
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
        "(or closed with 1001 by a client that asked for its session), waiting for a RESUME",
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
        "connections from one peer address still sending their request head; the excess is "
        "refused at once with HTTP 503 (not applied with --trust-proxy: the proxy reads heads)",
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
        "cluster mode: messages for other nodes waiting to be published; beyond it a "
        "cross-node message gets ERROR cluster-unavailable",
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

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in attrs.fields(cls)]


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _field_type(field: attrs.Attribute[Any]) -> type:
    default = field.default
    if isinstance(default, bool):
        return bool
    if isinstance(default, Path):
        return Path
    return type(default)


def _coerce(field: attrs.Attribute[Any], text: str) -> Any:
    kind = _field_type(field)
    if kind is bool:
        return _parse_bool(text)
    if kind is tuple:
        return _to_tuple(text)
    return kind(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rtcserver",
        description=(
            "WebRTC signaling server (the WebRTC Blueprints room protocol) with its "
            "video-call page. Every option can also be set as an environment variable "
            f"{ENV_PREFIX}<OPTION> (for example {ENV_PREFIX}PORT=8080); flags win."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rtcserver {__version__}")
    for field in attrs.fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        env = ENV_PREFIX + field.name.upper()
        help_text = f"{field.metadata['help']} [env {env}]"
        kind = _field_type(field)
        default = field.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        if kind is bool:
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"{help_text} (default: {shown})",
            )
        else:
            parser.add_argument(
                flag,
                dest=field.name,
                default=argparse.SUPPRESS,
                metavar=field.metadata.get("metavar") or field.name.upper(),
                help=f"{help_text} (default: {shown})",
            )
    return parser


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, overridden by RTCSERVER_* variables, overridden by flags."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    parsed = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    for field in attrs.fields(Settings):
        env = ENV_PREFIX + field.name.upper()
        raw: Any
        if field.name in parsed:
            raw = parsed[field.name]
        elif env in environ:
            raw = environ[env]
        else:
            continue
        try:
            values[field.name] = _coerce(field, raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            parser.error(f"{field.name}: {exc}")
    settings = Settings(**values)
    problem = validate(settings)
    if problem:
        parser.error(problem)
    return settings


def validate(settings: Settings) -> str | None:
    """Say what is wrong with a combination of settings, or None when it is fine."""
    if not 0 <= settings.port <= 65535:
        return "port must be between 0 and 65535"
    for name in (
        "max_message_size",
        "mailbox_soft_limit",
        "mailbox_hard_limit",
        "queue_budget",
        "max_connections",
        "max_connections_per_address",
        "max_handshakes_per_address",
        "room_capacity",
        "bus_queue_size",
        "resume_replay_bytes",
    ):
        if getattr(settings, name) < 1:
            return f"{name} must be at least 1"
    if settings.room_capacity < 2:
        return "room_capacity must be at least 2"
    if settings.max_room_capacity < settings.room_capacity:
        return "max_room_capacity must be at least room_capacity"
    for name in (
        "keepalive_interval",
        "keepalive_timeout",
        "handshake_timeout",
        "drain_timeout",
        "ring_timeout",
        "redis_timeout",
        "presence_rate",
        "resume_grace",
    ):
        if getattr(settings, name) <= 0:
            return f"{name} must be positive"
    if settings.presence_interval < 0:
        return "presence_interval must be >= 0"
    if settings.lease_ttl < 0.3:
        return "lease_ttl must be at least 0.3 seconds"
    if settings.redis and not settings.redis.startswith(("redis://", "rediss://", "unix://")):
        return f"redis: {settings.redis!r} is not a redis://, rediss:// or unix:// URL"
    if settings.rate_limit < 0 or settings.rate_burst < 1:
        return "rate_limit must be >= 0 and rate_burst >= 1"
    if settings.mailbox_soft_limit > settings.mailbox_hard_limit:
        return "mailbox_soft_limit must not exceed mailbox_hard_limit"
    if settings.mailbox_hard_limit < settings.max_message_size:
        # A single message that may be relayed must fit a receiver's mailbox.
        return "mailbox_hard_limit must be at least max_message_size"
    if settings.queue_budget < settings.mailbox_hard_limit:
        return "queue_budget must be at least mailbox_hard_limit"
    if settings.mailbox_soft_seconds <= 0:
        return "mailbox_soft_seconds must be positive"
    if settings.log_level.lower() not in {"debug", "info", "warning", "error"}:
        return "log_level must be debug, info, warning or error"
    if not settings.www.is_dir():
        return f"www: no such directory: {settings.www}"
    if bool(settings.tls_cert) != bool(settings.tls_key):
        return "tls_cert and tls_key go together"
    for name in ("tls_cert", "tls_key", "users_file"):
        value = getattr(settings, name)
        if value and not Path(value).is_file():
            return f"{name}: no such file: {value}"
    if settings.auth_secret and settings.users_file:
        return "choose one of auth_secret (token mode) and users_file (password mode)"
    if settings.auth_secret and len(settings.auth_secret.encode()) < 32:
        return "auth_secret must be at least 32 bytes"
    if settings.turn and not settings.turn_secret:
        return "turn needs turn_secret (the TURN server's use-auth-secret)"
    if settings.turn_ttl < 60:
        return "turn_ttl must be at least 60 seconds"
    try:
        from .turn import ice_servers  # the URL rules live with the credential maths

        ice_servers(settings.stun, settings.turn, settings.turn_secret, settings.turn_ttl, "x", 0)
    except ValueError as exc:
        return f"stun/turn: {exc}"
    for origin in settings.allowed_origins:
        if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
            return f"allowed_origins: {origin!r} is not an origin like https://host[:port]"
    return None


def ice_config(settings: Settings, user_id: str, now: float) -> dict[str, Any]:
    """What a browser passes to `new RTCPeerConnection(...)`: STUN as configured, TURN
    with ephemeral credentials for `user_id` (the secret itself never leaves)."""
    from .turn import ice_servers

    servers = ice_servers(
        settings.stun, settings.turn, settings.turn_secret, settings.turn_ttl, user_id, now
    )
    return {
        "iceServers": [dict(server) for server in servers],
        "iceTransportPolicy": "relay" if settings.relay_only else "all",
    }
