"""Fragmented MP4 for HLS, muxed from encoded packets with PyAV: no decoding, no encoding.

Each segment of a recording is muxed on its own (:func:`mux_segment`): an MP4 muxer in
fragmented mode (``empty_moov``) turns one segment's H.264 and Opus packets into
``ftyp moov`` (the init segment, ``#EXT-X-MAP``) and one ``moof mdat`` (the media segment,
RFC 8216 §3.3). A muxer of its own per segment lets the recorder choose every cut (always at a
keyframe) and know every duration; the muxer counts each segment's time from zero, so the
fragment's decode times (``tfdt``) and sequence number (``mfhd``) are set afterwards to their
place on the recording's timeline (ISO/IEC 14496-12 §8.8.5, §8.8.12).

Runs in the recorder's thread: plain bytes in, bytes out, no I/O.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av

VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
VIDEO_TRACK = 1
AUDIO_TRACK = 2
#: RFC 7845 §5.1 identification header: version 1, stereo, 312 samples of pre-skip (libopus'
#: usual), 48 kHz, no gain, channel mapping family 0. The MP4 muxer writes it as ``dOps``.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, AUDIO_CLOCK, 0, 0)
_MOVFLAGS = "empty_moov+default_base_moof+skip_trailer"


@dataclass(frozen=True)
class VideoParams:
    """What the init segment says of the H.264 stream (from its SPS and PPS)."""

    width: int
    height: int
    #: Annex-B SPS and PPS (the muxer writes them as ``avcC``).
    extradata: bytes


@dataclass
class Sample:
    """One encoded frame on the recording's timeline (90 kHz video, 48 kHz audio)."""

    data: bytes
    pts: int
    duration: int
    keyframe: bool = True


class MuxError(Exception):
    """PyAV could not mux a segment (the bitstream is not what its parameters say)."""


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """``(type, offset, size)`` of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    found: list[tuple[bytes, int, int]] = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, start + 8)
            header = 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise MuxError(f"a truncated {kind!r} box")
        found.append((kind, start, size))
        start += size
    return found


def split(data: bytes) -> tuple[bytes, bytes]:
    """``(init, fragment)``: ``ftyp moov`` and the ``moof mdat`` pairs after it."""
    boxes = _boxes(data)
    cut = next((offset for kind, offset, _ in boxes if kind == b"moof"), None)
    if cut is None or not any(kind == b"moov" for kind, _, _ in boxes):
        raise MuxError("the muxer wrote no moov or no moof")
    return data[:cut], data[cut:]


def place(fragment: bytes, sequence: int, starts: dict[int, int]) -> bytes:
    """``fragment`` with its ``mfhd`` sequence number and each track's ``tfdt`` set:
    ``starts`` maps a track id to its first decode time, in the track's timescale."""
    out = bytearray(fragment)
    for kind, offset, size in _boxes(fragment):
        if kind != b"moof":
            continue
        for inner, inner_offset, inner_size in _boxes(fragment, offset + 8, offset + size):
            if inner == b"mfhd":
                struct.pack_into(">I", out, inner_offset + 12, sequence)
            elif inner == b"traf":
                _place_traf(out, fragment, inner_offset, inner_size, starts)
    return bytes(out)


def _place_traf(
    out: bytearray, data: bytes, offset: int, size: int, starts: dict[int, int]
) -> None:
    track = None
    for kind, box, _ in _boxes(data, offset + 8, offset + size):
        if kind == b"tfhd":
            (track,) = struct.unpack_from(">I", data, box + 12)
        elif kind == b"tfdt" and track in starts:
            version = data[box + 8]
            if version == 1:
                (base,) = struct.unpack_from(">Q", data, box + 12)
                struct.pack_into(">Q", out, box + 12, base + starts[track])
            else:
                (base,) = struct.unpack_from(">I", data, box + 12)
                struct.pack_into(">I", out, box + 12, (base + starts[track]) & 0xFFFFFFFF)


def mux_segment(
    video: VideoParams, frames: Sequence[Sample], sounds: Sequence[Sample], sequence: int
) -> tuple[bytes, bytes]:
    """``(init, segment)`` of one segment: ``frames`` (H.264 Annex B, the first a keyframe) and
    ``sounds`` (Opus packets), their timestamps kept. :class:`MuxError` if PyAV refuses them."""
    if not frames or not frames[0].keyframe:
        raise MuxError("a segment starts with a keyframe")
    buffer = io.BytesIO()
    try:
        container = av.open(buffer, "w", format="mp4", options={"movflags": _MOVFLAGS})
        try:
            vstream = container.add_stream("h264")
            vstream.width, vstream.height = video.width, video.height
            vstream.time_base = Fraction(1, VIDEO_CLOCK)
            vstream.codec_context.extradata = video.extradata
            astream = container.add_stream("opus", rate=AUDIO_CLOCK)
            astream.codec_context.extradata = OPUS_HEAD
            astream.time_base = Fraction(1, AUDIO_CLOCK)
            base_v = frames[0].pts
            base_a = sounds[0].pts if sounds else 0
            # In decode order across both tracks, as an interleaving muxer would emit them.
            queue = [(s.pts / VIDEO_CLOCK, 0, s) for s in frames]
            queue += [(s.pts / AUDIO_CLOCK, 1, s) for s in sounds]
            queue.sort(key=lambda item: (item[0], item[1]))
            for _, kind, sample in queue:
                packet = av.Packet(sample.data)
                if kind == 0:
                    packet.stream = vstream
                    packet.time_base = vstream.time_base
                    packet.pts = packet.dts = sample.pts - base_v
                    packet.is_keyframe = sample.keyframe
                else:
                    packet.stream = astream
                    packet.time_base = astream.time_base
                    packet.pts = packet.dts = sample.pts - base_a
                packet.duration = sample.duration
                container.mux(packet)
        finally:
            container.close()
    except (av.FFmpegError, ValueError) as exc:
        raise MuxError(f"muxing a segment failed: {exc}") from exc
    init, fragment = split(buffer.getvalue())
    starts = {VIDEO_TRACK: base_v}
    if sounds:
        starts[AUDIO_TRACK] = base_a
    return init, place(fragment, sequence, starts)
