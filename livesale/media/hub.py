"""The media hub: every WHIP/WHEP session of this process and the peer connections behind them.

The hub owns each ``RTCPeerConnection`` from the moment it is created until it is closed, which
happens on ``DELETE`` (:meth:`MediaHub.end`), when a host reconnects (the old publisher),
on ICE failure, when a session never connects or falls silent past a timeout, when its show is
no longer live, and at shutdown (:meth:`MediaHub.aclose`). Every background task it starts is
kept in a set and awaited on shutdown, so nothing leaks.

HTTP concerns (auth, content types, the show's state) belong to :mod:`livesale.media.routes`.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import OperationError

from livesale import background
from livesale.config import DEFAULT_WHEP_SESSIONS_PER_ADDRESS
from livesale.media import offers
from livesale.media._aiortc import install_sender, redirect_keyframe_requests
from livesale.media.errors import (
    BadOffer,
    NoPublisher,
    RelayClosed,
    TooManyViewers,
    UnsupportedCodec,
    WebRtcFull,
)
from livesale.media.ice import (
    IceConfig,
    restore_host_addresses,
    rtc_configuration,
    use_host_addresses,
)
from livesale.media.metrics import MediaStats
from livesale.media.recording import Recordings
from livesale.media.relay import Broadcast, RelayTrack, Source

log = logging.getLogger("livesale.media")

PUBLISHER = "publisher"
VIEWER = "viewer"
#: This process pulling a show from the node holding its publisher, for its own viewers.
PULL = "pull"

PausedCallback = Callable[[str, bool], Awaitable[None]]
LiveCheck = Callable[[str], Awaitable[bool]]
#: Sends a pull's offer to the origin node's WHEP endpoint: ``(answer, session URL)``.
PullSignal = Callable[[str], Awaitable[tuple[str, str]]]
#: Ends a pull's session at the origin node (``DELETE`` on its URL).
HangUp = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class HubTimings:
    """The hub's timeouts, in seconds."""

    #: A session whose ICE/DTLS has not connected by then is closed.
    connect_timeout: float = 20.0
    #: A publisher silent this long pauses the show (viewers stay connected).
    pause_after: float = 2.0
    #: A publisher silent this long, or a viewer sending no receiver reports this long while
    #: media flows, is considered disconnected and closed.
    silence_timeout: float = 15.0
    #: Minimum spacing of picture-loss requests sent to a publisher.
    keyframe_interval: float = 0.4
    #: How often the watchdog looks at every session.
    tick: float = 0.5
    #: How often each show with sessions is checked to still be live.
    live_check_every: float = 5.0
    #: A pull with no viewer left is ended after this long (one who comes back soon finds
    #: the show still pulled).
    pull_linger: float = 30.0


@dataclass(eq=False)
class Session:
    """One WHIP (publisher) or WHEP (viewer) session; ``id`` is its unguessable URL part."""

    id: str
    show_id: str
    role: str
    pc: RTCPeerConnection
    broadcast: Broadcast
    answer: str = ""
    created: float = field(default_factory=time.monotonic)
    connected_at: float | None = None
    closed: bool = False
    source: Source | None = None
    tracks: list[RelayTrack] = field(default_factory=list)
    #: Senders whose receiver reports show the viewer is still there.
    senders: list[Any] = field(default_factory=list)
    #: The client address a viewer's offer came from (counted against its address's cap).
    client: str | None = None
    #: A pull's session at the origin node, and how it is ended there.
    pulled_from: str = ""
    hang_up: HangUp | None = None
    #: Since when a pull has had no viewer.
    idle_since: float | None = None

    @property
    def etag(self) -> str:
        """An entity tag for the session resource (WHIP, RFC 9725 §4.3.1)."""
        return f'"{self.id[:16]}"'


