"""Options: one Settings class holds every default; env vars and flags override it."""

from __future__ import annotations

import os
import subprocess
import sys

import attrs
import pytest

from rtcserver.config import load_settings, worker_count
from rtcserver.settings import Settings


def test_defaults_come_from_settings() -> None:
    settings = load_settings([], environ={})
    assert settings == Settings()
    assert settings.port == 30000


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {
        "RTCSERVER_PORT": "4000",
        "RTCSERVER_MAILBOX_SOFT_LIMIT": "900000",
        "RTCSERVER_TRUST_PROXY": "1",
    }
    settings = load_settings([], environ=env)
    assert (settings.port, settings.mailbox_soft_limit, settings.trust_proxy) == (
        4000,
        900000,
        True,
    )
    settings = load_settings(["--port", "5000", "--no-trust-proxy"], environ=env)
    assert (settings.port, settings.mailbox_soft_limit, settings.trust_proxy) == (
        5000,
        900000,
        False,
    )


def test_lists_are_comma_separated_and_empty_means_none() -> None:
    settings = load_settings(["--stun", "stun:a:1, stun:b:2"], environ={})
    assert settings.stun == ("stun:a:1", "stun:b:2")
    assert load_settings(["--stun", ""], environ={}).stun == ()


def test_every_setting_has_a_flag_an_env_var_and_help() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "rtcserver", "--help"], capture_output=True, text=True, check=True
    )
    for field in attrs.fields(Settings):
        assert "--" + field.name.replace("_", "-") in completed.stdout
        assert "RTCSERVER_" + field.name.upper() in completed.stdout
        assert field.metadata["help"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "70000"],
        ["--port", "many"],
        ["--mailbox-hard-limit", "0"],
        ["--room-capacity", "1"],
        ["--keepalive-timeout", "0"],
        ["--log-level", "loud"],
        ["--mailbox-soft-limit", "20000000", "--mailbox-hard-limit", "10000000"],
        ["--queue-budget", "1000", "--mailbox-hard-limit", "100000"],
        ["--slow-head-grace", "0"],
        ["--gc-thresholds", "lots"],
        ["--gc-thresholds", "1,2,3,4"],
        ["--workers", "0"],
        ["--workers", "many"],
        ["--worker-restart-period", "0"],
    ],
)
def test_bad_values_are_refused_with_a_message(argv: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "rtcserver", *argv], capture_output=True, text=True, timeout=30
    )
    assert completed.returncode == 2
    assert "error:" in completed.stderr


def test_workers_auto_is_the_cpus_this_process_may_use_and_tls_is_one_process() -> None:
    assert worker_count(load_settings(["--workers", "auto"], {})) == len(os.sched_getaffinity(0))
    assert worker_count(load_settings([], {"RTCSERVER_WORKERS": "3"})) == 3
    # The default: every core (one process on a machine that gives us one CPU).
    assert worker_count(load_settings([], {})) == len(os.sched_getaffinity(0))
    assert worker_count(load_settings(["--workers", "1"], {})) == 1  # today's one process
    tls = Settings(workers="4", tls_cert="cert.pem", tls_key="key.pem")
    assert worker_count(tls) == 1  # a TLS stream cannot move between processes
