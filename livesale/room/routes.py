"""HTTP endpoints of shows, line-ups and viewer sign-up."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from livesale import events
from livesale import services as svc
from livesale.errors import Unauthorized, ValidationFailed
from livesale.http import bearer_token, endpoint, json_response, read_body
from livesale.orders.closing import show_ended
from livesale.room.hub import Hub
from livesale.room.messages import (
    Lineup,
    LineupChanged,
    LineupItemIn,
    Show,
    ShowChanged,
    ShowCreated,
    ShowIn,
)
from livesale.room.state import ShowState
from livesale.room.ws import RoomSocket


class ViewerIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    nickname: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class ViewerCreated(msgspec.Struct, frozen=True):
    viewer_id: str
    nickname: str
    token: str


async def merchant_or_host(request: Request, show_id: str) -> str:
    """The actor allowed to change ``show_id``: a merchant key id or ``host:<show>``.

    401 without a credential, 403 when it is neither a merchant key nor this show's host token.
    """
    services = svc.of(request)
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("this needs a merchant API key or the show's host token")
    if token.startswith("host_"):
        await services.shows.verify_host(show_id, token)
        return f"host:{show_id}"
    return await services.keys.merchant(request)


async def _move(request: Request, show_id: str, target: ShowState) -> Show:
    """Move the show and tell its room (only when the state really changed)."""
    services = svc.of(request)
    before = await services.shows.get(show_id)
    show = await services.shows.move(show_id, target)
    if show.state != before.state:
        await events.publish_event(
            services.redis, show_id, ShowChanged(state=show.state, paused=show.paused)
        )
    return show


@endpoint("Create a show", auth="merchant", body=ShowIn, response=ShowCreated, status=201)
async def create_show(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    body = await read_body(request, ShowIn)
    return json_response(await services.shows.create(body), 201)


@endpoint("Shows, live first", response=list[Show])
async def list_shows(request: Request) -> Response:
    return json_response(await svc.of(request).shows.all())


@endpoint("One show", response=Show)
async def get_show(request: Request) -> Response:
    return json_response(await svc.of(request).shows.get(request.path_params["show_id"]))


@endpoint("Go live", auth="merchant or host", response=Show)
async def start_show(request: Request) -> Response:
    show_id = request.path_params["show_id"]
    await merchant_or_host(request, show_id)
    return json_response(await _move(request, show_id, ShowState.LIVE))


@endpoint("End the show", auth="merchant or host", response=Show)
async def end_show(request: Request) -> Response:
    show_id = request.path_params["show_id"]
    await merchant_or_host(request, show_id)
    services = svc.of(request)
    show = await _move(request, show_id, ShowState.ENDED)
    # New holds stop with the move above; live holds get the grace period, then fulfilment.
    await show_ended(services.db, show_id, services.settings.grace_seconds)
    return json_response(show)


@endpoint(
    "Replace the line-up, in show order",
    auth="merchant or host",
    body=list[LineupItemIn],
    response=Lineup,
)
async def put_lineup(request: Request) -> Response:
    show_id = request.path_params["show_id"]
    await merchant_or_host(request, show_id)
    items = await read_body(request, list[LineupItemIn])
    services = svc.of(request)
    lineup = await services.shows.put_lineup(show_id, items)
    if lineup.featured is not None and all(i.sku != lineup.featured for i in lineup.items):
        # The featured item left the line-up: nothing is featured any more, for everyone.
        hub: Hub = services.components["room"]
        await hub.bus.feature(show_id, None)
        lineup = msgspec.structs.replace(lineup, featured=None)
    # Everyone in the room gets the new line-up (with stock and the featured item).
    await events.publish_event(services.redis, show_id, LineupChanged(lineup=lineup))
    return json_response(lineup)


@endpoint("The line-up with live stock and the featured item", response=Lineup)
async def get_lineup(request: Request) -> Response:
    return json_response(await svc.of(request).shows.lineup(request.path_params["show_id"]))


@endpoint(
    "Join as a viewer: a signed token for buying and chatting",
    body=ViewerIn,
    response=ViewerCreated,
    status=201,
)
async def create_viewer(request: Request) -> Response:
    services = svc.of(request)
    body = await read_body(request, ViewerIn)
    nickname = " ".join(body.nickname.split())
    if not nickname:
        raise ValidationFailed("nickname is empty")
    viewer_id, token = services.signer.issue(nickname)
    return json_response(ViewerCreated(viewer_id, nickname, token), 201)


routes: list[BaseRoute] = [
    Route("/api/shows", create_show, methods=["POST"]),
    Route("/api/shows", list_shows, methods=["GET"]),
    Route("/api/shows/{show_id}", get_show, methods=["GET"]),
    Route("/api/shows/{show_id}/start", start_show, methods=["POST"]),
    Route("/api/shows/{show_id}/end", end_show, methods=["POST"]),
    Route("/api/shows/{show_id}/lineup", put_lineup, methods=["PUT"]),
    Route("/api/shows/{show_id}/lineup", get_lineup, methods=["GET"]),
    Route("/api/viewers", create_viewer, methods=["POST"]),
    WebSocketRoute("/ws/shows/{show_id}", RoomSocket),
]
