"""Keyframe detection and H.264 parameter sets, on real libvpx/libx264 output."""

from __future__ import annotations

import fractions

import av

from livesale.media.bitstream import H264ParameterSets, KeyframeDetector, annexb_nal_units
from tests.media.peers import pattern_frame


def encode(codec: str, count: int) -> list[bytes]:
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 90000)
    encoder.gop_size = 1000
    encoder.options = (
        {"deadline": "realtime", "lag-in-frames": "0"}
        if codec == "libvpx"
        else {"preset": "ultrafast", "tune": "zerolatency"}
    )
    out = []
    for index in range(count):
        frame = pattern_frame(320, 240, index)
        frame.pts = index * 3000
        out += [bytes(p) for p in encoder.encode(frame)]
    return out


def test_vp8_keyframes_are_told_apart() -> None:
    """The first VP8 frame is a keyframe, the next ones are not."""
    detector = KeyframeDetector("VP8")
    flags = [detector.inspect(data)[1] for data in encode("libvpx", 4)]
    assert flags == [True, False, False, False]


def test_h264_idr_frames_are_keyframes() -> None:
    """The first H.264 access unit (SPS, PPS, IDR) is a keyframe, the next ones are not."""
    detector = KeyframeDetector("H264")
    flags = [detector.inspect(data)[1] for data in encode("libx264", 4)]
    assert flags == [True, False, False, False]


def test_h264_idr_without_parameter_sets_gets_the_remembered_ones() -> None:
    """An IDR sent without SPS/PPS is completed with the last ones seen, or not a keyframe."""
    first = encode("libx264", 1)[0]
    units = list(annexb_nal_units(first))
    sps = next(u for u in units if u[0] & 0x1F == 7)
    pps = next(u for u in units if u[0] & 0x1F == 8)
    idr_only = b"".join(b"\x00\x00\x00\x01" + u for u in units if u[0] & 0x1F == 5)

    fresh = H264ParameterSets()
    assert fresh.inspect(idr_only) == (idr_only, False)

    sets = H264ParameterSets()
    assert sets.inspect(first)[1] is True
    completed, keyframe = sets.inspect(idr_only)
    assert keyframe is True
    assert completed == b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps + idr_only


def test_audio_frames_always_count_as_keyframes() -> None:
    """Opus frames are independent: any of them can start a viewer."""
    assert KeyframeDetector("opus").inspect(b"\x01\x02") == (b"\x01\x02", True)
