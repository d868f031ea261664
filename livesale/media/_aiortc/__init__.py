"""The relay's seam into aiortc, aioice and pylibsrtp: the one place naming their private parts.

aiortc 1.16 has no public API for forwarding encoded media, so the relay hooks in at five points:

1. the receiver's jitter buffer (``RTCRtpReceiver.__jitter_buffer``), replaced by an assembler
   of :mod:`livesale.media.jitter` that gets complete frames to the relay (aiortc depayloads
   into ``packet._data`` first; :func:`install_assembler` hands the assembler plain
   :class:`~livesale.media.jitter.Packet` tuples);
2. the sender's ``_send_keyframe()``, called on a viewer's PLI/FIR, redirected to the publisher;
3. the receiver's ``_send_rtcp_pli(ssrc)``, used to ask the publisher for a keyframe;
4. the sender's RTP loop (``_run_rtp``, started by ``send()``) and NACK answer (``_retransmit``),
   replaced per viewer by :mod:`livesale.media._aiortc.sender`, which keeps the private counters
   aiortc's RTCP sender reports read and the events ``stop()`` waits for;
5. the wire under a viewer's sender, written to directly: the DTLS transport's state, SRTP
   session (pylibsrtp's buffer and libsrtp's ``srtp_protect``) and stats counters, and the UDP
   transport and remote address of aioice's nominated candidate pair.

It also chooses aioice's host candidates (``--ice-host``) by replacing its module-level
``get_host_addresses()``.

:data:`PRIVATE_NAMES` lists every private name this package uses and :data:`EXPECTATIONS` the
behaviour of aiortc's code that the hooks rely on; :func:`check` verifies both against the
installed sources. The media hub runs it at start-up: if anything moved, WHIP/WHEP answer 503
and the rest of the server (chat, checkout) runs on.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc
import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

from livesale.media._aiortc.sender import install_sender
from livesale.media.jitter import Packet

SUPPORTED_AIORTC = "1.16."


@dataclass(frozen=True)
class Private:
    """One private name of another library that this package uses."""

    #: The class or module the name belongs to.
    owner: Any
    #: The attribute as this package spells it (name-mangled ones in full).
    name: str
    why: str
    #: For an attribute only instances have: the source text of ``owner`` that sets it (an
    #: attribute name, followed there by ``=`` or ``:``, or a whole assignment).
    set_by: str = ""


def _attr(owner: type[Any], name: str, why: str) -> Private:
    """An instance attribute set in ``owner``'s own code (``self.<name as written> = ...``)."""
    written = name.removeprefix(f"_{owner.__name__}")
    return Private(owner, name, why, set_by=f"self.{written}")


#: Every private name of aiortc, aioice and pylibsrtp used by this package.
PRIVATE_NAMES: tuple[Private, ...] = (
    _attr(RTCRtpReceiver, "_RTCRtpReceiver__jitter_buffer", "replaced by an assembler"),
    Private(RTCRtpReceiver, "_send_rtcp_pli", "ask the publisher for a keyframe"),
    Private(
        RTCRtpReceiver,
        "_data",
        "the depayloaded packet the assembler reads",
        set_by="packet._data = depayload(codec, packet.payload)",
    ),
    Private(RTCRtpSender, "_send_keyframe", "a viewer's PLI/FIR goes to the publisher"),
    Private(RTCRtpSender, "_run_rtp", "the RTP loop, replaced per viewer"),
    Private(RTCRtpSender, "_retransmit", "the NACK answer, replaced per viewer"),
    _attr(RTCRtpSender, "_ssrc", "the viewer's SSRC"),
    _attr(RTCRtpSender, "_rtx_ssrc", "the viewer's RTX SSRC"),
    _attr(RTCRtpSender, "_RTCRtpSender__rtp_started", "stop() waits for it"),
    _attr(RTCRtpSender, "_RTCRtpSender__rtp_exited", "stop() waits for it"),
    _attr(RTCRtpSender, "_RTCRtpSender__mid", "the MID header extension"),
    _attr(RTCRtpSender, "_RTCRtpSender__rtp_header_extensions_map", "negotiated extensions"),
    _attr(RTCRtpSender, "_RTCRtpSender__rtx_payload_type", "RTX, when negotiated"),
    _attr(RTCRtpSender, "_RTCRtpSender__rtx_sequence_number", "RTX sequence numbers"),
    _attr(RTCRtpSender, "_RTCRtpSender__ntp_timestamp", "read by sender reports"),
    _attr(RTCRtpSender, "_RTCRtpSender__rtp_timestamp", "read by sender reports"),
    _attr(RTCRtpSender, "_RTCRtpSender__packet_count", "read by sender reports and stats"),
    _attr(RTCRtpSender, "_RTCRtpSender__octet_count", "read by sender reports and stats"),
    _attr(RTCDtlsTransport, "_state", "send only while connected"),
    _attr(RTCDtlsTransport, "_tx_srtp", "the SRTP session that protects RTP"),
    _attr(RTCDtlsTransport, "_RTCDtlsTransport__tx_packets", "transport stats"),
    _attr(RTCDtlsTransport, "_RTCDtlsTransport__tx_bytes", "transport stats"),
    _attr(RTCIceTransport, "_connection", "aioice's connection under the ICE transport"),
    _attr(aioice.ice.Connection, "_nominated", "the selected candidate pair per component"),
    _attr(pylibsrtp.Session, "_srtp", "libsrtp's context"),
    _attr(pylibsrtp.Session, "_cdata", "the session's packet buffer, as C sees it"),
    _attr(pylibsrtp.Session, "_buffer", "the session's packet buffer"),
    Private(pylibsrtp.Session, "_Session__process", "how pylibsrtp protects: in place, C call"),
    Private(pylibsrtp, "_srtp_assert", "turn a libsrtp status into pylibsrtp's error"),
    Private(pylibsrtp, "_binding", "libsrtp's srtp_protect and cffi"),
)

