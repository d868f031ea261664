"""Frame assembly on the publisher's receivers: marker-bit release, no audio prefetch, loss."""

from __future__ import annotations

from dataclasses import dataclass

from livesale.media.jitter import AudioAssembler, VideoAssembler


@dataclass
class Pkt:
    sequence_number: int
    timestamp: int
    marker: int = 0
    ssrc: int = 1234
    data: bytes = b""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frame(seq: int, ts: int, parts: int) -> list[Pkt]:
    """One frame of ``parts`` packets starting at ``seq``; payloads name their position."""
    return [Pkt(seq + i, ts, int(i == parts - 1), data=f"{ts}:{i};".encode()) for i in range(parts)]


def assembler(
    clock: Clock | None = None,
) -> tuple[VideoAssembler, list[tuple[bytes, int]], list[int]]:
    frames: list[tuple[bytes, int]] = []
    losses: list[int] = []
    video = VideoAssembler(
        lambda data, ts, ssrc: frames.append((data, ts)),
        lambda: losses.append(1),
        clock=clock or Clock(),
    )
    return video, frames, losses


def test_video_frame_is_released_on_its_marker_packet() -> None:
    """A frame goes out when its marker packet arrives, not when the next frame starts."""
    video, frames, _ = assembler()
    video.add(Pkt(99, 0, marker=1))  # the boundary the assembler starts after
    first = frame(100, 3000, 3)
    assert video.add(first[0]) == (False, None)
    video.add(first[1])
    assert frames == []
    video.add(first[2])
    assert frames == [(b"3000:0;3000:1;3000:2;", 3000)]


def test_video_reorders_and_releases_every_completed_frame() -> None:
    """Out-of-order packets wait for the gap to fill; then all completed frames go, in order."""
    video, frames, losses = assembler()
    video.add(Pkt(9, 0, marker=1))
    a, b = frame(10, 3000, 2), frame(12, 6000, 2)
    for packet in (a[1], b[0], b[1]):
        video.add(packet)
    assert frames == []
    video.add(a[0])  # the retransmission arrives
    assert [ts for _, ts in frames] == [3000, 6000]
    assert losses == []


def test_video_starts_on_a_frame_boundary() -> None:
    """Packets before the first marker bit (a frame joined midway) are never released."""
    video, frames, _ = assembler()
    for packet in frame(50, 0, 3)[1:]:
        video.add(packet)
    assert frames == []
    for packet in frame(53, 3000, 2):
        video.add(packet)
    assert [ts for _, ts in frames] == [3000]


def test_unrepaired_loss_is_given_up_and_reported() -> None:
    """A gap retransmission did not fill in time drops the broken frame and reports a loss."""
    clock = Clock()
    video, frames, losses = assembler(clock)
    video.add(Pkt(9, 0, marker=1))
    lost = frame(10, 3000, 3)
    video.add(lost[0])
    video.add(lost[2])  # lost[1] never comes
    nxt = frame(13, 6000, 2)
    video.add(nxt[0])
    clock.now = 1.0
    video.add(nxt[1])
    assert losses == [1]
    # The broken frame is dropped; the complete one after it goes out (viewers are re-gated
    # on the loss, so it reaches them only if it is a keyframe).
    assert [ts for _, ts in frames] == [6000]
    for packet in frame(15, 9000, 2):
        video.add(packet)
    assert [ts for _, ts in frames] == [6000, 9000]


def test_new_timestamp_ends_a_frame_whose_marker_is_missing() -> None:
    """A packet with a new timestamp closes the previous frame even without its marker."""
    video, frames, _ = assembler()
    video.add(Pkt(9, 0, marker=1))
    video.add(Pkt(10, 3000))
    video.add(Pkt(11, 3000))
    video.add(Pkt(12, 6000, marker=1))
    assert [ts for _, ts in frames] == [3000, 6000]


def test_audio_is_released_on_arrival_without_prefetch() -> None:
    """Each audio packet goes out as it arrives; a late one is dropped, never reordered."""
    out: list[int] = []
    audio = AudioAssembler(lambda data, ts, ssrc: out.append(ts))
    audio.add(Pkt(1, 960))
    assert out == [960]
    audio.add(Pkt(3, 2880))
    audio.add(Pkt(2, 1920))
    audio.add(Pkt(3, 2880))
    assert out == [960, 2880]
