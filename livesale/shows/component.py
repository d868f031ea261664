"""The shows' part of the running server, and who may change a show."""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request

from livesale import services as svc
from livesale.catalogue import CATALOGUE
from livesale.errors import Unauthorized
from livesale.http import bearer_token
from livesale.services import Part, Services
from livesale.shows.store import ShowStore

SHOWS: Part[ShowStore] = Part("shows")


def build(services: Services) -> ShowStore:
    """The show store over this server's SQLite, Redis and catalogue; it tells the rooms of
    the merchant's stock changes."""
    store = ShowStore(
        services.db,
        services.redis,
        services.scripts,
        services.get(CATALOGUE),
        services.settings.base_url,
        services.settings.grace_seconds,
        replay_days=services.settings.keep_recordings,
    )
    services.get(CATALOGUE).on_stock_change(store.stock_changed)
    return store


def of(conn: HTTPConnection) -> ShowStore:
    """The show store of the app serving ``conn``."""
    return svc.of(conn).get(SHOWS)


async def merchant_or_host(request: Request, show_id: str) -> str:
    """The actor allowed to change ``show_id``: a merchant key id or ``host:<show>``.

    401 without a credential, 403 when it is neither a merchant key nor this show's host token.
    """
    services = svc.of(request)
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("this needs a merchant API key or the show's host token")
    if token.startswith("host_"):
        await services.get(SHOWS).verify_host(show_id, token)
        return f"host:{show_id}"
    return await services.keys.merchant(request)