#: What the hooks rely on aiortc's and aioice's code doing: (where, source text, meaning).
EXPECTATIONS: tuple[tuple[Any, str, str], ...] = (
    (
        RTCRtpReceiver._handle_rtp_packet,
        "self.__jitter_buffer.add(packet)",
        "the receiver no longer feeds packets to __jitter_buffer.add()",
    ),
    (
        RTCRtpReceiver._handle_rtp_packet,
        "packet._data = depayload(codec, packet.payload)",
        "the receiver no longer depayloads into packet._data before the jitter buffer",
    ),
    (
        RTCRtpSender._handle_rtcp_packet,
        "self._send_keyframe()",
        "the sender no longer calls _send_keyframe() on PLI/FIR",
    ),
    (
        RTCRtpSender.send,
        "asyncio.ensure_future(self._run_rtp(parameters.codecs[0]))",
        "the sender no longer starts its RTP loop as self._run_rtp(codec)",
    ),
    (
        RTCRtpSender._handle_rtcp_packet,
        "await self._retransmit(seq)",
        "the sender no longer answers NACKs through self._retransmit(seq)",
    ),
    (
        RTCRtpSender.stop,
        "await asyncio.gather(self.__rtp_exited.wait(), self.__rtcp_exited.wait())",
        "the sender's stop() no longer waits for __rtp_exited",
    ),
    (
        RTCRtpSender._run_rtcp,
        "packet_count=self.__packet_count & 0xFFFFFFFF",
        "the sender reports no longer read __packet_count",
    ),
    (
        aioice.ice.Connection.gather_candidates,
        "get_host_addresses(",
        "aioice no longer gathers host candidates through get_host_addresses()",
    ),
    (
        RTCDtlsTransport._send_rtp,
        "data = self._tx_srtp.protect(data)",
        "the DTLS transport no longer protects RTP with self._tx_srtp",
    ),
    (
        RTCDtlsTransport._send_rtp,
        "if self._state != State.CONNECTED:",
        "the DTLS transport no longer keeps its state in self._state",
    ),
    (
        RTCIceTransport.__init__,
        "self._connection = gatherer._connection",
        "the ICE transport no longer keeps aioice's connection in _connection",
    ),
    (
        aioice.ice.Connection.sendto,
        "await active_pair.protocol.send_data(data, active_pair.remote_addr)",
        "aioice no longer sends through pair.protocol to pair.remote_addr",
    ),
    (
        aioice.ice.StunProtocol.send_data,
        "self.transport.sendto(data, addr)",
        "aioice's protocol no longer sends with self.transport.sendto(data, addr)",
    ),
    (
        getattr(pylibsrtp.Session, "_Session__process", None),
        "_srtp_assert(func(self._srtp[0], self._cdata, len_p))",
        "pylibsrtp no longer calls libsrtp with (self._srtp[0], self._cdata, length)",
    ),
    (
        getattr(pylibsrtp.Session, "_Session__process", None),
        "self._buffer[0 : len(data)] = data",
        "pylibsrtp no longer encrypts in place in self._buffer",
    ),
)


class AiortcInternalsMoved(RuntimeError):
    """The installed aiortc no longer has a hook the relay depends on."""


def _source(obj: Any) -> str:
    """The source of a function or module; of a class, the source of its methods.

    A class's own source is found by ``ast.parse`` of its whole module, which CPython 3.11
    cannot do in two threads at once (a server starting beside a test's thread); a function's
    source is read without it.
    """
    try:
        if inspect.isclass(obj):
            return "\n".join(
                inspect.getsource(member)
                for member in vars(obj).values()
                if inspect.isfunction(member)
            )
        return inspect.getsource(obj)
    except (OSError, TypeError) as exc:
        raise AiortcInternalsMoved(f"cannot read the source of {obj!r}: {exc}") from exc


def _owner_name(owner: Any) -> str:
    return str(getattr(owner, "__qualname__", None) or getattr(owner, "__name__", owner))


