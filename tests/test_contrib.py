"""The deployment files users copy (contrib/): each is checked by the tool that will
read it, systemd or nginx, and the environment file by rtcserver's own settings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import trustme

from rtcserver.config import ENV_PREFIX, load_settings
from rtcserver.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CONTRIB = ROOT / "contrib"
UNIT = CONTRIB / "rtcserver.service"
ENV_FILE = CONTRIB / "rtcserver.env"
NGINX_EXAMPLE = CONTRIB / "nginx-rtcserver.conf"
HARDENING = [
    "DynamicUser=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=\n",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter=@system-service",
]


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze (Debian package systemd) checks contrib/rtcserver.service"
    return found


def unit_for_checking(tmp_path: Path) -> Path:
    # verify wants ExecStart to exist; the environment file is the admin's to write.
    text = UNIT.read_text().replace("/opt/rtcserver/bin/rtcserver", "/bin/true")
    text = text.replace("EnvironmentFile=/", "EnvironmentFile=-/")
    checked = tmp_path / "rtcserver.service"
    checked.write_text(text)
    return checked


def test_the_unit_reads_its_settings_from_an_environment_file_and_is_hardened() -> None:
    unit = UNIT.read_text()
    assert "EnvironmentFile=/etc/rtcserver/rtcserver.env" in unit
    assert "ExecStart=/opt/rtcserver/bin/rtcserver\n" in unit
    for option in HARDENING:
        assert option in unit


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", unit_for_checking(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "rtcserver.service" not in result.stderr, result.stderr


def test_systemd_rates_the_unit_well_hardened(tmp_path: Path) -> None:
    # --threshold is in tenths: exit 1 if the exposure is above 2.0 of 10 ("OK").
    result = subprocess.run(
        [
            systemd_analyze(),
            "security",
            "--offline=yes",
            "--threshold=20",
            unit_for_checking(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:]


def test_every_variable_in_the_environment_file_is_a_setting() -> None:
    text = ENV_FILE.read_text()
    named = re.findall(rf"^#?{ENV_PREFIX}(\w+)=", text, flags=re.MULTILINE)
    assert len(named) >= 5
    assert {name.lower() for name in named} <= set(Settings.field_names())
    active = dict(re.findall(rf"^({ENV_PREFIX}\w+)=(.*)$", text, flags=re.MULTILINE))
    settings = load_settings([], environ=active)
    assert (settings.host, settings.port, settings.trust_proxy) == ("127.0.0.1", 30000, True)


def test_nginx_accepts_the_example(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    certificate = trustme.CA().issue_cert("call.example.org")
    chain, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    certificate.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in certificate.cert_chain_pems))
    site = NGINX_EXAMPLE.read_text()
    site = site.replace("/etc/letsencrypt/live/call.example.org/fullchain.pem", str(chain))
    site = site.replace("/etc/letsencrypt/live/call.example.org/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events { worker_connections 16; }\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/body; "
        f"proxy_temp_path {tmp_path}/proxy; include {tmp_path}/site.conf; }}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_readme_links_the_deployment_files() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in (UNIT, ENV_FILE, NGINX_EXAMPLE):
        assert f"({path.relative_to(ROOT)})" in readme
