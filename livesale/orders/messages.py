"""Wire shapes of holds, checkout, orders and fulfilment (msgspec Structs)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from livesale.money import Money, Total
from livesale.values import SkuStr

Qty = Annotated[int, msgspec.Meta(ge=1, le=99)]
IdempotencyKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]{1,100}$")]


class HoldIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/shows/{id}/holds``: a buy click."""

    sku: SkuStr
    qty: Qty
    idempotency_key: IdempotencyKey


class HoldOut(msgspec.Struct, frozen=True):
    """A hold: ``price`` is the unit price fixed when it was made, ``total`` price x qty;
    ``expires_at`` is Unix time in seconds (the buyer's countdown)."""

    hold_id: str
    show_id: str
    sku: str
    qty: int
    state: str
    expires_at: float
    price: Money
    total: Total


class PaymentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``provider`` must be one the merchant enabled (``GET /api/payments``); ``token`` is
    what that provider takes: a Stripe token or PaymentMethod id made by Stripe.js, a test
    token, nothing for ``manual``."""

    provider: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{1,20}$")]
    token: Annotated[str, msgspec.Meta(max_length=200)] = ""


class ShippingIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    email: Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class CheckoutIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/holds/{id}/checkout``."""

    payment: PaymentIn
    shipping: ShippingIn


class Shipping(msgspec.Struct, frozen=True):
    name: str
    address: str
    email: str


class NextAction(msgspec.Struct, frozen=True):
    """What the buyer's browser must do to finish paying: ``authenticate`` with the card's
    bank (3-D Secure) through Stripe.js ``confirmCardPayment(client_secret)``, then send the
    same checkout again."""

    type: Literal["authenticate"]
    client_secret: str


class OrderOut(msgspec.Struct, frozen=True):
    """An order. ``state``: pending, authorized, confirmed (units sold), declined, expired,
    cancelled, refunded. ``payment_status``: none, requires_action, processing, authorized,
    captured, capture_failed, voided, partially_refunded, refunded, declined, due (manual, pay
    on delivery), paid (manual, marked by the merchant). ``test``: money of the test provider,
    never real. ``returned_qty``: units given back (cancelled or refunded); ``refunded`` the
    money given back. ``next_action`` appears only in the buyer's own checkout answer."""

    id: str
    show_id: str
    hold_id: str
    viewer_id: str
    nickname: str
    sku: str
    qty: int
    price: Money
    total: Total
    state: str
    provider: str
    payment_status: str
    shipping: Shipping
    reason: str
    created_at: float
    updated_at: float
    test: bool
    payment_ref: str
    returned_qty: int
    refunded: Total
    next_action: NextAction | None = None


class CancelIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/orders/{id}/cancel``: why (kept with the order and sent in the webhook)."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class RefundIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/orders/{id}/refund``: ``qty`` units (default: every unit not yet given
    back). ``idempotency_key``: the same key never refunds twice."""

    qty: Annotated[int, msgspec.Meta(ge=1, le=99)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    idempotency_key: IdempotencyKey | None = None


class CancelUnpaidIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/shows/{id}/orders/cancel-unpaid``: cancel every manual order still due."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ProviderInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """One payment provider the shop accepts. For ``stripe``: the publishable key and the
    Stripe.js URL the page loads."""

    name: str
    publishable_key: str = ""
    js_url: str = ""


class PaymentsOut(msgspec.Struct, frozen=True):
    """``GET /api/payments``: what the watch page may offer. ``test_mode``: the test provider
    is on, and every page says so."""

    providers: list[ProviderInfo]
    test_mode: bool


class ParcelLine(msgspec.Struct, frozen=True):
    order_id: str
    sku: str
    title: str
    qty: int
    total: Total


#: What a carrier's name and a tracking number may be: printable text (they reach the
#: buyer's page and the merchant's terminal and spreadsheet).
Printable = r"^[^\x00-\x1f\x7f]+$"


class Shipment(msgspec.Struct, frozen=True):
    """How a parcel travels: the carrier, its tracking number, when it was marked shipped."""

    carrier: str
    tracking_number: str
    shipped_at: float


class Parcel(msgspec.Struct, frozen=True):
    """One buyer's parcel: every confirmed line of the show, shipped together. ``id`` is the
    same in every read of the batch; ``shipment`` is set once the merchant ships it."""

    id: str
    viewer_id: str
    nickname: str
    shipping: Shipping
    lines: list[ParcelLine]
    units: int
    totals: list[Total]
    shipment: Shipment | None = None
    #: The show's batch the parcel is packed in: 1 at the end of the show, then one per
    #: round of replay orders.
    batch: int = 1


class ShipIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One parcel marked shipped."""

    parcel_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    carrier: Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=Printable)]
    tracking_number: Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=Printable)]


class ShipmentsOut(msgspec.Struct, frozen=True):
    """What marking parcels shipped did: ``shipped`` parcels are new or corrected (each told
    to its buyer and the ``parcel.shipped`` webhook), ``unchanged`` ones were already so."""

    shipped: int
    unchanged: int
    parcels: list[Parcel]


class MyOrder(msgspec.Struct, frozen=True):
    """An order as its buyer sees it on ``/orders``, with the parcel's journey."""

    id: str
    show_id: str
    show_title: str
    sku: str
    title: str
    qty: int
    total: Total
    state: str
    payment_status: str
    returned_qty: int
    refunded: Total
    created_at: float
    test: bool
    parcel_id: str | None = None
    shipment: Shipment | None = None


class Fulfilment(msgspec.Struct, frozen=True):
    """The show's fulfilment: its first batch is made when the grace period after its end is
    over, and each later one from the orders taken on the replay since. ``unpaid``: confirmed
    orders whose capture failed (not in any parcel until settled)."""

    show_id: str
    state: str
    ready_at: float | None
    parcels: list[Parcel]
    orders: int
    units: int
    unpaid: list[str] = []
    #: The batch asked for, or ``None`` for all of them.
    batch: int | None = None
    #: How many batches the show has had.
    batches: int = 0
    #: Confirmed orders waiting for the next batch (taken on the replay).
    waiting: int = 0


class WebhookIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://\S+$")]


class WebhookOut(msgspec.Struct, frozen=True):
    """The merchant's webhook. ``secret`` signs every delivery:
    ``X-Livesale-Signature: sha256=<hex HMAC-SHA256 of the body>``."""

    url: str
    secret: str


class Delivery(msgspec.Struct, frozen=True):
    id: int
    event: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str
    created_at: float
    delivered_at: float | None


class ShowStats(msgspec.Struct, frozen=True):
    """The studio's live panel: what the show has sold and what buyers hold right now. Money
    of the test provider is left out unless asked for (``?test=include``): ``test_orders``
    counts it either way."""

    show_id: str
    orders: int
    units: int
    #: Confirmed sales per currency, less refunds.
    revenue: list[Total]
    live_holds: int
    held_units: int
    test_orders: int = 0
    includes_test: bool = False
