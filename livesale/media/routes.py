"""WHIP ingest and WHEP playback over HTTP.

* ``POST /whip/{show_id}`` (RFC 9725): the host's SDP offer, ``Authorization: Bearer <host
  token>`` → ``201 Created`` with the SDP answer, ``Location`` of the session and ``ETag``.
* ``POST /whep/{show_id}`` (draft-ietf-wish-whep): anyone's offer → ``201`` with the answer.
* ``DELETE`` on a ``Location`` ends that session: a WHIP session only with the show's host
  token (RFC 9725 §4.3), a WHEP session with its URL alone (the unguessable session id is the
  viewer's credential). ``PATCH`` (trickle ICE / ICE restart) is not supported and answers
  ``405``; ``OPTIONS`` answers CORS preflights with ``Accept-Post``.

Every response under ``/whip/`` and ``/whep/``, problems included (``405`` and ``413`` too),
carries CORS headers so players on other origins can read ``Location`` and the problem:
:class:`Cors` adds them around the whole app.

The relay itself lives in :class:`livesale.media.hub.MediaHub`, started by :func:`start` and
kept in the services under :data:`MEDIA`. When the installed aiortc lacks a hook the relay
needs (:func:`livesale.media._aiortc.check`), :func:`start` logs it in one line and WHIP/WHEP
answer ``503`` while chat and checkout run on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livesale import errors, events, http, keys, limits
from livesale import services as svc
from livesale.clients import client_of
from livesale.media import _aiortc
from livesale.media.errors import BadOffer, ShowNotLive, WebRtcFull
from livesale.media.hub import PUBLISHER, VIEWER, MediaHub
from livesale.media.ice import IceConfig
from livesale.media.metrics import MediaCollector
from livesale.media.origin import Origins, session_node, session_prefix, session_worker
from livesale.media.recording import Recordings
from livesale.shows import SHOWS

log = logging.getLogger("livesale.media")

SDP = "application/sdp"
#: The running relay's part of :class:`~livesale.services.Services`.
MEDIA: svc.Part[MediaHub] = svc.Part("media")
#: Why the relay is off, when the start-up check failed.
MEDIA_OFF: svc.Part[str] = svc.Part("media-off")
#: Which worker holds each show's publisher (``serve --workers`` only).
ORIGINS: svc.Part[Origins] = svc.Part("origins")
#: An SDP offer is a few KiB; refuse anything absurd before parsing it.
MAX_OFFER_BYTES = 64 * 1024

Handler = Callable[[Request], Awaitable[Response]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post, Accept-Patch",
}


_CORS_RAW = [(k.lower().encode(), v.encode()) for k, v in CORS_HEADERS.items()]


class Cors:
    """ASGI middleware: CORS headers on every WHIP/WHEP and HLS response, whoever answers it
    (the endpoints, Starlette's 404/405, :class:`livesale.http.BodyLimit`'s 413)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(("/whip/", "/whep/", "/hls/")):
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _CORS_RAW if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _problems(handler: Handler) -> Handler:
    """Answer ``handler``'s refusals as problems, logging server-side ones without a trace."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except errors.LivesaleError as exc:
            if exc.status >= 500 and not isinstance(exc, WebRtcFull):  # a full tier is load
                log.error("%s %s failed: %s", request.method, request.url.path, exc)
            return http.problem_response(exc)

    return wrapped


def hub_of(request: Request) -> MediaHub:
    """The running media hub; ``503`` while the server starts or stops, or when live video is
    off on this server (the start-up check of aiortc's internals failed)."""
    services = svc.of(request)
    hub = services.find(MEDIA)
    if hub is None:
        off = services.find(MEDIA_OFF)
        if off is not None:
            raise errors.Unavailable(f"live video is off on this server: {off}")
        raise errors.Unavailable("the media relay is not running")
    return hub


async def read_offer(request: Request) -> str:
    """The request's SDP offer; ``415`` unless it is ``application/sdp`` (RFC 9725 §4.2)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != SDP:
        raise errors.UnsupportedMediaType(f"expected {SDP}, got {content_type or 'nothing'}")
    body = await request.body()
    if len(body) > MAX_OFFER_BYTES:
        raise errors.PayloadTooLarge(f"an SDP offer is at most {MAX_OFFER_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadOffer("the SDP offer is not UTF-8 text") from exc


async def require_live(request: Request, show_id: str) -> None:
    """``404`` for an unknown show, ``409 show-not-live`` unless it is live."""
    show = await svc.of(request).get(SHOWS).get(show_id)
    if show.state != "live":
        raise ShowNotLive(f"show {show_id} is {show.state}")


def _created(
    request: Request, kind: str, show_id: str, session_id: str, etag: str
) -> dict[str, str]:
    hub = hub_of(request)
    headers = {
        # WHIP (RFC 9725 §4.2): 201 Created with the session's URL in Location.
        "Location": f"/{kind}/{show_id}/{session_id}",
        "ETag": etag,
    }
    links = hub.ice.link_headers()
    if links:
        # WHIP (RFC 9725 §4.6): ICE servers for the client, one Link value each.
        headers["Link"] = ", ".join(links)
    return headers


@http.endpoint(
    "WHIP ingest: SDP offer in, SDP answer out (RFC 9725)",
    auth="host",
    status=201,
    errors=(409, 503),
    request_media_type=SDP,
    response_media_type=SDP,
)
@_problems
async def whip(request: Request) -> Response:
    """WHIP ingest: the host's offer in, the relay's answer out."""
    show_id = request.path_params["show_id"]
    services = svc.of(request)
    client = await _offer_client(request)
    await services.get(SHOWS).verify_host(show_id, http.bearer_token(request))
    offer = await read_offer(request)
    await require_live(request, show_id)
    elsewhere = await _at_origin(request, show_id, offer, client)
    if elsewhere is not None:
        return elsewhere
    session = await hub_of(request).publish(show_id, offer)
    origins = services.find(ORIGINS)
    if origins is not None:
        await origins.claim(show_id)
    headers = _created(request, "whip", show_id, session.id, session.etag)
    return Response(session.answer, 201, headers, media_type=SDP)


async def _offer_client(request: Request) -> str:
    """The client's address key, after the offer's rate limit: taken once, by the worker the
    client reached (a forwarded offer carries its address and was counted there)."""
    origins = svc.of(request).find(ORIGINS)
    forwarded = origins.forwarded_client(request) if origins is not None else None
    if forwarded is not None:
        return forwarded
    client = client_of(request)
    await limits.check(svc.of(request), "offer", client)
    return client


async def _at_origin(request: Request, show_id: str, offer: str, client: str) -> Response | None:
    """The show's origin worker's answer, when another worker of this node holds its
    publisher (a WHIP answered on another node makes this one the origin)."""
    origins = svc.of(request).find(ORIGINS)
    if origins is None or origins.forwarded(request):
        return None
    worker = await origins.owner(show_id)
    if worker is None:
        return None
    return await origins.forward(request, worker, offer.encode(), client)


async def _relayed(request: Request, show_id: str, offer: str, client: str) -> Response | None:
    """For a viewer of a show whose publisher another node holds: the answer of the worker of
    this node that pulls the show, or ``None`` once this worker relays it (pulled now)."""
    origins = svc.of(request).find(ORIGINS)
    if origins is None or not origins.node or hub_of(request).fed(show_id):
        return None
    holder = await origins.holder(show_id)
    if holder is None or not holder.node:
        return None
    if not origins.forwarded(request):
        worker = await origins.relay_worker(show_id)
        if worker != origins.me:
            answer = await origins.forward(request, worker, offer.encode(), client)
            if answer is not None:
                return answer
            await origins.take_relay(show_id)  # that worker is gone: this one pulls
    await origins.pull(show_id, holder)
    return None


@http.endpoint(
    "WHEP playback: SDP offer in, SDP answer out",
    status=201,
    errors=(409, 503),
    request_media_type=SDP,
    response_media_type=SDP,
)
@_problems
async def whep(request: Request) -> Response:
    """WHEP playback: a viewer's offer in, the relay's answer (the show's media) out."""
    show_id = request.path_params["show_id"]
    client = await _offer_client(request)
    offer = await read_offer(request)
    await require_live(request, show_id)
    elsewhere = await _at_origin(request, show_id, offer, client)
    if elsewhere is None:
        elsewhere = await _relayed(request, show_id, offer, client)
    if elsewhere is not None:
        return elsewhere
    session = await hub_of(request).play(show_id, offer, client)
    headers = _created(request, "whep", show_id, session.id, session.etag)
    return Response(session.answer, 201, headers, media_type=SDP)


def _session_endpoint(role: str) -> Handler:
    kind = "WHIP" if role == PUBLISHER else "WHEP"

    @http.endpoint(
        f"End a {kind} session (DELETE on its Location)",
        auth="host" if role == PUBLISHER else "anyone",
        errors=(503,),
    )
    @_problems
    async def session(request: Request) -> Response:
        show_id = request.path_params["show_id"]
        session_id = request.path_params["session_id"]
        if role == PUBLISHER:
            # WHIP (RFC 9725 §4.3): only the host who may publish may end the publication.
            await svc.of(request).get(SHOWS).verify_host(show_id, http.bearer_token(request))
        origins = svc.of(request).find(ORIGINS)
        worker = session_worker(session_id)
        node = session_node(session_id)
        if origins is not None and node is not None and node != origins.tag:
            # Another node's session (the balancer sent the DELETE here): that node ends it.
            answer = await origins.forward_to_node(request, node, show_id, session_id)
            if answer is None:
                raise errors.NotFound("no such session (it may have ended)")
            return answer
        if origins is not None and not origins.forwarded(request):
            if worker is not None and worker != origins.me and worker < origins.settings.workers:
                answer = await origins.forward(request, worker, b"", client_of(request))
                if answer is not None:
                    return answer
        hub = hub_of(request)
        found = hub.session(session_id, show_id)
        if found is None or found.role != role:
            raise errors.NotFound("no such session (it may have ended)")
        await hub.end(session_id, show_id)
        # WHIP (RFC 9725 §4.2): DELETE on the session URL ends it; 200 OK.
        return Response(status_code=200)

    return session


def _no_trickle(kind: str) -> Handler:
    @http.endpoint(
        f"Trickle ICE or ICE restart on a {kind} session: not supported, always 405",
        status=405,
    )
    async def patch(request: Request) -> Response:
        # WHIP (RFC 9725 §4.3.1): trickle ICE and ICE restarts are optional; a server
        # without them answers 405. The answer already carries every candidate.
        response = http.problem_response(
            errors.MethodNotAllowed("trickle ICE and ICE restart are not supported")
        )
        response.headers["Allow"] = "DELETE, OPTIONS"
        return response

    return patch


def _options(endpoint: bool) -> Handler:
    @http.endpoint(
        "CORS preflight; advertises Accept-Post: application/sdp"
        if endpoint
        else "CORS preflight of a session",
        status=204,
        response_media_type="",
    )
    async def options(request: Request) -> Response:
        """CORS preflight; advertises ``Accept-Post: application/sdp`` on the endpoints."""
        methods = "POST, OPTIONS" if endpoint else "DELETE, PATCH, OPTIONS"
        headers = {
            **CORS_HEADERS,
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
            "Access-Control-Max-Age": "86400",
            "Allow": methods,
        }
        if endpoint:
            headers["Accept-Post"] = SDP
        # RFC 9110 §15.3.5: a 204 has no content, so no Content-Type either.
        return Response(status_code=204, headers=headers)

    return options


def _not_allowed(allow: str) -> Handler:
    async def not_allowed(request: Request) -> Response:
        """Any other method: ``405`` with ``Allow``."""
        response = http.problem_response(
            errors.MethodNotAllowed(f"{request.method} is not allowed here; use {allow}")
        )
        response.headers["Allow"] = allow
        return response

    return not_allowed


#: Methods no WHIP/WHEP resource has; answered by :func:`_not_allowed` with ``Allow``.
_OTHER_METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"]


def _others(used: str) -> list[str]:
    return [m for m in _OTHER_METHODS if m not in used]


routes: list[BaseRoute] = [
    Route("/whip/{show_id}", whip, methods=["POST"]),
    Route("/whip/{show_id}", _options(True), methods=["OPTIONS"]),
    Route("/whip/{show_id}/{session_id}", _session_endpoint(PUBLISHER), methods=["DELETE"]),
    Route("/whip/{show_id}/{session_id}", _no_trickle("WHIP"), methods=["PATCH"]),
    Route("/whip/{show_id}/{session_id}", _options(False), methods=["OPTIONS"]),
    Route("/whep/{show_id}", whep, methods=["POST"]),
    Route("/whep/{show_id}", _options(True), methods=["OPTIONS"]),
    Route("/whep/{show_id}/{session_id}", _session_endpoint(VIEWER), methods=["DELETE"]),
    Route("/whep/{show_id}/{session_id}", _no_trickle("WHEP"), methods=["PATCH"]),
    Route("/whep/{show_id}/{session_id}", _options(False), methods=["OPTIONS"]),
]
for _path, _allow in (
    ("/whip/{show_id}", "POST, OPTIONS"),
    ("/whep/{show_id}", "POST, OPTIONS"),
    ("/whip/{show_id}/{session_id}", "DELETE, PATCH, OPTIONS"),
    ("/whep/{show_id}/{session_id}", "DELETE, PATCH, OPTIONS"),
):
    routes.append(
        Route(_path, _not_allowed(_allow), methods=_others(_allow), include_in_schema=False)
    )


class MediaOff:
    """Stands in for the relay when it could not start; nothing to stop."""

    async def aclose(self) -> None:
        return None


async def start(services: svc.Services) -> MediaHub | MediaOff:
    """Start this process's relay with the server's ICE settings and metrics registry.

    If the installed aiortc, aioice or pylibsrtp lack a hook the relay needs, log why in one
    line and start nothing: WHIP/WHEP then answer ``503``, the rest of the server runs.
    """
    problems = _aiortc.problems()
    if problems:
        reason = "; ".join(problems)
        log.error("live video is off: the relay cannot run on the installed aiortc: %s", reason)
        services.provide(MEDIA_OFF, reason)
        return MediaOff()
    settings = services.settings
    ice = IceConfig(
        hosts=settings.ice_hosts,
        stun_urls=settings.stun_urls,
        turn_urls=settings.turn_urls,
        turn_username=settings.turn_username,
        turn_password=settings.turn_password,
    )

    async def on_paused(show_id: str, paused: bool) -> None:
        # The show's Redis hash carries ``paused`` (livesale.keys.show) for every process; the
        # room hears it as a ``show`` event (livesale.events).
        try:
            await services.redis.hset(keys.show(show_id), "paused", "1" if paused else "0")
            if not await is_live(show_id):
                return  # an ended show is not paused: its end has been announced already
            await events.publish(
                services.redis, show_id, {"type": "show", "state": "live", "paused": paused}
            )
        except (RedisError, errors.StoreError) as exc:
            log.warning("could not announce show %s paused=%s: %s", show_id, paused, exc)

    async def is_live(show_id: str) -> bool:
        try:
            show = await services.get(SHOWS).get(show_id)
        except errors.NotFound:
            return False
        except errors.LivesaleError:
            return True  # a store hiccup must not cut a live stream
        return show.state == "live"

    recordings = None
    if settings.record:
        recordings = Recordings(settings.recordings_dir, keep_days=settings.keep_recordings)
        # An ended show's last segment and its VOD playlist are written before the end's answer.
        services.get(SHOWS).on_end(recordings.ended)
        if settings.workers == 1 and not settings.node_url:
            # With workers or nodes, the origin follows the features instead
            # (Origins.follow_features): the host may press Feature on any of them.
            services.get(SHOWS).on_feature(recordings.featured)
    hub = MediaHub(
        ice,
        on_paused=on_paused,
        is_live=is_live,
        viewers_per_address=settings.whep_sessions_per_address,
        max_viewers=settings.max_webrtc_viewers,
        recordings=recordings,
        session_prefix=session_prefix(settings),
    )
    collector = MediaCollector(hub.stats)
    services.metrics.registry.register(collector)
    hub.on_close.append(lambda: services.metrics.registry.unregister(collector))
    await hub.start()
    if settings.workers > 1 or settings.node_url:
        origins = Origins(services.redis, settings, hub)
        await origins.start()
        if recordings is not None:
            origins.follow_features(recordings.featured)
        hub.closers.append(origins.aclose)
        services.provide(ORIGINS, origins)
    services.provide(MEDIA, hub)
    return hub
