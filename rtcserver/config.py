"""Options from the command line and `RTCSERVER_*` variables, checked, into `Settings`.

The top of the package (with `app.py`): the flags are made from `settings.Settings`'s
fields and their help texts, so adding an option is one edit there. `validate` says
what is wrong with a combination of values, in one line, before anything starts.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from . import __version__
from .security.turn import ice_servers  # the URL rules live with the credential maths
from .security.webhooksig import parse_secret
from .settings import Settings, to_tuple

ENV_PREFIX = "RTCSERVER_"


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
        return to_tuple(text)
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
        if field.metadata.get("repeatable"):
            parser.add_argument(
                flag,
                dest=field.name,
                action="append",
                default=argparse.SUPPRESS,
                metavar=field.metadata.get("metavar") or field.name.upper(),
                help=f"{help_text} (default: none)",
            )
        elif kind is bool:
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
    if not 0 <= settings.cluster_link_port <= 65535:
        return "cluster_link_port must be between 0 and 65535"
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
        "cluster_link_queue_bytes",
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
        "slow_head_grace",
        "silent_head_grace",
        "drain_timeout",
        "ring_timeout",
        "redis_timeout",
        "presence_rate",
        "resume_grace",
    ):
        if getattr(settings, name) <= 0:
            return f"{name} must be positive"
    if len(settings.gc_thresholds) > 3 or not all(
        value.isdigit() for value in settings.gc_thresholds
    ):
        return "gc_thresholds must be 1 to 3 counts >= 0, like 50000,20,20"
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
    if settings.worker_restart_period <= 0:
        return "worker_restart_period must be > 0"
    if worker_count(settings) is None:
        return 'workers must be "auto" or a whole number from 1 to 256'
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
        ice_servers(settings.stun, settings.turn, settings.turn_secret, settings.turn_ttl, "x", 0)
    except ValueError as exc:
        return f"stun/turn: {exc}"
    problem = _webhook_problem(settings)
    if problem:
        return problem
    for origin in settings.allowed_origins:
        if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
            return f"allowed_origins: {origin!r} is not an origin like https://host[:port]"
    return None


def worker_count(settings: Settings) -> int | None:
    """How many worker processes `--workers` asks for (None: not a valid value). With
    TLS terminated in rtcserver a connection cannot move between processes, so one."""
    text = settings.workers.strip().lower()
    if text == "auto":
        count = len(os.sched_getaffinity(0))
    elif text.isdigit() and 1 <= int(text) <= 256:
        count = int(text)
    else:
        return None
    return 1 if settings.tls else count


def _webhook_problem(settings: Settings) -> str | None:
    if not settings.webhook_url:
        return None
    for url in settings.webhook_url:
        if not url.startswith(("http://", "https://")):
            return f"webhook_url: {url!r} is not an http:// or https:// URL"
    if not settings.webhook_secret:
        return "webhook_url needs webhook_secret (whsec_...) to sign the events"
    try:
        parse_secret(settings.webhook_secret)
    except ValueError as exc:
        return f"webhook_secret: {exc}"
    if settings.webhook_retry_for < 0 or settings.webhook_timeout <= 0:
        return "webhook_retry_for must be >= 0 and webhook_timeout positive"
    if settings.webhook_queue_bytes < 1024:
        return "webhook_queue_bytes must be at least 1024"
    return None