class MediaHub:
    """Sessions, broadcasts and peer connections of this process's relay."""

    def __init__(
        self,
        ice: IceConfig,
        *,
        stats: MediaStats | None = None,
        on_paused: PausedCallback | None = None,
        is_live: LiveCheck | None = None,
        timings: HubTimings | None = None,
        viewers_per_address: int = DEFAULT_WHEP_SESSIONS_PER_ADDRESS,
        max_viewers: int = 0,
        recordings: Recordings | None = None,
        session_prefix: str = "",
    ) -> None:
        self.ice = ice
        #: Starts every session id (``w2.`` on worker 2): who holds a session, from its URL.
        self.session_prefix = session_prefix
        #: Every show's recording (``None``: nothing is recorded); closed with the hub.
        self.recordings = recordings
        self.viewers_per_address = viewers_per_address
        #: Viewer sessions this process relays to at once, joining included (0: no cap).
        self.max_viewers = max_viewers
        self._viewers_total = 0
        #: Viewer sessions per client address, counted from the offer on (joining included).
        self._viewers_of: Counter[str] = Counter()
        self.stats = stats or MediaStats()
        self.timings = timings or HubTimings()
        self._on_paused = on_paused
        self._is_live = is_live
        self.sessions: dict[str, Session] = {}
        self.broadcasts: dict[str, Broadcast] = {}
        #: Pulls being set up, one per show whichever number of viewers wait for it.
        self._pulls: dict[str, asyncio.Task[None]] = {}
        #: The ``DELETE`` of ended pulls' sessions at their origin nodes, under way.
        self._hang_ups: set[asyncio.Task[None]] = set()
        self._pcs: set[RTCPeerConnection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        #: Called (in order) at the end of :meth:`aclose`, e.g. to unregister metrics.
        self.on_close: list[Callable[[], None]] = []
        #: Awaited first in :meth:`aclose`: what was started beside the hub (the origins).
        self.closers: list[Callable[[], Awaitable[None]]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Apply ``--ice-host`` and start the watchdog (the caller has checked aiortc's
        internals: :func:`livesale.media._aiortc.check`)."""
        use_host_addresses(self.ice.hosts)
        if self.recordings is not None:
            await self.recordings.start()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def aclose(self) -> None:
        """Close every session and peer connection and await every task the hub started."""
        if self._closing:
            return
        self._closing = True
        for closer in self.closers:
            await closer()
        if self._watchdog is not None:
            await background.stop([self._watchdog])
        await asyncio.gather(
            *(self._close(s, "shutdown") for s in list(self.sessions.values())),
            return_exceptions=True,
        )
        for pc in list(self._pcs):
            await pc.close()
            self._pcs.discard(pc)
        for broadcast in list(self.broadcasts.values()):
            await broadcast.aclose()
        self.broadcasts.clear()
        while self._tasks:
            tasks = list(self._tasks)
            await background.stop(tasks)
            self._tasks.difference_update(tasks)
        if self.recordings is not None:
            await self.recordings.aclose()
        restore_host_addresses()
        for callback in self.on_close:
            callback()

    @property
    def peer_connections(self) -> int:
        """Peer connections the hub holds open."""
        return len(self._pcs)

    @property
    def tasks(self) -> int:
        """Background tasks the hub has started and not yet seen finish (watchdog excluded)."""
        return len(self._tasks) + sum(len(b._tasks) for b in self.broadcasts.values())

    # -- queries ---------------------------------------------------------------------------

    def session(self, session_id: str, show_id: str | None = None) -> Session | None:
        """The open session ``session_id`` (of ``show_id`` when given), or ``None``."""
        session = self.sessions.get(session_id)
        if session is None or (show_id is not None and session.show_id != show_id):
            return None
        return session

    def published(self) -> set[str]:
        """The shows whose publisher is connected to this process (or is connecting)."""
        return {s.show_id for s in self.sessions.values() if s.role == PUBLISHER}

    def relayed(self) -> set[str]:
        """The shows this process pulls from another node (or is starting to)."""
        pulling = {s.show_id for s in self.sessions.values() if s.role == PULL}
        return pulling | set(self._pulls)

    def orphaned(self) -> set[str]:
        """Shows whose viewers here have no feed: their pull ended (its origin node died, or
        the host moved) or their publisher here went, and nothing has taken its place. (The
        caller pulls those whose host now publishes to another node.)"""
        watched = {s.show_id for s in self.sessions.values() if s.role == VIEWER}
        return {
            show_id
            for show_id in watched
            if (b := self.broadcasts.get(show_id)) is not None
            and b.source is None
            and show_id not in self._pulls
        }

    def fed(self, show_id: str) -> bool:
        """True when a publisher or a pull feeds ``show_id`` here now."""
        broadcast = self.broadcasts.get(show_id)
        return broadcast is not None and broadcast.source is not None

    def publisher_age(self, show_id: str) -> float:
        """Seconds since this process's newest publisher of ``show_id`` offered (0: none)."""
        created = [
            s.created
            for s in self.sessions.values()
            if s.show_id == show_id and s.role == PUBLISHER
        ]
        return time.monotonic() - max(created) if created else 0.0

    def can_play(self, show_id: str) -> bool:
        """True when a WHEP viewer of ``show_id`` would get media now or on the host's return."""
        broadcast = self.broadcasts.get(show_id)
        return broadcast is not None and (
            broadcast.source is not None or broadcast.codec is not None
        )

    # -- WHIP ------------------------------------------------------------------------------

    async def publish(self, show_id: str, offer_sdp: str) -> Session:
        """Answer a publisher's offer; it replaces the show's current publisher, if any.

        The caller must have checked the host's credentials and that the show is live. The
        answer is in ``session.answer`` with every ICE candidate gathered (RFC 9725 §4.2).
        Viewers already watching keep their connections: they resume on the new publisher's
        first keyframe, unless its video codec differs (then they are closed to renegotiate).
        """
        self._check_open()
        offer = offers.parse_offer(offer_sdp)
        broadcast = self._broadcast(show_id)
        watching = broadcast.video.tracks
        prefer = broadcast.codec if watching else None
        video = offers.choose_video(offer.video, prefer) if offer.video is not None else None
        audio = offers.audio_preferences(offer.audio) if offer.audio is not None else None

        pc = self._peer_connection()
        session = Session(self._new_id(), show_id, PUBLISHER, pc, broadcast)
        source = Source(broadcast, video)
        session.source = source
        try:
            video_receiver = audio_receiver = None
            if video is not None:
                transceiver = pc.addTransceiver("video", direction="recvonly")
                transceiver.setCodecPreferences(offers.video_preferences(video))
                video_receiver = transceiver.receiver
            if audio is not None:
                transceiver = pc.addTransceiver("audio", direction="recvonly")
                transceiver.setCodecPreferences(audio)
                audio_receiver = transceiver.receiver
            source.attach(video_receiver, audio_receiver)
            session.answer = await self._negotiate(pc, offer_sdp)
        except BaseException:
            await self._discard(pc)
            raise

        previous = [
            s
            for s in self.sessions.values()
            if s.show_id == show_id and s.role in (PUBLISHER, PULL)
        ]
        if video is not None and broadcast.codec is not None and broadcast.codec != video:
            # A different codec: viewers' decoders cannot follow, they must renegotiate.
            for viewer in [s for s in self.sessions.values() if s.broadcast is broadcast]:
                if viewer.role == VIEWER:
                    await self._close(viewer, "codec-changed")
        if broadcast.pulled:
            # The host came to this node: the show is recorded and its pauses announced here.
            broadcast.pulled = False
            if self.recordings is not None and broadcast.recorder is None:
                broadcast.recorder = self.recordings.recorder(show_id)
        broadcast.set_source(source)
        self._register(session)
        for old in previous:
            log.info("show %s: %s %s replaced", show_id, old.role, old.id[:8])
            await self._close(old, "replaced")
        return session

    # -- pulls from another node -----------------------------------------------------------

    async def pull(self, show_id: str, signal: PullSignal, hang_up: HangUp) -> None:
        """Relay ``show_id`` here from the node holding its publisher, as a WHEP player of
        that node: ``signal`` sends this hub's offer to the node's WHEP endpoint.

        Returns once the pull is negotiated (its media follows), at once when the show is
        already fed here. Viewers asking at the same time share one pull, and a viewer who
        gives up does not cancel it. Failures are the origin's answer (:class:`NoPublisher`
        while it has no media yet) or :class:`~livesale.errors.Unavailable`.
        """
        self._check_open()
        broadcast = self.broadcasts.get(show_id)
        if broadcast is not None and broadcast.source is not None:
            return
        task = self._pulls.get(show_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._pull(show_id, signal, hang_up))
            self._pulls[show_id] = task
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._pull_done, show_id))
        await asyncio.shield(task)

    async def unpublish(self, show_id: str) -> None:
        """The show's host publishes to another node or worker now: end the publisher here.
        Its viewers here stay, paused, until the show is pulled from there."""
        broadcast = self.broadcasts.get(show_id)
        if broadcast is not None:
            broadcast.pulled = True
            broadcast.recorder = None  # the new origin records the show
        for session in [s for s in self.sessions.values() if s.show_id == show_id]:
            if session.role == PUBLISHER:
                await self._close(session, "moved")

    async def close_pulls(self, timeout: float = 2.0) -> None:
        """End every pull, and give their ``DELETE`` at the origin nodes ``timeout`` seconds
        (the origin closes a session it is not told about once it falls silent)."""
        for session in [s for s in self.sessions.values() if s.role == PULL]:
            await self._close(session, "shutdown")
        if self._hang_ups:
            await asyncio.wait(list(self._hang_ups), timeout=timeout)

    def _hang_up(self, hang_up: HangUp, location: str) -> None:
        task = asyncio.ensure_future(hang_up(location))
        self._hang_ups.add(task)
        self._tasks.add(task)
        task.add_done_callback(self._hang_ups.discard)
        task.add_done_callback(self._task_done)

    def _pull_done(self, show_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pulls.get(show_id) is task:
            del self._pulls[show_id]
        if not task.cancelled():
            task.exception()  # its waiters have it; a pull no one waits for any more is done

    async def _pull(self, show_id: str, signal: PullSignal, hang_up: HangUp) -> None:
        pc = self._peer_connection()
        location = ""
        try:
            video = pc.addTransceiver("video", direction="recvonly")
            video.setCodecPreferences(offers.forwarded_video_preferences())
            audio = pc.addTransceiver("audio", direction="recvonly")
            audio.setCodecPreferences(offers.opus())
            await pc.setLocalDescription(await pc.createOffer())
            answer_sdp, location = await signal(str(pc.localDescription.sdp))
            try:
                answer = offers.parse_offer(answer_sdp)
                codec = offers.choose_video(answer.video) if answer.video is not None else None
            except (BadOffer, UnsupportedCodec) as exc:
                raise NoPublisher(f"the origin node's answer is unusable: {exc.detail}") from exc
            self._check_open()
            broadcast = self._broadcast(show_id)
            if broadcast.source is not None:  # the host published here meanwhile
                raise _Superseded
            if not broadcast.pulled:
                broadcast.pulled = True
                broadcast.recorder = None  # the origin node records the show
            source = Source(broadcast, codec)
            source.attach(
                video.receiver if answer.video is not None else None,
                audio.receiver if answer.audio is not None else None,
            )
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
            except Exception as exc:
                raise NoPublisher(f"the origin node's answer cannot be applied: {exc}") from exc
        except BaseException as exc:
            await self._discard(pc)
            if location:
                self._hang_up(hang_up, location)
            if isinstance(exc, _Superseded):
                return
            if show_id in self.broadcasts and not self.fed(show_id):
                await self._drop_if_unused(self.broadcasts[show_id])
            raise
        session = Session(self._new_id(), show_id, PULL, pc, broadcast)
        session.source = source
        session.pulled_from = location
        session.hang_up = hang_up
        broadcast.set_source(source)
        self._register(session)
        log.info("show %s: pulled from %s", show_id, location.split("/whep/")[0])

    # -- WHEP ------------------------------------------------------------------------------

    async def play(self, show_id: str, offer_sdp: str, client: str | None = None) -> Session:
        """Answer a viewer's offer with the show's media, pinned to the publisher's codecs.

        :class:`NoPublisher` when the show has never had a publisher in this process. A viewer
        joining while the host is away is answered and gets video when the host returns.
        :class:`TooManyViewers` when ``client`` (the offer's address) already holds
        ``viewers_per_address`` sessions, those still joining included; :class:`WebRtcFull`
        (503) when this process already relays to ``max_viewers`` of them.
        """
        self._check_open()
        if client is None:
            return await self._play(show_id, offer_sdp, None)
        if self.max_viewers and self._viewers_total >= self.max_viewers:
            raise WebRtcFull(
                f"this server relays at most {self.max_viewers} WebRTC players; the show's"
                " HLS carries the rest",
                retry_after=round(self.timings.connect_timeout),
            )
        if self._viewers_of[client] >= self.viewers_per_address:
            raise TooManyViewers(
                f"at most {self.viewers_per_address} players per address",
                retry_after=round(self.timings.connect_timeout),
            )
        # Counted before the first await, so concurrent offers cannot all pass the check.
        self._viewers_of[client] += 1
        self._viewers_total += 1
        try:
            return await self._play(show_id, offer_sdp, client)
        except BaseException:
            self._forget_viewer(client)
            raise

    async def _play(self, show_id: str, offer_sdp: str, client: str | None) -> Session:
        broadcast = self.broadcasts.get(show_id)
        if broadcast is None or not self.can_play(show_id):
            raise NoPublisher(f"show {show_id} has no publisher yet")
        offer = offers.parse_offer(offer_sdp)
        if offer.video is not None and broadcast.codec is not None:
            if not offers.accepts(offer.video, broadcast.codec):
                raise UnsupportedCodec(
                    f"the show is sent as {broadcast.codec.mimeType}, which the offer lacks"
                )
        audio = offers.audio_preferences(offer.audio) if offer.audio is not None else None

        pc = self._peer_connection()
        session = Session(self._new_id(), show_id, VIEWER, pc, broadcast, client=client)
        pairs: list[tuple[Any, RelayTrack]] = []
        try:
            if offer.video is not None and broadcast.codec is not None:
                track = RelayTrack("video", self.stats, broadcast.keyframes.request)
                transceiver = pc.addTransceiver(track, direction="sendonly")
                # Pin before the offer is applied: the sender uses the first common codec.
                transceiver.setCodecPreferences(offers.video_preferences(broadcast.codec))
                redirect_keyframe_requests(transceiver.sender, broadcast.viewer_keyframe_request)
                install_sender(transceiver.sender, track, self.stats)
                pairs.append((transceiver, track))
            if audio is not None:
                track = RelayTrack("audio", self.stats, broadcast.keyframes.request)
                transceiver = pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(audio)
                install_sender(transceiver.sender, track, self.stats)
                pairs.append((transceiver, track))
            session.answer = await self._negotiate(pc, offer_sdp)
        except BaseException:
            for _, track in pairs:
                track.stop()
            await self._discard(pc)
            raise
        if self._closing or broadcast is not self.broadcasts.get(show_id):
            for _, track in pairs:
                track.stop()
            await self._discard(pc)
            raise NoPublisher(f"show {show_id} ended while the viewer was joining")

        for transceiver, track in pairs:
            if transceiver.mid is None:
                track.stop()  # the offer had no section for it
                continue
            session.tracks.append(track)
            session.senders.append(transceiver.sender)
            channel = broadcast.video if track.kind == "video" else broadcast.audio
            channel.add(track)
        self._register(session)
        # A joining viewer always triggers one keyframe request (coalesced with others).
        broadcast.keyframes.request()
        return session

    # -- ending sessions -------------------------------------------------------------------

    async def end(self, session_id: str, show_id: str | None = None) -> bool:
        """Close a session at its owner's request (HTTP ``DELETE``); False if there is none."""
        session = self.session(session_id, show_id)
        if session is None:
            return False
        await self._close(session, "deleted")
        return True

    async def end_show(self, show_id: str) -> None:
        """Close every session of ``show_id`` (the show ended) and finish its recording (the
        end may have been asked of another process, whose end hook does not run here)."""
        for session in [s for s in self.sessions.values() if s.show_id == show_id]:
            await self._close(session, "show-ended")
        if self.recordings is not None:
            await self.recordings.ended(show_id)

    # -- internals -------------------------------------------------------------------------

    def _new_id(self) -> str:
        return self.session_prefix + secrets.token_urlsafe(24)

    def _check_open(self) -> None:
        if self._closing:
            raise RelayClosed("the server is shutting down")

    def _broadcast(self, show_id: str) -> Broadcast:
        broadcast = self.broadcasts.get(show_id)
        if broadcast is None:
            broadcast = Broadcast(
                show_id,
                self.stats,
                self._paused,
                keyframe_interval=self.timings.keyframe_interval,
            )
            if self.recordings is not None:
                broadcast.recorder = self.recordings.recorder(show_id)
            self.broadcasts[show_id] = broadcast
        return broadcast

    def _paused(self, show_id: str, paused: bool) -> None:
        broadcast = self.broadcasts.get(show_id)
        if broadcast is not None and broadcast.pulled:
            return  # the origin node announces its publisher's pauses
        if self._on_paused is not None and not self._closing:
            self._spawn(self._on_paused(show_id, paused))

    def _forget_viewer(self, client: str) -> None:
        self._viewers_total -= 1
        self._viewers_of[client] -= 1
        if self._viewers_of[client] <= 0:
            del self._viewers_of[client]

    def _peer_connection(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(rtc_configuration(self.ice))
        self._pcs.add(pc)
        return pc

    async def _discard(self, pc: RTCPeerConnection) -> None:
        try:
            await pc.close()
        except Exception as exc:
            # aiortc's close() stops every transceiver's transport, and one that a refused
            # offer never set up is None: stop the ones that exist, so no socket stays open.
            log.debug("closing a peer connection failed (%r); stopping its transports", exc)
            for transceiver in pc.getTransceivers():
                dtls = transceiver.receiver.transport
                if dtls is not None:
                    await dtls.stop()
                    await dtls.transport.stop()
        finally:
            self._pcs.discard(pc)

    async def _negotiate(self, pc: RTCPeerConnection, offer_sdp: str) -> str:
        """Apply the offer (at most :data:`offers.MAX_REMOTE_CANDIDATES` of its candidates),
        create the answer and gather every candidate; the answer's SDP."""
        offer_sdp, dropped = offers.cap_candidates(offer_sdp)
        if dropped:
            log.debug("offer: %d remote candidates over the cap dropped", dropped)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except OperationError as exc:
            raise UnsupportedCodec(str(exc)) from exc
        except Exception as exc:
            # aiortc applies what its parser accepted and dereferences what the offer left
            # out (AttributeError, IndexError, ValueError, ...): an offer it cannot apply is
            # the client's bad request, never the server's failure.
            raise BadOffer(f"cannot apply the offer: {type(exc).__name__} {exc}") from exc
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return offers.with_rtcp_mux_only(str(pc.localDescription.sdp))

    def _register(self, session: Session) -> None:
        self.sessions[session.id] = session
        if session.role == PUBLISHER:
            self.stats.publishers += 1
        elif session.role == PULL:
            self.stats.pulls += 1
        else:
            self.stats.viewers += 1
        pc = session.pc

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and session.connected_at is None:
                session.connected_at = time.monotonic()
                log.info(
                    "%s %s of show %s connected", session.role, session.id[:8], session.show_id
                )
            elif state == "failed" and not session.closed:
                self._spawn(self._close(session, "ice-failed"))

        if pc.connectionState == "connected":
            session.connected_at = time.monotonic()

    async def _close(self, session: Session, reason: str) -> None:
        if session.closed:
            return
        session.closed = True
        self.sessions.pop(session.id, None)
        broadcast = session.broadcast
        log.info(
            "%s %s of show %s closed: %s", session.role, session.id[:8], session.show_id, reason
        )
        if session.role in (PUBLISHER, PULL):
            if session.role == PUBLISHER:
                self.stats.publishers -= 1
            else:
                self.stats.pulls -= 1
                if session.hang_up is not None and session.pulled_from:
                    self._hang_up(session.hang_up, session.pulled_from)
            if session.source is not None:
                broadcast.clear_source(session.source)
        else:
            self.stats.viewers -= 1
            if session.client is not None:
                self._forget_viewer(session.client)
            if reason not in ("deleted", "show-ended"):
                self.stats.viewers_dropped += 1
        for track in session.tracks:
            track.stop()
        await self._discard(session.pc)
        await self._drop_if_unused(broadcast)

    async def _drop_if_unused(self, broadcast: Broadcast) -> None:
        if any(s.broadcast is broadcast for s in self.sessions.values()):
            return
        pulling = self._pulls.get(broadcast.show_id)
        if pulling is not None and pulling is not asyncio.current_task() and not self._closing:
            return  # a pull is being set up for it
        if self.broadcasts.get(broadcast.show_id) is broadcast:
            del self.broadcasts[broadcast.show_id]
        await broadcast.aclose()

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media task failed", exc_info=task.exception())

    async def _watch(self) -> None:
        """Close sessions that never connect or fall silent; pause shows whose host is away."""
        last_live_check = time.monotonic()
        while True:
            await asyncio.sleep(self.timings.tick)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                try:
                    await self._inspect(session, now)
                except Exception:
                    log.exception("checking session %s failed", session.id[:8])
            if self._is_live is not None and now - last_live_check >= self.timings.live_check_every:
                last_live_check = now
                for show_id in list(self.broadcasts):
                    if not await self._is_live(show_id):
                        log.info("show %s is no longer live: closing its media", show_id)
                        await self.end_show(show_id)
            background.check_cancelled()

    async def _inspect(self, session: Session, now: float) -> None:
        timings = self.timings
        if session.closed:
            return
        if session.connected_at is None:
            if now - session.created > timings.connect_timeout:
                await self._close(session, "ice-timeout")
            return
        broadcast = session.broadcast
        if session.role == PULL and not self._watched(broadcast):
            if session.idle_since is None:
                session.idle_since = now
            elif now - session.idle_since > timings.pull_linger:
                await self._close(session, "no-viewers")
                return
        elif session.role == PULL:
            session.idle_since = None
        if session.role in (PUBLISHER, PULL) and session.source is not None:
            idle = now - max(session.source.last_media, session.connected_at)
            if idle > timings.silence_timeout:
                await self._close(session, "silent")
            elif idle > timings.pause_after and broadcast.source is session.source:
                broadcast.set_paused(True)
            return
        # A viewer: while media flows, its receiver reports show it is still there.
        if broadcast.paused or broadcast.source is None:
            return
        if now - session.connected_at <= timings.silence_timeout:
            return
        heard = await self._last_report_age(session)
        if heard is None or heard > timings.silence_timeout:
            await self._close(session, "silent")

    def _watched(self, broadcast: Broadcast) -> bool:
        return any(s.broadcast is broadcast and s.role == VIEWER for s in self.sessions.values())

    async def _last_report_age(self, session: Session) -> float | None:
        """Seconds since the viewer's last RTCP receiver report, ``None`` if it never sent one."""
        newest: datetime.datetime | None = None
        for sender in session.senders:
            report = await sender.getStats()
            for stats in report.values():
                if stats.type == "remote-inbound-rtp" and (
                    newest is None or stats.timestamp > newest
                ):
                    newest = stats.timestamp
        if newest is None:
            return None
        return (datetime.datetime.now(datetime.UTC) - newest).total_seconds()


class _Superseded(Exception):
    """A pull set up while the host published to this process: the host's feed is kept."""
