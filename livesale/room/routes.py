"""Viewer sign-up over HTTP, and the room WebSocket route."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from livesale import limits
from livesale import services as svc
from livesale.clients import client_of
from livesale.errors import ValidationFailed
from livesale.http import endpoint, json_response, read_body
from livesale.room.ws import RoomSocket
from livesale.shows import SHOWS


class ViewerIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: Spaces are folded and trimmed; a nickname of nothing else is refused ("nickname is
    #: empty"), so the document asks for one character that is not a space.
    nickname: Annotated[
        str, msgspec.Meta(min_length=1, max_length=40, extra_json_schema={"pattern": r"\S"})
    ]


class ViewerCreated(msgspec.Struct, frozen=True):
    viewer_id: str
    nickname: str
    token: str


@endpoint(
    "Join as a viewer: a signed token for buying and chatting",
    body=ViewerIn,
    response=ViewerCreated,
    status=201,
)
async def create_viewer(request: Request) -> Response:
    services = svc.of(request)
    await limits.check(services, "signup", client_of(request))
    body = await read_body(request, ViewerIn)
    nickname = " ".join(body.nickname.split())
    if not nickname:
        raise ValidationFailed("nickname is empty")
    if await services.get(SHOWS).is_host_name(nickname):
        raise ValidationFailed("that name belongs to a show's host; choose another")
    viewer_id, token = services.signer.issue(nickname)
    return json_response(ViewerCreated(viewer_id, nickname, token), 201)


#: The room WebSocket; the app also serves it on a short path (:class:`livesale.app.App`).
socket_route = WebSocketRoute("/ws/shows/{show_id}", RoomSocket)

routes: list[BaseRoute] = [
    Route("/api/viewers", create_viewer, methods=["POST"]),
    socket_route,
]
