"""Choosing the publisher's video codec from its offer."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCRtpSender

from livesale.media import offers


async def offered_video(order: list[str]) -> list[object]:
    """The video codecs of a real aiortc offer listing ``order`` (by name) in that order."""
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video", direction="sendonly")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences(
            [c for name in order for c in codecs if c.name.lower() == name]
        )
        await pc.setLocalDescription(await pc.createOffer())
        parsed = offers.parse_offer(pc.localDescription.sdp)
    finally:
        await pc.close()
    assert parsed.video is not None
    return parsed.video


async def test_h264_is_chosen_when_offered_even_after_vp8() -> None:
    """An offer of VP8 then H.264 (as Chromium sends) is answered with H.264: only H.264
    is recorded."""
    chosen = offers.choose_video(await offered_video(["vp8", "h264", "rtx"]))
    assert chosen.mimeType == "video/H264"


async def test_vp8_only_offers_get_vp8() -> None:
    """A publisher offering VP8 alone still goes live (its show is not recorded)."""
    chosen = offers.choose_video(await offered_video(["vp8", "rtx"]))
    assert chosen.mimeType == "video/VP8"


async def test_the_shows_codec_wins_for_a_reconnecting_host() -> None:
    """With viewers watching VP8, a host offering both keeps VP8 (viewers' decoders stay)."""
    offered = await offered_video(["vp8", "h264", "rtx"])
    vp8 = next(c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8")
    assert offers.choose_video(offered, vp8).mimeType == "video/VP8"
