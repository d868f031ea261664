"""Media counters, kept as plain integers and exported to Prometheus at scrape time.

The forwarding path runs once per frame per viewer; a ``prometheus_client`` counter takes a lock
on every ``inc()``, so the relay bumps attributes of :class:`MediaStats` instead and
:class:`MediaCollector` reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class MediaStats:
    """Counters of one relay process."""

    publishers: int = 0
    viewers: int = 0
    #: Shows this process pulls from their origin node (``--node-url``) for its own viewers.
    pulls: int = 0
    #: Encoded frames (``av.Packet``) handed to viewer senders, per media kind.
    video_frames_forwarded: int = 0
    audio_frames_forwarded: int = 0
    bytes_forwarded: int = 0
    #: Picture-loss requests sent to publishers (after rate limiting and coalescing).
    keyframe_requests: int = 0
    #: Picture-loss / FIR requests received from viewers.
    viewer_keyframe_requests: int = 0
    #: Viewers flushed and re-synchronised on a keyframe because they fell behind.
    viewer_resyncs: int = 0
    #: Packets sent again because a viewer reported them lost (NACK).
    retransmissions: int = 0
    #: Viewer sessions closed by the relay (ICE failure, silence, codec change, shutdown).
    viewers_dropped: int = 0
    publisher_losses: int = 0


class MediaCollector(Collector):
    """Exports a :class:`MediaStats` as ``livesale_media_*`` metrics."""

    def __init__(self, stats: MediaStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """One sample per counter, read from the live :class:`MediaStats`."""
        s = self.stats
        yield GaugeMetricFamily(
            "livesale_media_publishers", "Publishers (WHIP sessions) connected", value=s.publishers
        )
        yield GaugeMetricFamily(
            "livesale_media_viewers", "Viewers (WHEP sessions) connected", value=s.viewers
        )
        yield GaugeMetricFamily(
            "livesale_media_pulls",
            "Shows pulled over WHEP from the node holding their publisher, for this one's viewers",
            value=s.pulls,
        )
        packets = CounterMetricFamily(
            "livesale_media_packets_forwarded",
            "Encoded media packets (whole frames) handed to viewer senders, without transcoding",
            labels=["kind"],
        )
        packets.add_metric(["video"], s.video_frames_forwarded)
        packets.add_metric(["audio"], s.audio_frames_forwarded)
        yield packets
        yield CounterMetricFamily(
            "livesale_media_bytes_forwarded",
            "Encoded media bytes handed to viewer senders",
            value=s.bytes_forwarded,
        )
        yield CounterMetricFamily(
            "livesale_media_keyframe_requests",
            "Picture-loss requests sent to publishers (rate-limited, coalesced)",
            value=s.keyframe_requests,
        )
        yield CounterMetricFamily(
            "livesale_media_viewer_keyframe_requests",
            "Picture-loss and FIR requests received from viewers",
            value=s.viewer_keyframe_requests,
        )
        yield CounterMetricFamily(
            "livesale_media_viewer_resyncs",
            "Viewers that fell behind, flushed and re-synchronised on the next keyframe",
            value=s.viewer_resyncs,
        )
        yield CounterMetricFamily(
            "livesale_media_retransmissions",
            "Packets sent again to viewers that reported them lost (NACK), from sender history",
            value=s.retransmissions,
        )
        yield CounterMetricFamily(
            "livesale_media_viewers_dropped",
            "Viewer sessions closed by the relay rather than by the viewer",
            value=s.viewers_dropped,
        )
        yield CounterMetricFamily(
            "livesale_media_publisher_losses",
            "Upstream gaps retransmission did not repair in time",
            value=s.publisher_losses,
        )