def check(
    names: Sequence[Private] | None = None,
    expectations: Sequence[tuple[Any, str, str]] | None = None,
) -> list[str]:
    """Every private name that is missing and every expectation that no longer holds, in
    words; empty when the installed libraries are what the relay was written for. (Default:
    :data:`PRIVATE_NAMES` and :data:`EXPECTATIONS`.)"""
    names = PRIVATE_NAMES if names is None else names
    expectations = EXPECTATIONS if expectations is None else expectations
    problems: list[str] = []
    version = getattr(aiortc, "__version__", "")
    if not version.startswith(SUPPORTED_AIORTC):
        problems.append(f"aiortc {version} installed, the relay is written for {SUPPORTED_AIORTC}x")
    for private in names:
        where = f"{_owner_name(private.owner)}.{private.name}"
        if private.set_by:
            try:
                text = _source(private.owner)
            except AiortcInternalsMoved as exc:
                problems.append(str(exc))
                continue
            if "=" in private.set_by:
                found = private.set_by in text
            else:
                found = re.search(re.escape(private.set_by) + r"\s*[:=]", text) is not None
            if not found:
                problems.append(f"{where} is no longer set ({private.why})")
        elif not hasattr(private.owner, private.name):
            problems.append(f"{where} is gone ({private.why})")
    for obj, needle, meaning in expectations:
        try:
            text = _source(obj)
        except AiortcInternalsMoved as exc:
            problems.append(str(exc))
            continue
        if needle not in text:
            problems.append(meaning)
    receiver_module = _source(inspect.getmodule(RTCRtpReceiver))
    if receiver_module.count("__jitter_buffer") != 3:
        problems.append("the receiver uses __jitter_buffer in more places than add()")
    pli = getattr(RTCRtpReceiver, "_send_rtcp_pli", None)
    if pli is None or list(inspect.signature(pli).parameters) != ["self", "media_ssrc"]:
        problems.append("RTCRtpReceiver._send_rtcp_pli(self, media_ssrc) changed")
    host_addresses = getattr(aioice.ice, "get_host_addresses", None)
    if host_addresses is None or list(inspect.signature(host_addresses).parameters) != [
        "use_ipv4",
        "use_ipv6",
    ]:
        problems.append("aioice.ice.get_host_addresses(use_ipv4, use_ipv6) changed")
    return problems


@functools.cache
def problems() -> tuple[str, ...]:
    """:func:`check` of the tables, once per process (the installed sources do not change)."""
    return tuple(check())


def check_aiortc_internals() -> None:
    """Raise :class:`AiortcInternalsMoved` naming every hook that is missing or changed."""
    problems = check()
    if problems:
        raise AiortcInternalsMoved("; ".join(problems))


# --- the hooks ---------------------------------------------------------------------------------

_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"


class _Assembling:
    """Sits where a receiver keeps its jitter buffer; hands each depayloaded packet to an
    assembler as a :class:`~livesale.media.jitter.Packet`."""

    __slots__ = ("_add",)

    def __init__(self, assembler: Any) -> None:
        self._add: Callable[[Packet], tuple[bool, None]] = assembler.add

    def add(self, packet: Any) -> tuple[bool, None]:
        return self._add(
            Packet(
                packet.sequence_number, packet.timestamp, packet.marker, packet.ssrc, packet._data
            )
        )


def install_assembler(receiver: RTCRtpReceiver, assembler: Any) -> None:
    """Make ``receiver`` hand its RTP packets to ``assembler`` (``add(Packet)``) instead of its
    jitter buffer. Must be called before the receiver starts (before the answer is applied)."""
    if not hasattr(receiver, _JITTER_BUFFER):
        raise AiortcInternalsMoved("RTCRtpReceiver has no __jitter_buffer")
    setattr(receiver, _JITTER_BUFFER, _Assembling(assembler))


def redirect_keyframe_requests(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the remote end of ``sender`` sends a PLI or FIR."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


async def send_picture_loss(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send an RTCP PLI (RFC 4585 §6.3.1) for ``media_ssrc`` over ``receiver``'s transport."""
    await receiver._send_rtcp_pli(media_ssrc)


_ORIGINAL_HOST_ADDRESSES = aioice.ice.get_host_addresses


def use_host_addresses(hosts: Sequence[str]) -> None:
    """Offer exactly ``hosts`` (IP addresses, already checked) as ICE host candidates in this
    process, by replacing aioice's module-level ``get_host_addresses()``.

    An empty ``hosts`` restores aioice's own choice (every interface but 127.0.0.1). The caller
    undoes this with :func:`restore_host_addresses` when it shuts down.
    """
    if not hosts:
        restore_host_addresses()
        return
    parsed = [ipaddress.ip_address(host) for host in hosts]

    def configured_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            str(address)
            for address in parsed
            if (address.version == 4 and use_ipv4) or (address.version == 6 and use_ipv6)
        ]

    aioice.ice.get_host_addresses = configured_host_addresses


def restore_host_addresses() -> None:
    """Give aioice back its own host-address discovery."""
    aioice.ice.get_host_addresses = _ORIGINAL_HOST_ADDRESSES


__all__ = [
    "EXPECTATIONS",
    "PRIVATE_NAMES",
    "AiortcInternalsMoved",
    "Private",
    "check",
    "check_aiortc_internals",
    "problems",
    "install_assembler",
    "install_sender",
    "redirect_keyframe_requests",
    "restore_host_addresses",
    "send_picture_loss",
    "use_host_addresses",
]
