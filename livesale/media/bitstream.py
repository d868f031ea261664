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


class _Bits:
    """Reads an H.264 RBSP bit by bit (ITU-T H.264 §7.2: u(n), ue(v), se(v))."""

    def __init__(self, rbsp: bytes) -> None:
        self._data = rbsp
        self._pos = 0

    def u(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self._pos >> 3
            if byte >= len(self._data):
                raise ValueError("the SPS ends early")
            value = value << 1 | (self._data[byte] >> (7 - (self._pos & 7))) & 1
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code in the SPS")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _rbsp(nal: bytes) -> bytes:
    """``nal`` without its emulation-prevention bytes (H.264 §7.4.1: 0x000003 → 0x0000)."""
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


#: Profiles whose SPS carries chroma format and bit depths (H.264 §7.3.2.1.1).
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_dimensions(sps: bytes) -> tuple[int, int]:
    """``(width, height)`` of the pictures an SPS NAL unit (header byte included) describes,
    after frame cropping. ``ValueError`` when it cannot be read."""
    bits = _Bits(_rbsp(sps))
    bits.u(8)  # NAL header
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.u(1)  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if bits.u(1):
                    last = following = 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    left = right = top = bottom = 0
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
    unit_x = 1 if chroma_format in (0, 3) else 2
    unit_y = (2 - frame_mbs_only) * (2 if chroma_format == 1 else 1)
    width = width_mbs * 16 - (left + right) * unit_x
    height = (2 - frame_mbs_only) * height_units * 16 - (top + bottom) * unit_y
    if width <= 0 or height <= 0:
        raise ValueError("the SPS crops the picture away")
    return width, height
