"""Which origins this server answers as, and which pages a browser may use it from.

DNS rebinding: a page on ``attacker.example`` has that name re-pointed at ``127.0.0.1`` and then
reads a livesale bound there as its own origin. The browser still sends ``Host:
attacker.example``, so every request (WebSocket upgrades too) must name this server:

* a host name of one of the *public origins* (``--public-origin``; without it the origin of
  ``--public-url`` or of ``--host``/``--port``, and for a loopback bind ``127.0.0.1``,
  ``localhost`` and ``[::1]`` on that port);
* ``localhost``, or an IP address literal: neither can be re-pointed by anyone else's DNS, and a
  page whose origin is a literal address is served by whoever holds that address.

Any other ``Host`` gets ``421 Misdirected Request`` (RFC 9110 §15.5.20: this server will not
answer for that authority); a missing or malformed one ``400`` (RFC 9112 §3.2). The port of the
``Host`` is not compared: a proxy or a port mapping may change it, and rebinding needs a name.

A room WebSocket opened by a browser also needs an allowed ``Origin``
(:meth:`Origins.room_allows`): a public origin, an ``--allow-origin`` one, or the page's own
(the scheme and the ``Host`` just checked).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from livesale.config import Settings

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_BINDS = ("127.0.0.1", "::1", "localhost")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def origin_of(url: str, *, exact: bool = False) -> str:
    """The origin (``scheme://host[:port]``, lower case, default port left out) of an http or
    https URL; :class:`ValueError` for anything else, and with ``exact`` for a URL that is more
    than an origin (a path, a query, credentials)."""
    split = urlsplit(url.strip())
    scheme = split.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not split.hostname:
        raise ValueError(f"{url!r} is not an http or https URL")
    if exact and (split.path not in ("", "/") or split.query or split.fragment or split.username):
        raise ValueError(f"{url!r} is more than an origin (scheme://host[:port])")
    try:
        port = split.port
    except ValueError as exc:
        raise ValueError(f"{url!r} has a bad port") from exc
    host = split.hostname.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def host_name(authority: str) -> str | None:
    """The host of a ``Host`` value (``name[:port]`` or ``[v6][:port]``), lower case and
    without brackets; ``None`` when it is malformed."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        rest = authority[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return authority[1:end] or None
    name, colon, port = authority.partition(":")
    if colon and not port.isdigit():
        return None
    name = name.rstrip(".")
    if not name or any(c in name for c in " /\\@?#%\t"):
        return None
    return name


def _is_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _public(settings: Settings) -> tuple[str, ...]:
    if settings.public_origins:
        found = [origin_of(o) for o in settings.public_origins]
        if settings.public_url:
            found.append(origin_of(settings.public_url))
        return tuple(dict.fromkeys(found))
    found = [origin_of(settings.base_url)]
    if settings.host in (*_LOOPBACK_BINDS, "0.0.0.0", "::", ""):
        found += [origin_of(f"http://{name}:{settings.port}") for name in _LOOPBACK_NAMES]
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Origins:
    """What :func:`of` found in the settings; every comparison is on lower-case text."""

    #: The origins the pages are served from (the WebSocket URLs of the pages follow them).
    public: tuple[str, ...]
    #: Host names a request may name besides ``localhost`` and address literals.
    names: frozenset[str]
    #: Origins whose pages may open room sockets: ``public`` and ``--allow-origin``.
    room: frozenset[str]

    def host_allows(self, host: str) -> bool:
        """True when ``host`` (a host name, as :func:`host_name` gives it) is this server's."""
        return host in self.names or host == "localhost" or _is_literal(host)

    def room_allows(self, origin: str | None, host: str | None) -> bool:
        """Non-browser clients send no ``Origin``; a browser's must be a public or allowed
        origin, or the page's own (``host`` is the request's ``Host``, checked already)."""
        if origin is None:
            return True
        origin = origin.strip().rstrip("/").lower()
        if origin in self.room:
            return True
        return bool(host) and origin in (f"http://{host}".lower(), f"https://{host}".lower())


@lru_cache(maxsize=16)
def of(settings: Settings) -> Origins:
    """The origins of ``settings`` (checked by :func:`problems` before a server starts)."""
    public = _public(settings)
    names = {host_name(urlsplit(o).netloc) for o in public}
    if settings.node_url:
        names.add(host_name(urlsplit(origin_of(settings.node_url)).netloc))  # the other nodes
    room = {*public, *(origin_of(o) for o in settings.allowed_origins)}
    return Origins(public, frozenset(n for n in names if n), frozenset(room))


def problems(settings: Settings) -> list[str]:
    """What keeps the origin options from working (empty when they are sound)."""
    found = []
    for option, values, exact in (
        ("--public-origin", settings.public_origins, True),
        ("--allow-origin", settings.allowed_origins, True),
        ("--allow-embed", settings.allow_embed, True),
        ("--public-url", (settings.public_url,) if settings.public_url else (), False),
        ("--node-url", (settings.node_url,) if settings.node_url else (), True),
    ):
        for value in values:
            try:
                origin = origin_of(value, exact=exact)
            except ValueError as exc:
                found.append(f"{option}: {exc}")
                continue
            if option == "--allow-embed" and "[" in origin:
                found.append(f"{option}: {value!r}: a CSP cannot name an IPv6 address; use a name")
    return found
