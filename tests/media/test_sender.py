"""The viewer sender's shortcuts give the same bytes as aiortc's and pylibsrtp's own paths."""

from __future__ import annotations

import os

import pylibsrtp
import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket

from livesale.media._aiortc.sender import extension_template, srtp_protect

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def extensions_map(*uris: str) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=index, uri=uri)
                for index, uri in enumerate(uris, 1)
            ]
        )
    )
    return extensions


@pytest.mark.parametrize(
    "uris", [(MID, ABS_SEND_TIME), (ABS_SEND_TIME, MID), (ABS_SEND_TIME,)], ids=str
)
@pytest.mark.parametrize("mid", ["0", "video-12"])
def test_extension_template_gives_aiortcs_header_extensions(
    uris: tuple[str, ...], mid: str
) -> None:
    """Template plus send time is byte for byte what aiortc's serializer builds, and a packet
    carrying it parses back to the same MID and send time."""
    negotiated = extensions_map(*uris)
    first, before, after = extension_template(negotiated, mid)
    assert after is not None
    for send_time in (0, 1, 0x123456, 0xFFFFFF):
        block = before + send_time.to_bytes(3, "big") + after
        values = HeaderExtensions()
        values.mid = mid
        values.abs_send_time = send_time
        profile, value = negotiated.set(values)
        assert block == profile.to_bytes(2, "big") + (len(value) // 4).to_bytes(2, "big") + value
        packet = RtpPacket.parse(bytes([first, 96]) + bytes(10) + block + b"payload", negotiated)
        assert packet.payload == b"payload"
        assert packet.extensions.abs_send_time == send_time
        assert packet.extensions.mid == (mid if MID in uris else None)


def test_extension_template_without_send_time_is_constant_or_empty() -> None:
    first, before, after = extension_template(extensions_map(MID), "1")
    assert (first & 0x10, after) == (0x10, None)
    packet = RtpPacket.parse(bytes([first, 96]) + bytes(10) + before + b"x", extensions_map(MID))
    assert packet.extensions.mid == "1" and packet.payload == b"x"
    assert extension_template(extensions_map(), "1") == (0x80, b"", None)


@pytest.mark.parametrize(
    "profile",
    [
        pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    ],
)
def test_fast_srtp_protect_matches_pylibsrtp(profile: int) -> None:
    """The same key gives the same ciphertext as ``Session.protect``, which the receiving side
    decrypts back to the packet; a packet too long for the buffer is refused the same way."""
    key = os.urandom(30 if profile == pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80 else 28)

    def session(direction: int) -> pylibsrtp.Session:
        return pylibsrtp.Session(pylibsrtp.Policy(key, direction, srtp_profile=profile))

    ours, theirs = (
        session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
        session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
    )
    receiver = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
    protect = srtp_protect(ours)
    for sequence in range(5):
        packet = bytes([0x80, 96]) + sequence.to_bytes(2, "big") + bytes(8) + os.urandom(1000)
        encrypted = protect(packet)
        assert encrypted == theirs.protect(packet)
        assert receiver.unprotect(encrypted) == packet
    too_long = bytes([0x80, 96]) + bytes(10) + bytes(1400)
    with pytest.raises(ValueError):
        theirs.protect(too_long)
    with pytest.raises(ValueError):
        protect(too_long)
