"""Refuse webhook URLs that point into private networks (unless explicitly allowed)."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from urllib.parse import urlsplit


class UrlNotAllowed(Exception):
    pass


def check_shape(url: str) -> tuple[str, int]:
    """An absolute http(s) URL with a host and no credentials; returns (host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlNotAllowed("The URL must be absolute, http or https, with a host.")
    if parts.username or parts.password:
        raise UrlNotAllowed("The URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlNotAllowed("The URL has an invalid port.") from exc
    return parts.hostname, port


def _sent_host(url: str) -> str | None:
    """The host the sender connects to: aiohttp reads a URL with yarl, which maps characters as
    IDNA does, so `127。0。0。1` (ideographic full stops) or `①②⑦.0.0.1` is the address
    127.0.0.1 there, connected to without a resolver, where urlsplit reads a name. None: a URL
    yarl does not read (the sender cannot send to it either)."""
    from yarl import URL  # aiohttp's own URL type (aiohttp is pinned)

    try:
        return URL(url).host
    except ValueError:
        return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:  # fec0::/10: deprecated, still routed inside some networks
            return False
        # An IPv4 address inside: mapped (::ffff:a.b.c.d) or 6to4 (2002:AABB:CCDD::/48, which a
        # host with a 6to4 route sends to AA.BB.CC.DD) is judged as that address. Python 3.11's
        # is_global takes 2002::/16 and fec0::/10 for public.
        inner = ip.ipv4_mapped or ip.sixtofour
        if ip in _NAT64:  # 64:ff9b::a.b.c.d: a NAT64 gateway sends it to a.b.c.d (RFC 6052)
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip in _NAT64_LOCAL:  # 64:ff9b:1::/48: a network's own translation (RFC 8215)
            return False
        if inner is not None:
            ip = inner
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise UrlNotAllowed unless every address the host resolves to is public."""
    host, port = check_shape(url)
    if allow_private:
        return
    _refuse_sent_address(url, host)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlNotAllowed(f"The host {host!r} does not resolve.") from exc
    refuse_private(host, {str(info[4][0]) for info in infos})


@functools.lru_cache(maxsize=1024)  # bounded: one entry per URL, a few hundred bytes each
def check_target(url: str, *, allow_private: bool) -> None:
    """Before a send, without a lookup: the URL's shape, and a host written as an address must be
    public. A host name is checked where it is resolved, by the sender's resolver
    (webhooks/sender.py), for every connection the sender opens: checking it here as well cost a
    lookup per send and proved nothing about the address the connection would use."""
    host, _ = check_shape(url)
    if allow_private:
        return
    _refuse_sent_address(url, host)
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    refuse_private(host, {host})


def _refuse_sent_address(url: str, host: str) -> None:
    """The sender connects to an address it reads in the URL without asking a resolver, so
    that address must be public, however the URL spells it."""
    sent = _sent_host(url)
    if sent is None or sent == host:
        return
    try:
        ipaddress.ip_address(sent.split("%")[0])
    except ValueError:
        return  # a name there too: the resolver checks it
    refuse_private(host, {sent})


def refuse_private(host: str, addresses: set[str]) -> None:
    """Raise UrlNotAllowed if any of the addresses `host` resolved to is not public."""
    blocked = sorted(a for a in addresses if not _public(a))
    if blocked:
        raise UrlNotAllowed(
            f"The host {host!r} resolves to a non-public address ({', '.join(blocked)}). "
            "For local testing, start the server with "
            "SLOTGRAPH_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true."
        )
