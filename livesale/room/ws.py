"""``/ws/shows/{show_id}?token=...``: the room WebSocket of a viewer or the host.

The browser's ``Origin`` and the token (a viewer token from ``POST /api/viewers`` or the show's
host token) are checked before anything else. A socket without a token is a *watcher*: it gets
the snapshot and every event, counts in the viewer count, and may send hearts and ask for a
snapshot; anything else (chat, asks, votes, wants, notices) is refused with ``error``
``sign_in`` until the page has a viewer token and reconnects with it.

* A page of a foreign origin is refused before the upgrade with a 403 problem response.
* A client that sends no ``Origin`` (a script, the CLI, a test) and has a wrong token, or names
  an unknown show, gets an RFC 9457 problem response (403/404) instead of the
  upgrade, which it can read.
* A browser (one that sends an ``Origin``) cannot read a refused upgrade: it only reports close
  code 1006, the same as a network failure. So its socket is accepted and closed at once with an
  application close code (RFC 6455 §7.4.2 leaves 4000-4999 to applications), the HTTP status
  plus 4000, and the problem's detail as the reason:

  ======  =========================================================================
  4403    the token is invalid: forged, signed by another server, or not this show's
          host token; a page drops the token it saved (:data:`CLOSE_BAD_TOKEN`)
  4404    no such show (:data:`CLOSE_NO_SHOW`)
  4410    the host removed this viewer (or its network) from the show: the page says so
          and does not come back (:data:`CLOSE_BANNED`); the same code closes the open
          sockets of a viewer the host bans
  4429    too many sockets opened from this network: try again later, as the page does
          for any other code (:data:`CLOSE_RATE_LIMITED`)
  1011    the server failed while checking (a page reconnects later)
  ======  =========================================================================

  None of 4403, 4404, 4410 means "try again with the same token"; every other close code does,
  including 1008, which closes a socket that sent :data:`MAX_STRIKES` malformed messages in a
  row and says nothing about its token.

Then: a snapshot, the show's events, and the client's messages
(:data:`livesale.room.messages.ClientMsg`) handled one at a time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator
from typing import Any

import msgspec
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from livesale import limits, origins
from livesale import services as svc
from livesale.clients import client_of
from livesale.config import Settings
from livesale.errors import Banned, Forbidden, LivesaleError, RateLimited
from livesale.events import encoder
from livesale.http import problem_response
from livesale.ids import new_id
from livesale.room.hub import ROOM, WATCHER_PREFIX, Conn, Hub, Out
from livesale.room.messages import (
    CLIENT_TYPES,
    HOST_ONLY,
    BanIn,
    ChatIn,
    DeleteChatIn,
    ErrorMsg,
    FeatureIn,
    HeartIn,
    MuteIn,
    NotifyIn,
    Notifying,
    PlantIn,
    RequestIn,
    ResolveIn,
    SlowModeIn,
    SnapshotIn,
    UnfeatureIn,
    VoteIn,
    client_decoder,
)
from livesale.room.state import Refused, clean_chat, take_token
from livesale.shows import SHOWS
from livesale.transport import DIRECT_FRAMES

log = logging.getLogger("livesale.room")

#: Consecutive undecodable or misshapen messages tolerated before closing with 1008.
MAX_STRIKES = 3
#: Messages a client may send: a bucket of ``INBOX_BURST`` refilled at ``INBOX_RATE`` per second.
INBOX_RATE = 20.0
INBOX_BURST = 40.0
#: Snapshots a viewer's socket may ask for, counted apart: each costs the line-up, stock and
#: chat tail, many times a chat line. A page asks once after a gap, and again when refused.
SNAPSHOT_RATE = 0.5
SNAPSHOT_BURST = 3.0
HOST_VIEWER_ID = "host"
#: What a socket without a token may send: it watches, and taps hearts.
WATCHER_MAY = (SnapshotIn, HeartIn)

#: Close codes of a browser's refused socket (see the module docstring); a page uses the same.
CLOSE_BAD_TOKEN = 4403
CLOSE_NO_SHOW = 4404
CLOSE_BANNED = 4410
CLOSE_RATE_LIMITED = 4429
_REFUSAL_CODES = {
    403: CLOSE_BAD_TOKEN,
    404: CLOSE_NO_SHOW,
    429: CLOSE_RATE_LIMITED,
}
#: A close frame's reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5: 125 with the code).
_MAX_REASON = 123


class _Probe(msgspec.Struct):
    type: str


_probe = msgspec.json.Decoder(_Probe)


def origin_allowed(origin: str | None, host: str | None, settings: Settings) -> bool:
    """Non-browser clients send no ``Origin``; a browser's must be a public origin of this
    server, one of ``settings.allowed_origins``, or the page's own (by ``Host``, which
    :class:`livesale.pages.BrowserEdge` has held to this server's names already)."""
    return origins.of(settings).room_allows(origin, host)


