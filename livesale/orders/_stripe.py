"""The ``stripe`` provider: card payments through Stripe PaymentIntents, on the official
``stripe`` package (the only module that imports it).

Card details never reach livesale: the watch page turns the card into a Stripe token
(``tok_…``) or PaymentMethod (``pm_…``) with Stripe.js, and the checkout carries only its id.
The server then finalizes the payment itself:

1. :meth:`StripeProvider.prepare` creates the PaymentIntent (``capture_method=manual``,
   amount in minor units, the order id in its metadata) without confirming it; the order
   stores its id before any money moves, so a crash after this step leaves nothing reserved;
2. :meth:`StripeProvider.authorize` confirms it. Stripe answers ``requires_capture`` (the
   amount is authorized), ``requires_action`` (3-D Secure: the page completes it with
   ``confirmCardPayment(client_secret)``) or a decline;
3. the show's end captures it; a hold that ended first cancels (voids) it; a refund gives
   some or all of it back.

Every request carries an idempotency key made of the order id and the step
(``or_…:create``, ``:confirm``, ``:capture``, ``:cancel``, ``refund:<key>``): Stripe refuses
one key reused with other parameters, so each step has its own. Steps also read the
PaymentIntent's state before acting, so a retry after a crash repeats nothing even where
idempotency keys are not kept (as by a test emulator).

A token's card is used through its card id (``tok_…`` → ``card_…``), which Stripe accepts as
the ``payment_method`` of one PaymentIntent.

The provider pins the Stripe API version it was written and tested against
(:data:`API_VERSION`), as Stripe advises, rather than following whatever the library
defaults to: the requests and the fields read here are those of that version.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast

import stripe

from livesale.config import Settings
from livesale.errors import BadSignature, ValidationFailed
from livesale.orders.payments import Authorization, Payment, ProviderError

log = logging.getLogger("livesale.orders")

_TOKEN = re.compile(r"^(tok|pm|card)_[A-Za-z0-9_]{1,200}$")
#: Seconds for one request to Stripe; a slow answer must not hold a buyer's click for long.
TIMEOUT_SECONDS = 20.0
#: The Stripe API version every request names (``payment_method_types``, ``latest_charge``).
API_VERSION = "2024-06-20"


class StripeProvider:
    """PaymentIntents with manual capture; see the module docstring."""

    name = "stripe"
    test = False

    def __init__(self, settings: Settings) -> None:
        self._http = stripe.HTTPXClient(timeout=TIMEOUT_SECONDS)
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": settings.stripe_api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=2,
            stripe_version=API_VERSION,
        )
        self._webhook_secret = settings.stripe_webhook_secret

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    def check_token(self, token: str) -> None:
        if not _TOKEN.match(token):
            raise ValidationFailed(
                "a card payment needs the Stripe token (tok_…) or PaymentMethod (pm_…) id"
                " that Stripe.js made of the card"
            )

    # --- the steps -------------------------------------------------------------------------

    async def prepare(self, order_id: str, amount: int, currency: str, token: str) -> str:
        method = token
        if token.startswith("tok_"):
            try:
                found = await self._client.v1.tokens.retrieve_async(token)
            except stripe.InvalidRequestError as exc:
                raise ValidationFailed("this card token is unknown to Stripe") from exc
            except stripe.StripeError as exc:
                raise _provider_error("read the card token", exc) from exc
            card = found.to_dict().get("card") or {}
            method = card.get("id", "") if isinstance(card, dict) else ""
            if not method:
                raise ValidationFailed("this Stripe token holds no card")
        try:
            # Typed for the library's newest API version; these are API_VERSION's parameters.
            params: dict[str, Any] = {
                "amount": amount,
                "currency": currency.lower(),
                "capture_method": "manual",
                "payment_method": method,
                "payment_method_types": ["card"],
                "metadata": {"order_id": order_id},
            }
            intent = await self._client.v1.payment_intents.create_async(
                params=cast(Any, params), options={"idempotency_key": f"{order_id}:create"}
            )
        except stripe.StripeError as exc:
            raise _provider_error("create the payment", exc) from exc
        return str(intent.id)

    async def authorize(self, payment: Payment, token: str) -> Authorization:
        current = await self.status(payment)
        if current.status != "none":
            return current  # confirmed before (a retry, or recovery): never confirm twice
        try:
            intent = await self._client.v1.payment_intents.confirm_async(
                payment.ref, options={"idempotency_key": f"{payment.order_id}:confirm"}
            )
        except stripe.CardError as exc:
            return Authorization("declined", _decline_words(exc))
        except stripe.StripeError as exc:
            raise _provider_error("confirm the payment", exc) from exc
        return _account(intent.to_dict())

    async def status(self, payment: Payment) -> Authorization:
        if not payment.ref:
            return Authorization("none")
        return _account(await self._intent(payment.ref))

    async def capture(self, payment: Payment) -> str:
        current = _account(await self._intent(payment.ref))
        if current.status != "authorized":
            return current.status
        intents = self._client.v1.payment_intents
        return await self._step(payment, "capture", intents.capture_async)

    async def void(self, payment: Payment) -> str:
        if not payment.ref:
            return "voided"  # never created: nothing to cancel
        current = _account(await self._intent(payment.ref))
        if current.status in ("voided", "captured", "declined"):
            return current.status
        return await self._step(payment, "cancel", self._client.v1.payment_intents.cancel_async)

    async def _step(self, payment: Payment, step: str, call: Any) -> str:
        """One PaymentIntent step (``capture``, ``cancel``), keyed by the order and the step."""
        try:
            intent = await call(
                payment.ref, options={"idempotency_key": f"{payment.order_id}:{step}"}
            )
        except stripe.StripeError as exc:
            raise _provider_error(f"{step} the payment", exc) from exc
        return _account(intent.to_dict()).status

    async def refund(self, payment: Payment, amount: int, key: str) -> str:
        try:
            done = await self._client.v1.refunds.list_async(
                params={"payment_intent": payment.ref, "limit": 100}
            )
            if not any(r.to_dict().get("metadata", {}).get("key") == key for r in done.data):
                await self._client.v1.refunds.create_async(
                    params={
                        "payment_intent": payment.ref,
                        "amount": amount,
                        "metadata": {"key": key, "order_id": payment.order_id},
                    },
                    options={"idempotency_key": f"refund:{key}"},
                )
        except stripe.StripeError as exc:
            raise _provider_error("refund the payment", exc) from exc
        after = _account(await self._intent(payment.ref))
        if after.refunded >= payment.amount:
            return "refunded"
        return "partially_refunded" if after.refunded else after.status

    # --- webhooks --------------------------------------------------------------------------

    def verify(self, payload: bytes, signature: str) -> dict[str, Any]:
        """The event of a webhook delivery, once its ``Stripe-Signature`` is proven; raises
        :class:`BadSignature` (``400``) for a forged, stale or malformed one."""
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._webhook_secret)
        except stripe.SignatureVerificationError as exc:
            raise BadSignature("the Stripe-Signature does not match this payload") from exc
        except ValueError as exc:
            raise BadSignature("the webhook payload is not a Stripe event") from exc
        return dict(event.to_dict())

    async def _intent(self, ref: str) -> dict[str, Any]:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(
                ref, params={"expand": ["latest_charge"]}
            )
        except stripe.StripeError as exc:
            raise _provider_error("read the payment", exc) from exc
        return dict(intent.to_dict())


#: The events livesale acts on. Each only says "look again": the order is brought in line with
#: the PaymentIntent as Stripe reports it now, so no step depends on one event type arriving.
EVENTS = (
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.requires_action",
    "charge.refunded",
)


def event_payment(event: dict[str, Any]) -> str:
    """The PaymentIntent id an event is about, or "" for an event livesale ignores."""
    if event.get("type") not in EVENTS:
        return ""
    obj = (event.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        return ""
    ref = obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    if isinstance(ref, dict):
        ref = ref.get("id")
    return ref if isinstance(ref, str) and ref.startswith("pi_") else ""


def _account(intent: dict[str, Any]) -> Authorization:
    """What a PaymentIntent's state means for an order."""
    status = intent.get("status")
    charge = intent.get("latest_charge")
    refunded = int(charge.get("amount_refunded") or 0) if isinstance(charge, dict) else 0
    match status:
        case "requires_capture":
            return Authorization("authorized")
        case "requires_action" | "requires_source_action":
            return Authorization("requires_action", client_secret=intent.get("client_secret", ""))
        case "processing":
            return Authorization("processing")
        case "requires_confirmation":
            return Authorization("none")
        case "requires_payment_method":
            error = intent.get("last_payment_error") or {}
            if error:
                return Authorization("declined", str(error.get("message") or "card declined"))
            return Authorization("none")
        case "canceled":
            return Authorization("voided")
        case "succeeded":
            return Authorization("captured", refunded=refunded)
    raise ProviderError(f"Stripe reports an unknown payment state {status!r}")


def _decline_words(exc: stripe.CardError) -> str:
    return str(exc.user_message or "your card was declined")


def _provider_error(doing: str, exc: stripe.StripeError) -> ProviderError:
    # The message names what failed, never a key: Stripe's own messages do not carry them.
    log.warning("stripe: could not %s: %s", doing, type(exc).__name__)
    return ProviderError(f"Stripe could not {doing}: {exc.user_message or type(exc).__name__}")
