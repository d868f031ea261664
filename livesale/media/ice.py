"""ICE settings for every peer connection the relay makes.

Two rules hold here:

* The relay never falls back to a public STUN server. aiortc treats
  ``RTCConfiguration(iceServers=None)`` as "use Google's STUN server", so
  :func:`rtc_configuration` always passes an explicit list, empty when nothing is configured.
* ``--ice-host`` picks the host addresses offered as candidates. aioice gathers host candidates
  from its module-level ``get_host_addresses()`` (every interface except exactly 127.0.0.1);
  :func:`use_host_addresses` has the adapter (:mod:`livesale.media._aiortc`) replace it for the
  whole process with the configured list, and :func:`restore_host_addresses` puts it back.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer

from livesale.media import _aiortc

log = logging.getLogger("livesale.media")


@dataclass(frozen=True, kw_only=True)
class IceConfig:
    """The ICE part of the settings: host addresses and STUN/TURN servers (none by default)."""

    hosts: tuple[str, ...] = ()
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str = ""
    turn_password: str = ""

    def __post_init__(self) -> None:
        for name, value in (
            *(("--stun", url) for url in self.stun_urls),
            *(("--turn", url) for url in self.turn_urls),
            ("--turn-username", self.turn_username),
            ("--turn-password", self.turn_password),
        ):
            # They go out in a header (link_headers): printable ASCII only, so no control
            # character can end it early and every byte is valid in a quoted-string.
            if not all(0x20 <= ord(c) < 0x7F for c in value):
                raise ValueError(f"{name} must be printable ASCII")
        for url in (*self.stun_urls, *self.turn_urls):
            if any(c in url for c in "<> "):
                raise ValueError(f"an ICE server URL cannot contain <, > or spaces: {url!r}")
        for host in self.hosts:
            try:
                ipaddress.ip_address(host)
            except ValueError as exc:
                raise ValueError(f"--ice-host must be an IP address, got {host!r}") from exc
        for url in self.stun_urls:
            if not url.startswith(("stun:", "stuns:")):
                raise ValueError(f"--stun must be a stun: or stuns: URL, got {url!r}")
        for url in self.turn_urls:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"--turn must be a turn: or turns: URL, got {url!r}")

    def ice_servers(self) -> list[RTCIceServer]:
        """The configured STUN and TURN servers, an empty list when there are none."""
        servers: list[RTCIceServer] = []
        if self.stun_urls:
            servers.append(RTCIceServer(urls=list(self.stun_urls)))
        if self.turn_urls:
            servers.append(
                RTCIceServer(
                    urls=list(self.turn_urls),
                    username=self.turn_username or None,
                    credential=self.turn_password or None,
                )
            )
        return servers

    def link_headers(self) -> list[str]:
        """``Link`` header values announcing the ICE servers to WHIP/WHEP clients.

        WHIP (RFC 9725 §4.6): the server may tell the client which STUN/TURN servers to use
        with ``Link: <url>; rel="ice-server"``, credentials as ``username`` and ``credential``.
        """
        links = [f'<{url}>; rel="ice-server"' for url in self.stun_urls]
        for url in self.turn_urls:
            link = f'<{url}>; rel="ice-server"'
            if self.turn_username:
                link += f"; username={quoted_string(self.turn_username)}"
                link += f"; credential={quoted_string(self.turn_password)}"
                link += '; credential-type="password"'
            links.append(link)
        return links


def quoted_string(value: str) -> str:
    """``value`` as an HTTP quoted-string (RFC 9110 §5.6.4, used by RFC 8288 §3 for link
    parameters): ``"`` and ``\\`` escaped, so ``,`` and ``;`` inside stay part of the value."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def rtc_configuration(config: IceConfig) -> RTCConfiguration:
    """An ``RTCConfiguration`` with an explicit server list (never aiortc's public default)."""
    return RTCConfiguration(iceServers=config.ice_servers())


def use_host_addresses(hosts: Sequence[str]) -> None:
    """Offer exactly ``hosts`` as ICE host candidates in this process (empty: every
    non-loopback interface, aioice's own choice); undone by :func:`restore_host_addresses`."""
    _aiortc.use_host_addresses(hosts)
    if hosts:
        log.info("ICE host candidates limited to %s", ", ".join(hosts))


def restore_host_addresses() -> None:
    """Give aioice back its own host-address discovery."""
    _aiortc.restore_host_addresses()
