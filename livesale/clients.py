"""Who is asking: the client address of an HTTP or WebSocket request.

The socket's peer is the client unless it is a proxy the operator trusts (``--trust-proxy
CIDR``, repeatable). Then the client is found in ``Forwarded`` (RFC 7239) or, without it,
``X-Forwarded-For``: read from the right, skipping every hop that is itself a trusted proxy,
the first address that is not one. A header from an untrusted peer is ignored, so a client
cannot name itself.

Limits and caps count per :func:`address_key`: an IPv4 address, or the /64 network of an IPv6
one (one household or phone gets a whole /64, so single IPv6 addresses would be free to mint).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from starlette.requests import HTTPConnection

from livesale import services as svc

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def trusted_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """The networks of ``--trust-proxy``; a malformed one is a :class:`ValueError`."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


def _parse(value: str) -> Address | None:
    value = value.strip().strip('"')
    if value.startswith("["):  # [2001:db8::1]:4711
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # 192.0.2.1:4711
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(header: str) -> list[str]:
    """The ``for=`` values of a ``Forwarded`` header, in order (RFC 7239 §4)."""
    found = []
    for element in header.split(","):
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                found.append(value)
    return found


def client_address(
    peer: str | None, headers: Iterable[tuple[str, str]], trusted: Sequence[Network]
) -> str:
    """The client's address (text) for a request from ``peer`` with ``headers``."""
    address = _parse(peer or "")
    if address is None:
        return peer or "unknown"
    if not trusted or not any(address in net for net in trusted):
        return str(address)
    forwarded: list[str] = []
    xff: list[str] = []
    for name, value in headers:
        if name == "forwarded":
            forwarded += _forwarded_for(value)
        elif name == "x-forwarded-for":
            xff += value.split(",")
    chain = forwarded or xff
    for hop in reversed(chain):
        candidate = _parse(hop)
        if candidate is None:
            return str(address)  # "unknown" or an obfuscated name: the last proxy is all we know
        if not any(candidate in net for net in trusted):
            return str(candidate)
        address = candidate
    return str(address)


def address_key(address: str) -> str:
    """What limits count by: the address, or an IPv6 address's /64."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def client_of(conn: HTTPConnection) -> str:
    """The :func:`address_key` of the client of ``conn``."""
    settings = svc.of(conn).settings
    peer = conn.client.host if conn.client else None
    if not settings.trust_proxy:  # the buy path's common case: no header can change the answer
        return address_key(client_address(peer, (), ()))
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in conn.scope["headers"]]
    return address_key(client_address(peer, headers, trusted_networks(settings.trust_proxy)))