class RoomSocket:
    """The ASGI app of one room WebSocket (Starlette routes a class endpoint as raw ASGI, so the
    writer can call ``send`` directly)."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send

    def __await__(self) -> Generator[Any, None, None]:
        return self.run().__await__()

    async def run(self) -> None:
        opened = await self._open()
        if opened is None:
            return
        services, hub, conn = opened
        hub.attach(conn)
        try:
            await hub.snapshot(conn)
            await self._read(services, hub, conn)
        except LivesaleError as exc:
            log.warning("room %s: %s", conn.show_id, exc)
            conn.close(1011, "server error")
            await conn.stop_writer(grace=5)
        finally:
            hub.detach(conn)
            conn.gone()
            await conn.stop_writer()

    async def _open(self) -> tuple[svc.Services, Hub, Conn] | None:
        """Check the socket and accept it, or refuse it (``None``). What only the opening
        needs (the request's view, its headers) goes with this call's frame, not the socket."""
        websocket = WebSocket(self.scope, self.receive, self.send)
        services = svc.of(websocket)
        hub = services.get(ROOM)
        show_id = websocket.path_params["show_id"]
        origin = websocket.headers.get("origin")
        try:
            if not origin_allowed(origin, websocket.headers.get("host"), services.settings):
                # Refused before the upgrade: a foreign page learns nothing about the room.
                raise Forbidden("this page's origin may not open the room")
        except LivesaleError as exc:
            await websocket.send_denial_response(problem_response(exc))
            return None
        client = client_of(websocket)
        try:
            await limits.check(services, "join", client)
            conn = await _identify(services, show_id, websocket)
            if not conn.host:
                await hub.bus.join(show_id, conn.viewer_id, client, record=not conn.watcher)
        except LivesaleError as exc:
            if origin is None:
                await websocket.send_denial_response(problem_response(exc))
            else:
                await _refuse_open(websocket, exc)
            return None
        conn.client = client
        await websocket.accept()
        conn.sink = ((self.scope.get("extensions") or {}).get(DIRECT_FRAMES) or {}).get("sink")
        conn.send = self.send
        return services, hub, conn

    async def _read(self, services: svc.Services, hub: Hub, conn: Conn) -> None:
        strikes = 0
        tokens, at = INBOX_BURST, time.monotonic()
        snapshots, asked = SNAPSHOT_BURST, 0
        while True:
            message = await self.receive()
            if message["type"] == "websocket.disconnect":
                return
            if conn.close_code:
                continue
            if not conn.host:  # the host is trusted to run the room at its own pace
                now = time.monotonic()
                ok, tokens = take_token(
                    tokens, int(at * 1000), int(now * 1000), INBOX_RATE, INBOX_BURST
                )
                at = now
                if not ok:
                    _error(hub, conn, "too_fast", "slow down: too many messages")
                    continue
            text = message.get("text")
            try:
                if text is None:
                    raise msgspec.DecodeError("binary frames are not room messages")
                msg = client_decoder.decode(text)
            except msgspec.DecodeError as exc:
                kind = _kind(text)
                if kind is not None and kind not in CLIENT_TYPES:
                    _error(hub, conn, "unknown_type", f"unknown message type {kind[:40]!r}")
                    continue
                strikes += 1
                _error(hub, conn, "bad_message", str(exc)[:200])
                if strikes >= MAX_STRIKES:
                    conn.close(1008, "too many malformed messages")
                continue
            strikes = 0
            if isinstance(msg, SnapshotIn) and not conn.host:
                now_ms = int(time.monotonic() * 1000)
                ok, snapshots = take_token(snapshots, asked, now_ms, SNAPSHOT_RATE, SNAPSHOT_BURST)
                asked = now_ms
                if not ok:
                    wait = math.ceil((1 - snapshots) * 1000 / SNAPSHOT_RATE)
                    _error(hub, conn, "rate_limited", "too many snapshot requests", wait)
                    continue
            try:
                if isinstance(msg, ChatIn) and not conn.host:
                    # Every viewer of one address together: new tokens buy no more lines.
                    await limits.check(services, "chat", conn.client)
                await _handle(hub, conn, msg)
            except Refused as refusal:
                _error(hub, conn, refusal.code, refusal.detail, refusal.retry_ms)
            except RateLimited as exc:
                _error(hub, conn, "rate_limited", exc.detail, int(exc.extra["retry_after_ms"]))


async def _refuse_open(websocket: WebSocket, exc: LivesaleError) -> None:
    """Accept a browser's socket and close it at once with the refusal's close code (the
    module docstring's table); the caller returns without attaching it to the room."""
    code = CLOSE_BANNED if isinstance(exc, Banned) else _REFUSAL_CODES.get(exc.status, 1011)
    reason = exc.detail.encode()[:_MAX_REASON].decode(errors="ignore")
    await websocket.accept()
    await websocket.close(code, reason)


def _kind(text: str | None) -> str | None:
    """The ``type`` of a JSON object that failed to decode, if it has a string one."""
    if text is None:
        return None
    try:
        return _probe.decode(text).type
    except msgspec.DecodeError:
        return None


def _error(hub: Hub, conn: Conn, code: str, detail: str, retry_ms: int = 0) -> None:
    if retry_ms:
        detail = f"{detail} (retry in {retry_ms} ms)"
    conn.push(Out(encoder.encode(ErrorMsg(seq=_last_seq(hub, conn), code=code, detail=detail))))


def _last_seq(hub: Hub, conn: Conn) -> int:
    """The seq an unsequenced frame to ``conn`` carries: its room's last event's."""
    room = hub.rooms.get(conn.show_id)
    return room.last_seq if room is not None else 0


async def _identify(services: svc.Services, show_id: str, websocket: WebSocket) -> Conn:
    """The connection of the token's bearer, a watcher's without a token; 403 for a wrong
    token, 404 for an unknown show."""
    token = websocket.query_params.get("token")
    if not token:
        auth = websocket.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    shows = services.get(SHOWS)
    show = await shows.get(show_id)
    if not token:
        return Conn(show_id, new_id(WATCHER_PREFIX), "", host=False, watcher=True)
    if token.startswith("host_"):
        await shows.verify_host(show_id, token)
        return Conn(show_id, HOST_VIEWER_ID, show.host_name, host=True)
    claims = services.signer.verify(token)
    return Conn(show_id, claims.vid, claims.nick, host=False)


async def _handle(hub: Hub, conn: Conn, msg: Any) -> None:
    """Apply one client message; a rule's refusal comes out as :class:`Refused`."""
    bus, show_id = hub.bus, conn.show_id
    if isinstance(msg, HOST_ONLY) and not conn.host:
        raise Refused("not_host", "only the host may do that")
    if conn.watcher and not isinstance(msg, WATCHER_MAY):
        raise Refused("sign_in", "choose a nickname first (POST /api/viewers), then reconnect")
    match msg:
        case ChatIn(text=text):
            text = clean_chat(text)
            await bus.chat(show_id, conn.viewer_id, conn.nick, text, conn.host, conn.client)
        case HeartIn(count=count):
            hub.heart(show_id, count)
        case RequestIn(sku=sku):
            await bus.request(show_id, sku, conn.viewer_id, False, conn.client)
        case VoteIn(sku=sku):
            await bus.request(show_id, sku, conn.viewer_id, True, conn.client)
        case PlantIn(sku=sku, want=want):
            await bus.plant(show_id, sku, conn.viewer_id, want, conn.client)
        case NotifyIn(sku=sku, on=on):
            await bus.notify(show_id, conn.viewer_id, sku, on)
            if on:
                conn.notify = (conn.notify or set()) | {sku}
            elif conn.notify:
                conn.notify.discard(sku)
            conn.push(Out(encoder.encode(Notifying(seq=_last_seq(hub, conn), sku=sku, on=on))))
        case SnapshotIn():
            await hub.snapshot(conn)
        case FeatureIn(sku=sku):
            await bus.feature(show_id, sku)
        case UnfeatureIn():
            await bus.feature(show_id, None)
        case ResolveIn(sku=sku):
            await bus.resolve(show_id, sku)
        case DeleteChatIn(id=line_id):
            await bus.delete_chat(show_id, line_id)
        case MuteIn(viewer_id=viewer_id, seconds=seconds):
            await bus.mute(show_id, viewer_id, seconds)
        case BanIn(viewer_id=viewer_id, lift=lift):
            await bus.ban(show_id, viewer_id, lift)
        case SlowModeIn(seconds=seconds):
            await bus.slow_mode(show_id, seconds)
        case _:
            raise Refused("unknown_type", f"unhandled message {type(msg).__name__}")
