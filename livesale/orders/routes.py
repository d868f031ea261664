"""HTTP endpoints of the sale: holds, checkout, orders, fulfilment, the webhook, and the stock
rebuild (which needs the orders' figures)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from livesale import events, limits
from livesale import services as svc
from livesale.auth import viewer
from livesale.clients import client_of
from livesale.config import Settings
from livesale.errors import Forbidden, NotFound, Unavailable, ValidationFailed
from livesale.http import endpoint, json_response, read_body
from livesale.money import Total
from livesale.orders import state
from livesale.orders.component import of
from livesale.orders.holds import announce_ended, hold_event, hold_out
from livesale.orders.messages import (
    CancelIn,
    CancelUnpaidIn,
    CheckoutIn,
    Delivery,
    Fulfilment,
    HoldIn,
    HoldOut,
    MyOrder,
    OrderOut,
    PaymentsOut,
    ProviderInfo,
    RefundIn,
    ShipIn,
    ShipmentsOut,
    ShowStats,
    WebhookIn,
    WebhookOut,
)
from livesale.orders.payments import TestProvider
from livesale.orders.recovery import StockDifference, reconcile
from livesale.shows import SHOWS, merchant_or_host

_encode = msgspec.json.Encoder().encode
#: Parcels one request may mark shipped (a show's whole batch fits in a few).
MAX_SHIPMENTS = 5000

Body = TypeVar("Body", CancelIn, RefundIn, CancelUnpaidIn)


async def optional_body(request: Request, kind: type[Body]) -> Body:
    """The request's body as ``kind``, or ``kind``'s defaults when it sent none."""
    return await read_body(request, kind) if await request.body() else kind()


@endpoint(
    "Buy click: hold stock for this viewer",
    auth="viewer",
    body=HoldIn,
    response=HoldOut,
    status=201,
    errors=(409, 429, 503),
)
async def create_hold(request: Request) -> Response:
    services = svc.of(request)
    claims = viewer(request, services.signer)
    body = await read_body(request, HoldIn)
    if body.qty > services.settings.max_qty_per_click:
        raise ValidationFailed(
            f"at most {services.settings.max_qty_per_click} units a click",
            limit=services.settings.max_qty_per_click,
        )
    orders = of(request)
    client = client_of(request)
    try:
        outcome = await orders.holds.reserve(
            request.path_params["show_id"],
            claims.vid,
            body.sku,
            body.qty,
            body.idempotency_key,
            client=client,
        )
    except Unavailable:
        orders.stock_lost()
        raise
    if outcome.reaped:
        await announce_ended(services.redis, list(outcome.reaped), outcome.available)
    if outcome.status == "not_live" and not outcome.show_state:
        # Redis has no mirror of the show: an unknown show is a 404 (this raises), a show
        # whose room was forgotten after it closed says what it is.
        show = await services.get(SHOWS).get(request.path_params["show_id"])
        outcome = replace(outcome, show_state=show.state)
    state.raise_for(outcome)
    assert outcome.hold is not None
    return Response(_encode(hold_out(outcome.hold)), 201, media_type="application/json")


@endpoint("A hold", auth="viewer", response=HoldOut)
async def get_hold(request: Request) -> Response:
    services = svc.of(request)
    claims = viewer(request, services.signer)
    hold = await of(request).holds.get(request.path_params["hold_id"])
    if hold.viewer_id != claims.vid:
        raise Forbidden("this hold belongs to another viewer")
    return json_response(hold_out(hold))


@endpoint("Release a hold", auth="the hold's viewer", response=HoldOut, errors=(409,))
async def release_hold(request: Request) -> Response:
    services = svc.of(request)
    claims = viewer(request, services.signer)
    orders = of(request)
    outcome = await orders.holds.release(request.path_params["hold_id"], claims.vid)
    state.raise_for(outcome)
    assert outcome.hold is not None
    await events.publish(services.redis, outcome.hold.show_id, hold_event(outcome.hold))
    return json_response(hold_out(outcome.hold))


@endpoint(
    "Pay for a hold: 201 confirmed, 202 when the buyer's bank asks for 3-D Secure"
    " (``next_action``; then send the same checkout again)",
    auth="the hold's viewer",
    body=CheckoutIn,
    response=OrderOut,
    status=201,
    also=(200, 202),
    errors=(402, 409, 429, 502),
)
async def checkout(request: Request) -> Response:
    services = svc.of(request)
    claims = viewer(request, services.signer)
    await limits.check(services, "checkout", client_of(request))
    body = await read_body(request, CheckoutIn)
    order, status = await of(request).sales.checkout(request.path_params["hold_id"], claims, body)
    return json_response(order, status)


@endpoint(
    "Orders, oldest first (?show=ID, ?state=confirmed)", auth="merchant", response=list[OrderOut]
)
async def list_orders(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    book = of(request).book
    return json_response(
        await book.orders(request.query_params.get("show"), request.query_params.get("state"))
    )


@endpoint("One order", auth="merchant", response=OrderOut)
async def get_order(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    return json_response(await of(request).book.order(request.path_params["order_id"]))


@endpoint(
    "Mark a manual (pay on delivery) order paid", auth="merchant", response=OrderOut, errors=(409,)
)
async def mark_paid(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    sales = of(request).sales
    return json_response(await sales.mark_paid(request.path_params["order_id"]))


@endpoint(
    "Cancel a confirmed order before capture: the payment is voided, the units go back on sale",
    auth="merchant",
    body=CancelIn,
    response=OrderOut,
    body_required=False,
    errors=(409, 502),
)
async def cancel_order(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    body = await optional_body(request, CancelIn)
    orders = of(request)
    order_id = await orders.returns.cancel(request.path_params["order_id"], body.reason)
    return json_response(await orders.book.order(order_id))


@endpoint(
    "Refund a paid order, whole or some units: the money goes back, and so do the units",
    auth="merchant",
    body=RefundIn,
    response=OrderOut,
    body_required=False,
    errors=(409, 502),
)
async def refund_order(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    body = await optional_body(request, RefundIn)
    orders = of(request)
    order_id = await orders.returns.refund(
        request.path_params["order_id"], body.qty, body.reason, body.idempotency_key
    )
    return json_response(await orders.book.order(order_id))


@endpoint(
    "Cancel every manual order of the show whose payment is still due",
    auth="merchant",
    body=CancelUnpaidIn,
    response=list[OrderOut],
    body_required=False,
    errors=(502,),
)
async def cancel_unpaid(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    show_id = request.path_params["show_id"]
    await services.get(SHOWS).get(show_id)
    body = await optional_body(request, CancelUnpaidIn)
    orders = of(request)
    cancelled = await orders.returns.cancel_unpaid(show_id, body.reason)
    return json_response([await orders.book.order(i) for i in cancelled])


@endpoint("The payment providers this shop accepts, for the watch page", response=PaymentsOut)
async def payment_providers(request: Request) -> Response:
    settings = svc.of(request).settings
    infos = [
        ProviderInfo(
            name=name,
            publishable_key=settings.stripe_publishable_key if name == "stripe" else "",
            js_url=settings.stripe_js_url if name == "stripe" else "",
        )
        for name in of(request).providers
    ]
    return json_response(PaymentsOut(providers=infos, test_mode=settings.test_payments))


@endpoint(
    "Stripe's webhook: PaymentIntent and refund events, signed",
    auth="Stripe (signed)",
    errors=(404,),
)
async def stripe_webhook(request: Request) -> Response:
    orders = of(request)
    provider = orders.providers.get("stripe")
    if provider is None:
        raise NotFound("this shop does not take card payments through Stripe")
    from livesale.orders._stripe import StripeProvider

    assert isinstance(provider, StripeProvider)
    event = provider.verify(await request.body(), request.headers.get("stripe-signature", ""))
    order_id = await orders.stripe_event(event)
    return json_response({"received": True, "order_id": order_id or None})


@endpoint(
    "Live sales of a show: units, revenue (refunds taken off), live holds; test money only"
    " with ?test=include",
    auth="merchant or host",
    response=ShowStats,
)
async def show_stats(request: Request) -> Response:
    services = svc.of(request)
    show_id = request.path_params["show_id"]
    await merchant_or_host(request, show_id)
    include = request.query_params.get("test", "exclude")
    if include not in ("include", "exclude"):
        raise ValidationFailed("test must be include or exclude")
    skus = await services.get(SHOWS).lineup_skus(show_id)
    rows = await services.db.fetchall(
        "SELECT currency, test, COUNT(*) AS n, SUM(qty - returned_qty) AS units,"
        " SUM(amount - refunded_amount) AS amount FROM orders"
        " WHERE show_id = ? AND state = 'confirmed' GROUP BY currency, test ORDER BY currency",
        (show_id,),
    )
    test_orders = sum(int(r["n"]) for r in rows if r["test"])
    counted = [r for r in rows if include == "include" or not r["test"]]
    revenue: dict[str, int] = {}
    for r in counted:
        revenue[r["currency"]] = revenue.get(r["currency"], 0) + int(r["amount"])
    holds = await of(request).holds.live(show_id, skus)
    return json_response(
        ShowStats(
            show_id=show_id,
            orders=sum(int(r["n"]) for r in counted),
            units=sum(int(r["units"]) for r in counted),
            revenue=[Total(amount=a, currency=c) for c, a in revenue.items()],
            live_holds=len(holds),
            held_units=sum(h.qty for h in holds),
            test_orders=test_orders,
            includes_test=include == "include",
        )
    )


@endpoint(
    "The show's fulfilment batches (one parcel per buyer and batch) after its end;"
    " ?batch=N for one batch",
    auth="merchant",
    response=Fulfilment,
)
async def fulfilment(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    closing = of(request).closing
    raw = request.query_params.get("batch")
    batch = None
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
            raise ValidationFailed("batch must be a whole number from 1")
        batch = int(raw)
    return json_response(await closing.fulfilment(request.path_params["show_id"], batch))


@endpoint(
    "Pack the orders taken on the show's replay since its last batch into a new batch now",
    auth="merchant",
    response=Fulfilment,
    status=201,
    errors=(404, 409),
)
async def cut_batch(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    closing = of(request).closing
    return json_response(await closing.cut(request.path_params["show_id"]), 201)


@endpoint(
    "Mark parcels of the show's batch shipped (carrier, tracking number), all or none",
    auth="merchant",
    body=list[ShipIn],
    response=ShipmentsOut,
    errors=(404, 409),
)
async def ship_parcels(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    items = await read_body(request, list[ShipIn])
    if len(items) > MAX_SHIPMENTS:
        raise ValidationFailed(f"at most {MAX_SHIPMENTS} parcels per request")
    closing = of(request).closing
    return json_response(await closing.ship(request.path_params["show_id"], items))


@endpoint(
    "The calling viewer's orders across shows, with their parcels",
    auth="viewer",
    response=list[MyOrder],
)
async def my_orders(request: Request) -> Response:
    services = svc.of(request)
    claims = viewer(request, services.signer)
    return json_response(await of(request).closing.orders_of(claims.vid))


@endpoint(
    "Set the webhook URL; answers a new signing secret",
    auth="merchant",
    body=WebhookIn,
    response=WebhookOut,
)
async def put_webhook(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    body = await read_body(request, WebhookIn)
    return json_response(await of(request).webhooks.configure(body.url))


@endpoint("The webhook's delivery log, newest first", auth="merchant", response=list[Delivery])
async def list_deliveries(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    return json_response(await of(request).webhooks.deliveries())


@endpoint(
    "Rebuild stock from the database now; answers every difference found",
    auth="merchant",
    response=list[StockDifference],
)
async def reconcile_stock(request: Request) -> Response:
    services = svc.of(request)
    await services.keys.merchant(request)
    return json_response(await reconcile(services))


def describe(document: dict[str, Any], settings: Settings) -> None:
    """Write into the OpenAPI ``document`` what this server's settings accept of the sale's
    bodies, where the message types allow more: the providers a checkout may name (and the
    tokens each takes), the units one buy click may hold, whether a webhook may be http."""
    schemas = document["components"]["schemas"]
    tokens: dict[str, dict[str, Any]] = {
        "test": {"enum": list(TestProvider.TOKENS)},
        "manual": {"type": "string", "maxLength": 200},
        "stripe": {"type": "string", "minLength": 1, "maxLength": 200},
    }
    schemas["PaymentIn"] = {
        "title": "PaymentIn",
        "description": schemas["PaymentIn"].get("description", ""),
        "oneOf": [
            {
                "type": "object",
                "properties": {"provider": {"const": name}, "token": tokens[name]},
                "required": ["provider"] if name == "manual" else ["provider", "token"],
                "additionalProperties": False,
            }
            for name in settings.providers
        ],
    }
    schemas["HoldIn"]["properties"]["qty"]["maximum"] = settings.max_qty_per_click
    if not settings.allow_insecure_webhooks:
        schemas["WebhookIn"]["properties"]["url"]["pattern"] = r"^https://\S+$"


#: The buy click first: Starlette tries routes in order, and a flash sale sends thousands of buy
#: clicks a second (the app puts these routes before every other domain's). The order changes
#: no answer: ``/api/stock/reconcile`` (POST) shares its path shape with the catalogue's
#: ``/api/stock/{sku}`` (GET, PUT) but not its methods, and Starlette prefers a route matching
#: path and method wherever it stands.
routes: list[BaseRoute] = [
    Route("/api/shows/{show_id}/holds", create_hold, methods=["POST"]),
    Route("/api/stock/reconcile", reconcile_stock, methods=["POST"]),
    Route("/api/holds/{hold_id}", get_hold, methods=["GET"]),
    Route("/api/holds/{hold_id}", release_hold, methods=["DELETE"]),
    Route("/api/holds/{hold_id}/checkout", checkout, methods=["POST"]),
    Route("/api/orders", list_orders, methods=["GET"]),
    Route("/api/orders/{order_id}", get_order, methods=["GET"]),
    Route("/api/orders/{order_id}/paid", mark_paid, methods=["POST"]),
    Route("/api/orders/{order_id}/cancel", cancel_order, methods=["POST"]),
    Route("/api/orders/{order_id}/refund", refund_order, methods=["POST"]),
    Route("/api/shows/{show_id}/orders/cancel-unpaid", cancel_unpaid, methods=["POST"]),
    Route("/api/payments", payment_providers, methods=["GET"]),
    Route("/api/payments/stripe/webhook", stripe_webhook, methods=["POST"]),
    Route("/api/shows/{show_id}/fulfilment", fulfilment, methods=["GET"]),
    Route("/api/shows/{show_id}/batches", cut_batch, methods=["POST"]),
    Route("/api/shows/{show_id}/shipments", ship_parcels, methods=["POST"]),
    Route("/api/me/orders", my_orders, methods=["GET"]),
    Route("/api/shows/{show_id}/stats", show_stats, methods=["GET"]),
    Route("/api/webhook", put_webhook, methods=["PUT"]),
    Route("/api/webhook/deliveries", list_deliveries, methods=["GET"]),
]
