"""Outbound webhooks reach only the public internet (SSRF guard), checked when they are sent.

A check of the URL text when an endpoint is saved cannot hold: ``https://2130706433/``,
``https://0x7f000001/``, ``https://127.1/`` and ``https://0/`` all spell a loopback address, and
a DNS name may resolve to an internal address later (DNS rebinding). So at delivery time the host
is resolved, *every* resolved address must be globally routable (not loopback, private, shared
``100.64/10``, link-local such as the ``169.254.169.254`` metadata service, reserved, multicast,
nor an IPv6 form embedding one of those), and the request connects to the address that was
checked — the host name still goes in ``Host`` and in TLS SNI, so the certificate is verified
against it. Hosts named in ``VOUCH_WEBHOOK_ALLOW_PRIVATE_HOSTS`` (development receivers) are
exempt, by name only. The outcome reported on the delivery is neutral ("delivery failed"): it
never tells a refused address from an unreachable one, so it cannot be used as a port scanner.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

logger = logging.getLogger("vouch.webhooks")

NEUTRAL_FAILURE = "delivery failed"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class EgressRefused(Exception):
    """The destination may not be contacted; the message is for the server log only."""


def is_public(address: Address) -> bool:
    """Globally routable unicast, including what an IPv6 address embeds (mapped, 6to4,
    Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(not is_public(e) for e in embedded):
            return False
    return address.is_global and not address.is_multicast


def normal_host(host: str) -> str:
    """A host name as compared with the allow-list: lower case, no trailing dot."""
    return host.strip("[]").rstrip(".").lower()


def is_local_name(host: str) -> bool:
    name = normal_host(host)
    return name in ("localhost", "localhost.localdomain") or name.endswith(
        (".localhost", ".local", ".internal")
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives (numeric spellings included, as connect()
    would read them)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Which destinations webhooks may reach; ``allowed_private_hosts`` by exact name."""

    allowed_private_hosts: frozenset[str] = frozenset()
    resolver: Resolver = system_resolver

    @classmethod
    def allowing(cls, hosts: Iterable[str], resolver: Resolver = system_resolver) -> EgressPolicy:
        return cls(frozenset(normal_host(h) for h in hosts if h.strip()), resolver)

    def allows_private(self, host: str) -> bool:
        return normal_host(host) in self.allowed_private_hosts

    def check_literal(self, host: str) -> None:
        """Refuse, without DNS, a host that is a local name or spells a non-public address
        (for a clear error when an endpoint is saved; delivery checks again after DNS)."""
        if self.allows_private(host):
            return
        if is_local_name(host):
            raise EgressRefused(f"{host} is a local name")
        try:
            packed = socket.inet_aton(host)  # 2130706433, 0x7f000001, 127.1, 0 …
            address: Address = ipaddress.IPv4Address(packed)
        except OSError:
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                return  # a DNS name: resolved when delivering
        if not is_public(address):
            raise EgressRefused(f"{host} is not a public address")

    async def resolve(self, host: str, port: int) -> str:
        """The address to connect to: every resolved address must be public."""
        try:
            addresses = await self.resolver(host, port)
        except OSError as exc:
            raise EgressRefused(f"{host} does not resolve ({type(exc).__name__})") from exc
        if not addresses:
            raise EgressRefused(f"{host} does not resolve")
        parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        if not self.allows_private(host):
            if is_local_name(host):
                raise EgressRefused(f"{host} is a local name")
            refused = [str(a) for a in parsed if not is_public(a)]
            if refused:
                raise EgressRefused(f"{host} resolves to a non-public address")
        return str(parsed[0])


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    """A request to the checked address, carrying the original host for Host and SNI."""

    url: str
    host_header: str
    sni_hostname: str | None


async def pin(url: str, policy: EgressPolicy) -> PinnedRequest:
    """Resolve and check ``url``'s host; the URL rewritten to connect to the checked address."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise EgressRefused("not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await policy.resolve(host, port)
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return PinnedRequest(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=host_header,
        sni_hostname=host if parts.scheme == "https" else None,
    )
