"""Reading WHIP/WHEP offers and choosing the codecs the relay pins.

The relay forwards what the publisher sends, so there is exactly one video codec per show: the
publisher's answer lists only that codec (plus RTX), and every viewer's answer is pinned to the
same one with ``setCodecPreferences`` before its offer is applied (aiortc's sender uses the first
negotiated codec). Audio is always Opus.

Offers come from anyone (WHEP needs no credential), so nothing here trusts them: every parse
failure is a :class:`BadOffer`, and :func:`cap_candidates` bounds the addresses the relay will
send connectivity checks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.sdp import SessionDescription

from livesale.media.errors import BadOffer, UnsupportedCodec

#: Video codecs the relay forwards, most preferred first whatever the offer's order: H.264
#: first, as only H.264 is recorded for replay (HLS players play it everywhere). Chromium
#: offers VP8 first and H.264 too; OBS offers H.264.
FORWARDED_VIDEO = ("h264", "vp8")
#: Remote ICE candidates (distinct transport, address and port) kept from one offer. A browser
#: gathers a handful (host, server-reflexive, relay, per interface); each kept candidate is a
#: target the relay sends STUN checks to, so an offer must not turn it into a packet cannon.
MAX_REMOTE_CANDIDATES = 8


@dataclass
class Offer:
    """The media sections of an offer: codecs offered per kind, in the offer's order."""

    video: list[Any] | None = None
    audio: list[Any] | None = None
    kinds: list[str] = field(default_factory=list)


def parse_offer(sdp: str) -> Offer:
    """Parse ``sdp``; :class:`BadOffer` unless it has one audio and/or one video section."""
    if not sdp.strip().startswith("v=0"):
        raise BadOffer("the body is not an SDP session description")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:
        # aiortc's parser asserts, indexes and iterates on whatever the text holds: any
        # failure is the offer's fault (AssertionError, StopIteration, ValueError, ...).
        raise BadOffer(f"cannot parse the SDP offer: {type(exc).__name__} {exc}") from exc
    offer = Offer()
    for media in description.media:
        if media.kind not in ("audio", "video"):
            continue
        if media.kind in offer.kinds:
            raise BadOffer(f"one {media.kind} section at most (no simulcast or multiple tracks)")
        if media.dtls is None or not media.dtls.fingerprints:
            # aiortc would answer, then assert in its connect task (RFC 8842 §5: a DTLS
            # association needs the peer's certificate fingerprint and its role, a=setup).
            raise BadOffer(f"the {media.kind} section lacks a=fingerprint or a=setup")
        offer.kinds.append(media.kind)
        setattr(offer, media.kind, list(media.rtp.codecs))
    if not offer.kinds:
        raise BadOffer("the offer has no audio or video section")
    return offer


def _capabilities(kind: str) -> list[Any]:
    return list(RTCRtpSender.getCapabilities(kind).codecs)


def _rtx() -> Any:
    return next(c for c in _capabilities("video") if c.mimeType.lower() == "video/rtx")


def video_codec_name(capability: Any) -> str:
    """``vp8`` or ``h264`` for a video codec capability."""
    return str(capability.mimeType.split("/")[1].lower())


def _forwarded() -> list[Any]:
    """The video capabilities the relay forwards, in its order (:data:`FORWARDED_VIDEO`)."""
    return sorted(
        (c for c in _capabilities("video") if video_codec_name(c) in FORWARDED_VIDEO),
        key=lambda c: FORWARDED_VIDEO.index(video_codec_name(c)),
    )


def choose_video(offered: list[Any], prefer: Any | None = None) -> Any:
    """The video capability to receive from a publisher offering ``offered``.

    ``prefer`` (the show's current codec, when viewers are watching) wins if the offer has it,
    so a reconnecting host keeps every viewer's decoder; otherwise the relay's order
    (:data:`FORWARDED_VIDEO`: H.264 before VP8) decides among the codecs the offer has.
    """
    local = _forwarded()
    if prefer is not None:
        for remote in offered:
            if is_codec_compatible(prefer, remote):
                return prefer
    for capability in local:
        for remote in offered:
            if is_codec_compatible(capability, remote):
                return capability
    names = sorted({str(c.mimeType) for c in offered})
    raise UnsupportedCodec(f"offered video codecs {names}; the relay forwards VP8 and H.264")


def video_preferences(capability: Any) -> list[Any]:
    """``setCodecPreferences`` argument pinning video to ``capability`` (with RTX for NACKs)."""
    return [capability, _rtx()]


def forwarded_video_preferences() -> list[Any]:
    """``setCodecPreferences`` argument offering every video codec the relay forwards (with
    RTX): a pull's offer, which the origin node answers with the show's one codec."""
    return [*_forwarded(), _rtx()]


def opus() -> list[Any]:
    """``setCodecPreferences`` argument for Opus audio, the only audio the relay forwards."""
    return [c for c in _capabilities("audio") if c.mimeType.lower() == "audio/opus"]


def audio_preferences(offered: list[Any]) -> list[Any]:
    """Codec preferences pinning audio to Opus; :class:`UnsupportedCodec` when not offered."""
    if not any(str(c.mimeType).lower() == "audio/opus" for c in offered):
        raise UnsupportedCodec("the relay forwards Opus audio only")
    return opus()


def accepts(offered: list[Any], capability: Any) -> bool:
    """True when an offer listing ``offered`` can receive ``capability``."""
    return any(is_codec_compatible(capability, remote) for remote in offered)


def _candidate_target(line: str) -> tuple[str, str, str, int] | None:
    """``(transport, address, port, priority)`` of an ``a=candidate:`` line (RFC 8839 §5.1),
    ``None`` for any other line or one too short to be a candidate."""
    if not line.startswith("a=candidate:"):
        return None
    fields = line[len("a=candidate:") :].split()
    if len(fields) < 6:
        return None
    priority = int(fields[3]) if fields[3].isdigit() else 0
    return fields[2].lower(), fields[4].lower(), fields[5], priority


def cap_candidates(sdp: str, limit: int = MAX_REMOTE_CANDIDATES) -> tuple[str, int]:
    """``sdp`` keeping only the ``limit`` highest-priority candidate targets, and how many
    candidate lines were dropped.

    A target is a distinct transport, address and port: the same candidate repeated in each
    bundled media section counts once. Dropping rather than refusing the offer keeps a client
    with many interfaces working on its best candidates.
    """
    lines = sdp.splitlines()
    best: dict[tuple[str, str, str], int] = {}
    for line in lines:
        target = _candidate_target(line)
        if target is not None:
            key = target[:3]
            best[key] = max(best.get(key, 0), target[3])
    if len(best) <= limit:
        return sdp, 0
    ranked = sorted(best, key=lambda key: -best[key])
    kept_targets = set(ranked[:limit])
    kept: list[str] = []
    for line in lines:
        target = _candidate_target(line)
        if target is None or target[:3] in kept_targets:
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", len(lines) - len(kept)


def with_rtcp_mux_only(sdp: str) -> str:
    """``sdp`` with ``a=rtcp-mux-only`` after each ``a=rtcp-mux`` line.

    WHIP (RFC 9725 §4.4.1): both ends MUST use RTCP multiplexing (RFC 8858); the relay never
    sends RTCP on a port of its own, and says so in every media section of its answers.
    """
    lines: list[str] = []
    for line in sdp.splitlines():
        if line == "a=rtcp-mux-only":
            continue
        lines.append(line)
        if line == "a=rtcp-mux":
            lines.append("a=rtcp-mux-only")
    return "\r\n".join(lines) + "\r\n"
