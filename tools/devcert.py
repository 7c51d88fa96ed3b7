"""Make a local development CA and a TLS certificate for rtcserver signed by it.

    python tools/devcert.py                      # localhost, 127.0.0.1, ::1
    python tools/devcert.py 192.168.1.20 mybox.lan  # plus names a phone on the LAN uses

Browsers only give camera and microphone to secure origins: http://localhost works,
http://192.168.1.20 does not. Trust the CA once on each device, then any certificate
this tool makes later (for new addresses) is trusted too. The CA is kept and reused
unless --new-ca is given; its key never needs to leave this machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError as missing:  # one line that says what to install, not a traceback
    print(
        f"devcert.py needs cryptography ({missing.msg}): pip install 'rtcserver[dev]' "
        "(or tools/setup-venv.sh dev)",
        file=sys.stderr,
    )
    sys.exit(2)

ALWAYS = ["localhost", "127.0.0.1", "::1"]
# Apple platforms refuse TLS server certificates valid for more than 825 days, and
# Safari those over 398 days; 397 days keeps every browser content.
LEAF_DAYS = 397
CA_DAYS = 3650
CA_CERT, CA_KEY, CERT, KEY = "ca.pem", "ca-key.pem", "cert.pem", "key.pem"


def default_dir() -> Path:
    # Outside the checkout, so a CA key is never committed by accident.
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "rtcserver" / "devcert"


SubjectName = x509.DNSName | x509.IPAddress


def subject_names(hosts: list[str]) -> list[SubjectName]:
    """SAN entries for `hosts`, in order, without duplicates; IPs become IP entries
    (browsers do not match an IP against a DNS name)."""
    names: list[SubjectName] = []
    for host in dict.fromkeys([*ALWAYS, *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            try:
                names.append(x509.DNSName(host.encode("idna").decode("ascii")))
            except UnicodeError:
                raise SystemExit(f"not a host name or IP address: {host!r}") from None
    return names


def new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by every browser and phone, and fast to make.
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rtcserver development"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"rtcserver dev CA {now:%Y-%m-%d %H:%M}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[SubjectName],
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtcserver dev")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write(path: Path, data: bytes, private: bool) -> None:
    """Write `data` to `path` (a key readable by its owner only), replacing it whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_ca(out: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not (out / CA_CERT).exists() or not (out / CA_KEY).exists():
        return None
    cert = x509.load_pem_x509_certificate((out / CA_CERT).read_bytes())
    key = serialization.load_pem_private_key((out / CA_KEY).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"{out / CA_KEY} is not an EC key made by this tool; use --new-ca")
    return cert, key


def instructions(out: Path, names: list[SubjectName], new_ca: bool) -> str:
    ca, cert, key = out / CA_CERT, out / CERT, out / KEY
    lan = [str(n.value) for n in names if str(n.value) not in ALWAYS]
    example = lan[0] if lan else "localhost"
    host = "0.0.0.0" if lan else "127.0.0.1"
    url_host = f"[{example}]" if ":" in example else example
    trust = (
        "A new CA was made: trust it once on each device that will open the page."
        if new_ca
        else "The existing CA was reused: devices that trust it need nothing new."
    )
    return f"""\
Wrote {cert} and {key} for: {", ".join(str(n.value) for n in names)}
CA certificate: {ca} (its key {out / CA_KEY} stays here, never copy it)

{trust}
  Debian/Ubuntu:
    sudo cp {ca} /usr/local/share/ca-certificates/rtcserver-dev-ca.crt
    sudo update-ca-certificates
  macOS:
    security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db \\
      {ca}
  Windows:        certutil -user -addstore Root {ca}
  Firefox:        Settings > Privacy & Security > Certificates > View Certificates >
                  Authorities > Import (it keeps its own list)
  Chrome/Chromium on Linux: Settings > Privacy and security > Security >
                  Manage certificates > Authorities > Import
  Android:        copy ca.pem to the phone; Settings > Security > Encryption & credentials >
                  Install a certificate > CA certificate
  iOS/iPadOS:     send ca.pem to the device (AirDrop, mail), install the profile in
                  Settings > General > VPN & Device Management, then turn it on in
                  Settings > General > About > Certificate Trust Settings

Start the server with TLS:
  python -m rtcserver --host {host} --tls-cert {cert} --tls-key {key}
and open https://{url_host}:<port>/
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="localhost, 127.0.0.1 and ::1 are always included.",
    )
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="extra host names or IP addresses")
    parser.add_argument(
        "--out",
        type=Path,
        default=default_dir(),
        help="directory for the PEM files (default: %(default)s)",
    )
    parser.add_argument("--new-ca", action="store_true", help="replace the CA even if one exists")
    args = parser.parse_args(argv)
    out: Path = args.out
    names = subject_names(args.hosts)
    now = dt.datetime.now(dt.UTC)
    out.mkdir(parents=True, exist_ok=True)
    existing = None if args.new_ca else load_ca(out)
    if existing is None:
        ca_cert, ca_key = make_ca(now)
        write(out / CA_KEY, key_pem(ca_key), private=True)
        write(out / CA_CERT, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    else:
        ca_cert, ca_key = existing
    cert, key = make_leaf(ca_cert, ca_key, names, now)
    write(out / KEY, key_pem(key), private=True)
    write(out / CERT, cert.public_bytes(serialization.Encoding.PEM), private=False)
    print(instructions(out, names, new_ca=existing is None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
