"""The few aiortc/aioice internals the pass-through relay relies on, in one place.

aiortc 1.16 has no public API for forwarding encoded media, so the relay hooks in at five points
(see the module docstrings of :mod:`livesale.media.relay`, :mod:`livesale.media.jitter` and
:mod:`livesale.media.sender`):

1. the receiver's jitter buffer (``RTCRtpReceiver.__jitter_buffer``), replaced by an assembler
   that hands complete frames to the relay (aiortc depayloads into ``packet._data`` first);
2. the sender's ``_send_keyframe()``, called on a viewer's PLI/FIR, redirected to the publisher;
3. the receiver's ``_send_rtcp_pli(ssrc)``, used to ask the publisher for a keyframe;
4. the sender's RTP loop (``_run_rtp``, started by ``send()``) and NACK answer (``_retransmit``),
   replaced per viewer by :mod:`livesale.media.sender`, which keeps the private counters aiortc's
   RTCP sender reports read and the events ``stop()`` waits for;
5. the wire under a viewer's sender, written to directly: the DTLS transport's state, SRTP
   session (pylibsrtp's buffer and libsrtp's ``srtp_protect``) and stats counters, and the UDP
   transport and remote address of aioice's nominated candidate pair.

:func:`check_aiortc_internals` verifies all of them against the installed sources; the hub runs
it at start-up and a test runs it too, so an aiortc upgrade that moves them fails loudly instead
of silently transcoding or dropping media.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import aioice.ice
import aiortc
import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

SUPPORTED_AIORTC = "1.16."
_JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"
#: Private attributes of ``RTCRtpSender`` that :mod:`livesale.media.sender` reads or keeps.
_SENDER_ATTRIBUTES = (
    "rtp_started",
    "rtp_exited",
    "mid",
    "rtp_header_extensions_map",
    "rtx_payload_type",
    "rtx_sequence_number",
    "ntp_timestamp",
    "rtp_timestamp",
    "octet_count",
    "packet_count",
)


class AiortcInternalsMoved(RuntimeError):
    """The installed aiortc no longer has a hook the relay depends on."""


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError) as exc:
        raise AiortcInternalsMoved(f"cannot read the source of {obj!r}: {exc}") from exc


def check_aiortc_internals() -> None:
    """Raise :class:`AiortcInternalsMoved` naming every hook that is missing or changed."""
    problems: list[str] = []
    version = getattr(aiortc, "__version__", "")
    if not version.startswith(SUPPORTED_AIORTC):
        problems.append(f"aiortc {version} installed, the relay is written for {SUPPORTED_AIORTC}x")

    expectations: list[tuple[Any, str, str]] = [
        (
            RTCRtpReceiver.__init__,
            "self.__jitter_buffer = JitterBuffer(",
            "the receiver no longer keeps its jitter buffer in __jitter_buffer",
        ),
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
            RTCDtlsTransport._send_rtp,
            "self.__tx_packets += 1",
            "the DTLS transport no longer counts packets sent in __tx_packets",
        ),
        (
            RTCIceTransport.__init__,
            "self._connection = gatherer._connection",
            "the ICE transport no longer keeps aioice's connection in _connection",
        ),
        (
            aioice.ice.Connection.sendto,
            "active_pair = self._nominated.get(component)",
            "aioice no longer keeps the selected pair per component in _nominated",
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
    ]
    for obj, needle, meaning in expectations:
        try:
            text = _source(obj)
        except AiortcInternalsMoved as exc:
            problems.append(str(exc))
            continue
        if needle not in text:
            problems.append(meaning)

    init = _source(RTCRtpSender.__init__)
    for name in _SENDER_ATTRIBUTES:
        if f"self.__{name} = " not in init and f"self.__{name}: " not in init:
            problems.append(f"RTCRtpSender no longer sets __{name}")
    module_source = _source(inspect.getmodule(RTCRtpReceiver))
    if module_source.count("__jitter_buffer") != 3:
        problems.append("the receiver uses __jitter_buffer in more places than add()")
    pli = getattr(RTCRtpReceiver, "_send_rtcp_pli", None)
    if pli is None or list(inspect.signature(pli).parameters) != ["self", "media_ssrc"]:
        problems.append("RTCRtpReceiver._send_rtcp_pli(self, media_ssrc) is gone")
    if list(inspect.signature(aioice.ice.get_host_addresses).parameters) != [
        "use_ipv4",
        "use_ipv6",
    ]:
        problems.append("aioice.ice.get_host_addresses(use_ipv4, use_ipv6) changed")
    if problems:
        raise AiortcInternalsMoved("; ".join(problems))


def install_assembler(receiver: RTCRtpReceiver, assembler: object) -> None:
    """Make ``receiver`` hand its RTP packets to ``assembler`` instead of its jitter buffer.

    Must be called before the receiver starts (before the answer is applied).
    """
    if not hasattr(receiver, _JITTER_BUFFER_ATTR):
        raise AiortcInternalsMoved("RTCRtpReceiver has no __jitter_buffer")
    setattr(receiver, _JITTER_BUFFER_ATTR, assembler)


def redirect_keyframe_requests(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the remote end of ``sender`` sends a PLI or FIR."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


async def send_picture_loss(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send an RTCP PLI (RFC 4585 §6.3.1) for ``media_ssrc`` over ``receiver``'s transport."""
    await receiver._send_rtcp_pli(media_ssrc)
