"""What the relay needs to know about encoded frames, without decoding them.

Pure functions and small classes: no I/O, no aiortc. The relay only has to tell keyframes
apart (so a viewer starts on one) and, for H.264, make sure a keyframe carries its parameter
sets (SPS/PPS) even when the publisher sent them only once.
"""

from __future__ import annotations

from collections.abc import Iterator

VP8 = "vp8"
H264 = "h264"
OPUS = "opus"

# H.264 NAL unit types (ITU-T H.264 table 7-1).
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8

_VP8_KEYFRAME_START_CODE = b"\x9d\x01\x2a"


def vp8_is_keyframe(frame: bytes) -> bool:
    """True when ``frame`` (a whole depayloaded VP8 frame) is a keyframe.

    RFC 6386 §9.1: bit 0 of the frame tag is 0 for a keyframe, and a keyframe's tag is followed
    by the start code 0x9d 0x01 0x2a.
    """
    return len(frame) >= 6 and not frame[0] & 1 and frame[3:6] == _VP8_KEYFRAME_START_CODE


def annexb_nal_units(frame: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex-B byte stream, without their start codes."""
    start = frame.find(b"\x00\x00\x01")
    while start != -1:
        start += 3
        end = frame.find(b"\x00\x00\x01", start)
        if end == -1:
            yield frame[start:]
            return
        # A four-byte start code leaves a zero byte at the end of the previous unit.
        yield frame[start : end - 1] if frame[end - 1] == 0 else frame[start:end]
        start = end


class H264ParameterSets:
    """Remembers the latest SPS and PPS and tells keyframes apart.

    Browsers repeat SPS/PPS before every IDR picture; some encoders send them only at the
    start. :meth:`inspect` prepends the remembered sets to an IDR frame that lacks them, so a
    viewer that starts on that frame can decode it.
    """

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None

    def inspect(self, frame: bytes) -> tuple[bytes, bool]:
        """Return ``(frame, is_keyframe)``, the frame completed with SPS/PPS when needed.

        A frame counts as a keyframe only when it holds an IDR picture and SPS/PPS are known
        (in the frame or from earlier); otherwise no decoder could start on it.
        """
        has_idr = has_sps = has_pps = False
        for unit in annexb_nal_units(frame):
            if not unit:
                continue
            nal_type = unit[0] & 0x1F
            if nal_type == NAL_IDR:
                has_idr = True
            elif nal_type == NAL_SPS:
                has_sps = True
                self.sps = unit
            elif nal_type == NAL_PPS:
                has_pps = True
                self.pps = unit
        if not has_idr:
            return frame, False
        if has_sps and has_pps:
            return frame, True
        if self.sps is None or self.pps is None:
            return frame, False
        prefix = b""
        if not has_sps:
            prefix += b"\x00\x00\x00\x01" + self.sps
        if not has_pps:
            prefix += b"\x00\x00\x00\x01" + self.pps
        return prefix + frame, True


class KeyframeDetector:
    """Per-stream keyframe test for the codec a publisher sends (VP8, H.264 or Opus)."""

    def __init__(self, codec: str) -> None:
        self.codec = codec.lower()
        self._h264 = H264ParameterSets() if self.codec == H264 else None

    def inspect(self, frame: bytes) -> tuple[bytes, bool]:
        """Return ``(frame, is_keyframe)``; audio frames always count as keyframes."""
        if self.codec == VP8:
            return frame, vp8_is_keyframe(frame)
        if self._h264 is not None:
            return self._h264.inspect(frame)
        return frame, True
