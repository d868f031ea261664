"""HTTP endpoints of the catalogue and stock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from livesale import services as svc
from livesale.catalogue import state
from livesale.catalogue.component import CATALOGUE, Catalogue, of
from livesale.catalogue.messages import (
    ImportLimits,
    ImportResult,
    LedgerEntry,
    Product,
    ProductIn,
    RowError,
    StockAdjust,
    StockSet,
)
from livesale.catalogue.store import Change
from livesale.db import Connection
from livesale.errors import LivesaleError, StockConflict, ValidationFailed
from livesale.http import endpoint, json_response, read_body
from livesale.values import StockLevel


async def save_products(services: svc.Services, actor: str, items: Sequence[ProductIn]) -> None:
    """Create or replace ``items`` and set the stock of those that carry one, all or nothing:
    in SQLite and Redis as one change (:meth:`~livesale.catalogue.store.StockStore.apply`).

    Every bad row (repeated SKU, stock below what is held or sold) is reported in one
    :class:`ValidationFailed`; nothing is written then, in either store.
    """
    catalogue = services.get(CATALOGUE)
    stocked = [(n, i) for n, i in enumerate(items) if i.stock is not None]
    bad: list[RowError] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.sku in first_seen:
            bad.append(RowError(index, item.sku, f"SKU repeats row {first_seen[item.sku]}"))
        first_seen.setdefault(item.sku, index)
    if bad:
        # Refused already; the stock rows are checked too so that one answer names them all.
        levels = await catalogue.stock.get_many([i.sku for _, i in stocked])
        for index, item in stocked:
            assert item.stock is not None
            try:
                state.set_on_hand(levels[item.sku], item.stock)
            except LivesaleError as exc:
                bad.append(RowError(index, item.sku, exc.detail))
        raise _bad_rows(bad)

    async def write(conn: Connection) -> None:
        await catalogue.products.upsert(conn, items)

    def refuse(rows: list[tuple[int, StockConflict]]) -> LivesaleError:
        return _bad_rows([RowError(stocked[n][0], stocked[n][1].sku, e.detail) for n, e in rows])

    await catalogue.stock.apply(
        [Change(i.sku, set_to=i.stock) for _, i in stocked],
        actor=actor,
        reason="import",
        write=write,
        refuse=refuse,
    )


def _bad_rows(bad: list[RowError]) -> ValidationFailed:
    bad.sort(key=lambda e: e.index)
    return ValidationFailed(
        f"{len(bad)} bad row(s); nothing was imported",
        errors=[msgspec.to_builtins(e) for e in bad],
    )


async def _with_stock(catalogue: Catalogue, products: list[Product]) -> list[Product]:
    levels = await catalogue.stock.get_many([p.sku for p in products])
    return [
        Product(p.sku, p.title, p.description, p.image_url, p.price, levels[p.sku])
        for p in products
    ]


@endpoint(
    "Create (201) or replace (200) one product",
    auth="merchant",
    body=ProductIn,
    response=Product,
    also=(201,),
)
async def put_product(request: Request) -> Response:
    services = svc.of(request)
    actor = await services.keys.merchant(request)
    item = await read_body(request, ProductIn)
    catalogue = of(request)
    existed = bool(await catalogue.products.existing([item.sku]))
    await save_products(services, actor, [item])
    (product,) = await _with_stock(catalogue, [await catalogue.products.get(item.sku)])
    return json_response(product, 200 if existed else 201)


@endpoint(
    "Import many products, all or nothing",
    auth="merchant",
    # At least one product; how many at most is a setting, which the import limits route
    # tells (the handler refuses more in its own words).
    body=Annotated[list[ProductIn], msgspec.Meta(extra_json_schema={"minItems": 1})],
    response=ImportResult,
    status=201,
)
async def import_products(request: Request) -> Response:
    services = svc.of(request)
    actor = await services.keys.merchant(request)
    items = await read_body(request, list[ProductIn])
    if not items:
        raise ValidationFailed("nothing to import: the list is empty")
    limit = services.settings.max_import_rows
    if len(items) > limit:
        raise ValidationFailed(
            f"at most {limit} products per import, not {len(items)}", max_rows=limit
        )
    await save_products(services, actor, items)
    return json_response(ImportResult(len(items), [i.sku for i in items]), 201)


@endpoint("What one import may carry", auth="merchant", response=ImportLimits)
async def import_limits(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    settings = services.settings
    return json_response(ImportLimits(settings.max_import_rows, settings.max_body_bytes))


@endpoint("The catalogue, with stock", response=list[Product])
async def list_products(request: Request) -> Response:
    catalogue = of(request)
    return json_response(await _with_stock(catalogue, await catalogue.products.all()))


@endpoint("One product, with stock", response=Product)
async def get_product(request: Request) -> Response:
    catalogue = of(request)
    product = await catalogue.products.get(request.path_params["sku"])
    return json_response((await _with_stock(catalogue, [product]))[0])


@endpoint(
    "Set a SKU's on-hand count", auth="merchant", body=StockSet, response=StockLevel, errors=(409,)
)
async def set_stock(request: Request) -> Response:
    services = svc.of(request)
    actor = await services.keys.merchant(request)
    body = await read_body(request, StockSet)
    level = await of(request).stock.change(
        request.path_params["sku"], actor=actor, reason=body.reason, set_to=body.on_hand
    )
    return json_response(level)


@endpoint(
    "Add to (or remove from) on-hand",
    auth="merchant",
    body=StockAdjust,
    response=StockLevel,
    errors=(409,),
)
async def adjust_stock(request: Request) -> Response:
    services = svc.of(request)
    actor = await services.keys.merchant(request)
    body = await read_body(request, StockAdjust)
    level = await of(request).stock.change(
        request.path_params["sku"], actor=actor, reason=body.reason, delta=body.delta
    )
    return json_response(level)


@endpoint("A SKU's stock counters", response=StockLevel)
async def get_stock(request: Request) -> Response:
    catalogue = of(request)
    sku = request.path_params["sku"]
    await catalogue.products.get(sku)
    return json_response(await catalogue.stock.get(sku))


@endpoint("A SKU's stock ledger, newest first", auth="merchant", response=list[LedgerEntry])
async def get_ledger(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    catalogue = of(request)
    sku = request.path_params["sku"]
    await catalogue.products.get(sku)
    return json_response(await catalogue.stock.ledger(sku))


routes: list[BaseRoute] = [
    Route("/api/products", put_product, methods=["POST"]),
    Route("/api/products", list_products, methods=["GET"]),
    Route("/api/products/import", import_products, methods=["POST"]),
    Route("/api/products/import/limits", import_limits, methods=["GET"]),
    Route("/api/products/{sku}", get_product, methods=["GET"]),
    Route("/api/stock/{sku}", get_stock, methods=["GET"]),
    Route("/api/stock/{sku}", set_stock, methods=["PUT"]),
    Route("/api/stock/{sku}/adjust", adjust_stock, methods=["POST"]),
    Route("/api/stock/{sku}/ledger", get_ledger, methods=["GET"]),
]
