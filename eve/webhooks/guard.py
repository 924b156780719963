"""No webhook reaches a private address: the SSRF guard, checked where the connection is made.

A tenant names the URL, and the worker that posts to it sits inside the platform's network
(the database, health ports, the cloud metadata address). So the host is resolved by the
sender itself and every address it resolves to must be public; the connection then goes to
that checked address (the name is kept for Host and TLS), so DNS cannot answer differently
between the check and the connect. Redirects are never followed. Operators allow more with
`EVE_WEBHOOK_ALLOW` (comma-separated networks, e.g. `127.0.0.0/8` for tests or an internal
receiver).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from eve.errors import ValidationError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(Exception):
    """The URL's host is (or resolves to) an address deliveries may not go to."""


def allowed_networks(env: dict[str, str] | None = None) -> list[Network]:
    raw = (env if env is not None else os.environ).get("EVE_WEBHOOK_ALLOW", "")
    out = []
    for part in (p.strip() for p in raw.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ValidationError(f"EVE_WEBHOOK_ALLOW: {part!r} is not a network ({exc})") from None
    return out


def check_url(url: str) -> str:
    """A URL an endpoint may have: http(s), a host, no credentials in it (400 otherwise)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"a webhook URL is http:// or https:// with a host, not {url[:200]!r}")
    if parts.username or parts.password:
        raise ValidationError("a webhook URL may not carry credentials: the signature authenticates us")
    if len(url) > 2000:
        raise ValidationError("a webhook URL is at most 2000 characters")
    return url


def public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Target:
    url: str  # with the checked address in place of the name
    host_header: str
    sni: str | None  # https: the name the certificate must carry


async def resolve(url: str, allow: Sequence[Network] = ()) -> Target:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"{host} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0]) for i in infos))
    for ip in addresses:
        if not public(ip) and not any(ip in net for net in allow):
            raise Refused(f"{host} resolves to {ip}, a private, loopback or link-local address; deliveries "
                          "go to public addresses only (EVE_WEBHOOK_ALLOW lets an operator add networks)")
    ip = addresses[0]
    netloc = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    target = parts._replace(netloc=netloc).geturl()
    default = (parts.scheme == "https" and port == 443) or (parts.scheme == "http" and port == 80)
    return Target(url=target, host_header=host if default else f"{host}:{port}",
                  sni=host if parts.scheme == "https" else None)
