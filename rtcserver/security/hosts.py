"""Which `Host` names this server answers to: the DNS-rebinding defence.

A page on `evil.example` can make its own name resolve to this server's address and
then talk to it as "same origin" (its Origin matches its Host), with the visitor's
network position: read /config.json's TURN credentials, open the signaling socket.
The browser still sends `Host: evil.example`, so a request for a name this server
does not know is refused (421) before anything else.

Allowed by default: IP literals (a rebinding needs a name, so an address cannot be
rebound: a LAN IP just works), single-label names (`myserver`: an attacker's name
lives in public DNS and has a dot), loopback names (`localhost`, `*.localhost`), this
machine's host names (`hostname`, `hostname.local`, its FQDN), the DNS names in the
TLS certificate and the hosts of `--allowed-origins`. `--allowed-hosts` adds names
(`*.example.org` for subdomains, `*` for any). Behind `--trust-proxy` with no
`--allowed-hosts`, every name passes: the proxy's `server_name` decides what reaches
us (a warning says so at start).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..settings import Settings

log = logging.getLogger("rtcserver")


def host_name(host_header: str) -> str:
    """`Host` without its port, lower case, without a trailing dot; `[v6]` unwrapped."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _machine_names() -> set[str]:
    names = set()
    try:
        hostname = socket.gethostname().lower()
        names |= {hostname, f"{hostname}.local", socket.getfqdn().lower()}
    except OSError:
        pass
    return {n.rstrip(".") for n in names if n}


def _certificate_names(path: str) -> set[str]:
    """The DNS names of a PEM certificate's subjectAltName (CN if it has none)."""
    decode: Any = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if not path or decode is None:
        return set()
    try:
        cert = decode(path)
    except (OSError, ssl.SSLError, ValueError):
        return set()
    names = {value.lower() for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}
    if not names:
        for rdn in cert.get("subject", ()):
            names |= {value.lower() for key, value in rdn if key == "commonName"}
    return names


@attrs.frozen
class HostAllowList:
    names: frozenset[str]
    any_host: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> HostAllowList:
        extra = {h.strip().lower().rstrip(".") for h in settings.allowed_hosts if h.strip()}
        if "*" in extra:
            return cls(names=frozenset(), any_host=True)
        if settings.trust_proxy and not extra:
            log.warning(
                "event=any-host reason=trust-proxy-without-allowed-hosts "
                "hint=set-allowed-hosts-to-the-proxy's-server-name"
            )
            return cls(names=frozenset(), any_host=True)
        names = {"localhost"} | extra | _machine_names() | _certificate_names(settings.tls_cert)
        for origin in settings.allowed_origins:
            netloc = urlsplit(origin).netloc
            if netloc:
                names.add(host_name(netloc))
        return cls(names=frozenset(names))

    def allows(self, host_header: str | None) -> bool:
        if self.any_host or host_header is None:
            return True  # no Host (HTTP/1.0 tools): no browser, no rebinding
        host = host_name(host_header)
        if _is_ip(host) or "." not in host or host.endswith(".localhost"):
            return True
        if host in self.names:
            return True
        return any(
            pattern.startswith("*.") and host.endswith(pattern[1:]) for pattern in self.names
        )
