"""``/api/keys``: the merchant's API keys, listed (label, created, last used, revoked), made
and revoked over HTTP, as ``livesale keys`` does from the CLI."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from livesale import services as svc
from livesale.auth import KeyCreated, KeyOut
from livesale.errors import Conflict
from livesale.http import endpoint, json_response, read_body

#: A label is for a person to recognise a key by: printable text only.
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]+$")]


class KeyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: Label


@endpoint("Merchant API keys, revoked ones included", auth="merchant", response=list[KeyOut])
async def list_keys(request: Request) -> Response:
    keys = svc.of(request).keys
    await keys.merchant(request)
    return json_response(await keys.list())


@endpoint(
    "Make a merchant API key (the key is in this answer only)",
    auth="merchant",
    body=KeyIn,
    response=KeyCreated,
    status=201,
)
async def create_key(request: Request) -> Response:
    keys = svc.of(request).keys
    await keys.merchant(request)
    body = await read_body(request, KeyIn)
    return json_response(await keys.make(body.label), 201)


@endpoint(
    "Revoke a merchant API key: refused from now on (409 for the key making the call)",
    auth="merchant",
    response=KeyOut,
    errors=(404, 409),
)
async def revoke_key(request: Request) -> Response:
    keys = svc.of(request).keys
    caller = await keys.merchant(request)
    key_id = request.path_params["key_id"]
    if key_id == caller:
        raise Conflict("this request is made with that key; revoke it with another one")
    return json_response(await keys.revoke(key_id))


routes: list[BaseRoute] = [
    Route("/api/keys", list_keys, methods=["GET"]),
    Route("/api/keys", create_key, methods=["POST"]),
    Route("/api/keys/{key_id}", revoke_key, methods=["DELETE"]),
]
