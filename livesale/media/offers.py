"""Reading WHIP/WHEP offers and choosing the codecs the relay pins.

The relay forwards what the publisher sends, so there is exactly one video codec per show: the
publisher's answer lists only that codec (plus RTX), and every viewer's answer is pinned to the
same one with ``setCodecPreferences`` before its offer is applied (aiortc's sender uses the first
negotiated codec). Audio is always Opus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.sdp import SessionDescription

from livesale.media.errors import BadOffer, UnsupportedCodec

#: Video codecs the relay forwards, most preferred first when the offer leaves a choice.
FORWARDED_VIDEO = ("vp8", "h264")


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
    except (ValueError, KeyError, IndexError) as exc:
        raise BadOffer(f"cannot parse the SDP offer: {exc}") from exc
    offer = Offer()
    for media in description.media:
        if media.kind not in ("audio", "video"):
            continue
        if media.kind in offer.kinds:
            raise BadOffer(f"one {media.kind} section at most (no simulcast or multiple tracks)")
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


def choose_video(offered: list[Any], prefer: Any | None = None) -> Any:
    """The video capability to receive from a publisher offering ``offered``.

    ``prefer`` (the show's current codec, when viewers are watching) wins if the offer has it,
    so a reconnecting host keeps every viewer's decoder; otherwise the offer's own order
    decides, among the codecs the relay forwards.
    """
    local = [
        c for c in _capabilities("video") if c.mimeType.split("/")[1].lower() in FORWARDED_VIDEO
    ]
    if prefer is not None:
        for remote in offered:
            if is_codec_compatible(prefer, remote):
                return prefer
    for remote in offered:
        for capability in local:
            if is_codec_compatible(capability, remote):
                return capability
    names = sorted({str(c.mimeType) for c in offered})
    raise UnsupportedCodec(f"offered video codecs {names}; the relay forwards VP8 and H.264")


def video_preferences(capability: Any) -> list[Any]:
    """``setCodecPreferences`` argument pinning video to ``capability`` (with RTX for NACKs)."""
    return [capability, _rtx()]


def audio_preferences(offered: list[Any]) -> list[Any]:
    """Codec preferences pinning audio to Opus; :class:`UnsupportedCodec` when not offered."""
    opus = [c for c in _capabilities("audio") if c.mimeType.lower() == "audio/opus"]
    if not any(str(c.mimeType).lower() == "audio/opus" for c in offered):
        raise UnsupportedCodec("the relay forwards Opus audio only")
    return opus


def accepts(offered: list[Any], capability: Any) -> bool:
    """True when an offer listing ``offered`` can receive ``capability``."""
    return any(is_codec_compatible(capability, remote) for remote in offered)
