"""tools/devcert.py: the certificates it writes really work for TLS.

Each test runs the tool as a subprocess into tmp_path, then does a TLS handshake in
memory (ssl.MemoryBIO, no sockets) between a server using cert.pem/key.pem and a client
that trusts only ca.pem, with Python's strict X.509 checks on.
"""

from __future__ import annotations

import datetime as dt
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

ROOT = Path(__file__).resolve().parents[1]


def devcert(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "devcert.py"), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def handshake(out: Path, server_hostname: str) -> None:
    """Complete a TLS handshake as `server_hostname`, or raise ssl.SSLError."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(out / "cert.pem", out / "key.pem")
    client_ctx = ssl.create_default_context(cafile=str(out / "ca.pem"))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    pending = {client, server}
    for _ in range(10):
        for side in list(pending):
            try:
                side.do_handshake()
                pending.discard(side)
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if not pending:
            return
    raise AssertionError("the TLS handshake did not finish")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_leaf_verifies_against_the_ca_for_the_local_names(tmp_path: Path, host: str) -> None:
    devcert(tmp_path)
    handshake(tmp_path, host)


@pytest.mark.parametrize("host", ["192.168.1.20", "mybox.lan", "fd00::7"])
def test_extra_hosts_from_the_command_line_are_included(tmp_path: Path, host: str) -> None:
    devcert(tmp_path, "192.168.1.20", "mybox.lan", "fd00::7")
    handshake(tmp_path, host)


@pytest.mark.parametrize("host", ["example.org", "192.168.1.21"])
def test_names_not_asked_for_do_not_verify(tmp_path: Path, host: str) -> None:
    devcert(tmp_path, "192.168.1.20")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, host)


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    devcert(tmp_path)
    for name in ("key.pem", "ca-key.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ca-key.pem",
        "ca.pem",
        "cert.pem",
        "key.pem",
    ]


def test_the_ca_is_reused_so_devices_trust_new_certificates(tmp_path: Path) -> None:
    devcert(tmp_path)
    ca_before, leaf_before = (
        (tmp_path / "ca.pem").read_bytes(),
        (tmp_path / "cert.pem").read_bytes(),
    )
    second = devcert(tmp_path, "192.168.1.20")
    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    assert (tmp_path / "cert.pem").read_bytes() != leaf_before
    assert "existing CA was reused" in second.stdout
    handshake(tmp_path, "192.168.1.20")


def test_new_ca_replaces_the_ca(tmp_path: Path) -> None:
    devcert(tmp_path)
    ca_before = (tmp_path / "ca.pem").read_bytes()
    devcert(tmp_path, "--new-ca")
    assert (tmp_path / "ca.pem").read_bytes() != ca_before
    handshake(tmp_path, "localhost")


def test_leaf_lifetime_is_short_enough_for_apple_devices(tmp_path: Path) -> None:
    devcert(tmp_path)
    leaf = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=398)


def test_output_says_how_to_trust_the_ca_and_start_the_server(tmp_path: Path) -> None:
    out = devcert(tmp_path, "192.168.1.20").stdout
    assert str(tmp_path / "ca.pem") in out
    assert f"--tls-cert {tmp_path / 'cert.pem'} --tls-key {tmp_path / 'key.pem'}" in out
    assert "https://192.168.1.20:" in out


def test_help_works() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "devcert.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--out" in result.stdout
