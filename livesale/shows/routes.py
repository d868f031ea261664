"""HTTP endpoints of shows and line-ups."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from livesale import events
from livesale import services as svc
from livesale.errors import ValidationFailed
from livesale.http import endpoint, json_response, read_body
from livesale.shows.component import merchant_or_host, of
from livesale.shows.messages import (
    HostToken,
    Lineup,
    LineupChanged,
    LineupItemIn,
    Show,
    ShowChanged,
    ShowCreated,
    ShowIn,
    ShowPatch,
)
from livesale.shows.state import ShowState


async def _move(request: Request, show_id: str, target: ShowState) -> Show:
    """Move the show and tell its room (only when the state really changed)."""
    store = of(request)
    before = await store.get(show_id)
    show = await store.move(show_id, target)
    if show.state != before.state:
        await _tell_room(request, show)
    return show


async def _tell_room(request: Request, show: Show) -> None:
    changed = ShowChanged(
        state=show.state,
        paused=show.paused,
        sales_close_at=show.sales_close_at,
        replay_sales=show.replay_sales,
    )
    await events.publish_event(svc.of(request).redis, show.id, changed)


@endpoint("Create a show", auth="merchant", body=ShowIn, response=ShowCreated, status=201)
async def create_show(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    body = await read_body(request, ShowIn)
    return json_response(await of(request).create(body), 201)


@endpoint("Shows, live first", response=list[Show])
async def list_shows(request: Request) -> Response:
    return json_response(await of(request).all())


@endpoint("One show", response=Show)
async def get_show(request: Request) -> Response:
    return json_response(await of(request).get(request.path_params["show_id"]))


@endpoint(
    "Change the merchant's settings of a show: whether its replay sells",
    auth="merchant",
    body=ShowPatch,
    response=Show,
    errors=(409,),
)
async def patch_show(request: Request) -> Response:
    show_id = request.path_params["show_id"]
    await svc.of(request).keys.merchant(request)
    body = await read_body(request, ShowPatch)
    before = await of(request).get(show_id)
    show = await of(request).patch(show_id, body)
    if show.replay_sales != before.replay_sales:
        await _tell_room(request, show)
    return json_response(show)


@endpoint("Go live", auth="merchant or host", response=Show, errors=(409,))
async def start_show(request: Request) -> Response:
    show_id = request.path_params["show_id"]
    await merchant_or_host(request, show_id)
    return json_response(await _move(request, show_id, ShowState.LIVE))


@endpoint("End the show", auth="merchant or host", response=Show, errors=(409,))
async def end_show(request: Request) -> Response:
    show_id = request.path_params["show_id"]
    await merchant_or_host(request, show_id)
    show = await _move(request, show_id, ShowState.ENDED)
    # New holds stop with the move above unless the replay sells; whoever follows the show's
    # end (the orders' closing: a grace period for live holds, then fulfilment) hears it now.
    await of(request).ended(show_id)
    return json_response(show)


@endpoint(
    "Replace the line-up, in show order (a host may only reorder it)",
    auth="merchant or host",
    body=list[LineupItemIn],
    response=Lineup,
    errors=(409,),
)
async def put_lineup(request: Request) -> Response:
    show_id = request.path_params["show_id"]
    actor = await merchant_or_host(request, show_id)
    items = await read_body(request, list[LineupItemIn])
    services = svc.of(request)
    limit = services.settings.max_lineup_items
    if len(items) > limit:
        # Every viewer's snapshot carries the whole line-up: a huge one makes each join costly.
        raise ValidationFailed(
            f"a line-up holds at most {limit} items, not {len(items)}", max_items=limit
        )
    if actor.startswith("host:"):
        await of(request).check_host_lineup(show_id, items)
    lineup = await of(request).put_lineup(show_id, items)
    # Everyone in the room gets the new line-up (with stock and the featured item).
    await events.publish_event(services.redis, show_id, LineupChanged(lineup=lineup))
    return json_response(lineup)


@endpoint(
    "Replace the show's host token: the old one stops at once and its sockets close",
    auth="merchant",
    response=HostToken,
)
async def rotate_host_token(request: Request) -> Response:
    show_id = request.path_params["show_id"]
    await svc.of(request).keys.merchant(request)
    store = of(request)
    token = await store.rotate_host_token(show_id)
    return json_response(HostToken(show_id, token, store.studio_url(show_id, token)))


@endpoint("The line-up with live stock and the featured item", response=Lineup)
async def get_lineup(request: Request) -> Response:
    return json_response(await of(request).lineup(request.path_params["show_id"]))


routes: list[BaseRoute] = [
    Route("/api/shows", create_show, methods=["POST"]),
    Route("/api/shows", list_shows, methods=["GET"]),
    Route("/api/shows/{show_id}", get_show, methods=["GET"]),
    Route("/api/shows/{show_id}", patch_show, methods=["PATCH"]),
    Route("/api/shows/{show_id}/start", start_show, methods=["POST"]),
    Route("/api/shows/{show_id}/end", end_show, methods=["POST"]),
    Route("/api/shows/{show_id}/lineup", put_lineup, methods=["PUT"]),
    Route("/api/shows/{show_id}/lineup", get_lineup, methods=["GET"]),
    Route("/api/shows/{show_id}/host-token", rotate_host_token, methods=["POST"]),
]
