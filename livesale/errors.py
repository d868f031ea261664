"""The livesale error tree. Every refusal the server makes is one of these.

::

    LivesaleError                      500 internal
    ├── BadRequest                     400 bad-request
    │   └── MalformedJson              400 malformed-json
    ├── Unauthorized                   401 unauthorized   (no credential)
    ├── Forbidden                      403 forbidden      (wrong credential or role)
    │   └── Banned                     403 banned         (the host removed the viewer)
    ├── NotFound                       404 not-found
    ├── MethodNotAllowed               405 method-not-allowed
    ├── Misdirected                    421 misdirected    (a Host this server does not serve)
    ├── Conflict                       409 conflict
    │   ├── InvalidTransition          409 invalid-transition
    │   ├── StockConflict              409 stock-conflict
    │   ├── SoldOut                    409 sold-out       (carries ``available``)
    │   ├── LimitExceeded              409 limit
    │   ├── HoldExpired                409 hold-expired   (payment voided, nothing sold)
    │   └── IdempotencyMismatch        409 idempotency-mismatch
    ├── PaymentRequired                402 payment-declined
    ├── PayloadTooLarge                413 payload-too-large
    ├── UnsupportedMediaType           415 unsupported-media-type
    ├── TooManyRequests                429 too-many-requests
    │   └── RateLimited                429 rate-limited   (a client address's rate limit)
    ├── ValidationFailed               422 validation
    │   ├── PaymentProviderRefused     422 payment-provider
    │   ├── WebhookNotHttps            422 webhook-not-https
    │   └── WebhookNotPublic           422 webhook-not-public
    ├── Unavailable                    503 unavailable
    └── StoreError                     500 store          (Redis/SQL failure, translated)
        └── IntegrityFailed            500 store          (a constraint refused a write)

HTTP maps them to RFC 9457 problem objects in one place (:func:`livesale.http.problem_response`);
the store layers translate Redis errors at their boundary with :func:`map_redis_errors` and
SQLite's and PostgreSQL's in :mod:`livesale.db`, all as ``StoreError`` raised ``from`` the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from redis.exceptions import MaxConnectionsError, RedisClusterException, RedisError


class LivesaleError(Exception):
    """Base of every livesale error. ``status`` and ``slug`` drive the problem response."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    #: Seconds after which the client may try again, sent as ``Retry-After`` (RFC 9110 §10.2.3).
    retry_after: int | None = None

    def __init__(self, detail: str = "", *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if retry_after is not None:
            self.retry_after = retry_after
        #: Extension members of the problem object (RFC 9457 §3.2).
        self.extra = extra


class BadRequest(LivesaleError):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJson(BadRequest):
    slug, title = "malformed-json", "Malformed JSON"


class BadSignature(BadRequest):
    slug, title = "signature", "The request's signature does not match"


class Unauthorized(LivesaleError):
    status, slug, title = 401, "unauthorized", "Credentials required"


class Forbidden(LivesaleError):
    status, slug, title = 403, "forbidden", "Not allowed"


class Banned(Forbidden):
    slug, title = "banned", "Removed from this show by its host"


class NotFound(LivesaleError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(LivesaleError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Misdirected(LivesaleError):
    """RFC 9110 §15.5.20: the request names a host this server does not answer for."""

    status, slug, title = 421, "misdirected", "Misdirected request"


class Conflict(LivesaleError):
    status, slug, title = 409, "conflict", "Conflict"


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "Invalid state transition"


class StockConflict(Conflict):
    slug, title = "stock-conflict", "Stock would fall below what is held or sold"


class SoldOut(Conflict):
    slug, title = "sold-out", "Sold out"


class LimitExceeded(Conflict):
    slug, title = "limit", "Per-buyer limit reached"


class HoldExpired(Conflict):
    slug, title = "hold-expired", "The hold expired before checkout completed"


class IdempotencyMismatch(Conflict):
    slug, title = "idempotency-mismatch", "Idempotency key reused with a different request"


class PaymentRequired(LivesaleError):
    status, slug, title = 402, "payment-declined", "Payment declined"


class PayloadTooLarge(LivesaleError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(LivesaleError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class TooManyRequests(LivesaleError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ValidationFailed(LivesaleError):
    status, slug, title = 422, "validation", "Invalid request"


class RateLimited(TooManyRequests):
    """A client address used up a rate limit (:mod:`livesale.limits`)."""

    slug = "rate-limited"


class PaymentProviderRefused(ValidationFailed):
    slug, title = "payment-provider", "This shop does not accept that payment provider"


class WebhookNotHttps(ValidationFailed):
    slug, title = "webhook-not-https", "Webhook URLs must use https"


class WebhookNotPublic(ValidationFailed):
    slug, title = "webhook-not-public", "Webhook URLs must reach a public address"


class BadGateway(LivesaleError):
    status, slug, title = 502, "payment-provider-error", "The payment provider failed"


class Unavailable(LivesaleError):
    status, slug, title = 503, "unavailable", "Temporarily unavailable"


class StoreError(LivesaleError):
    status, slug, title = 500, "store", "Storage failure"


class IntegrityFailed(StoreError):
    """A constraint of the schema (unique, check, foreign key) refused a write."""


class ConfigError(LivesaleError):
    """A setting or the environment prevents the server from starting."""

    slug, title = "config", "Cannot start"


@contextmanager
def map_redis_errors(what: str = "redis") -> Iterator[None]:
    """Translate a Redis failure inside the block into :class:`StoreError` (``what: reason``),
    or :class:`Unavailable` when Redis is full (``maxmemory`` with ``noeviction`` refuses
    writes until memory is freed or the limit raised).

    The one translation at every store boundary; livesale errors raised inside pass through.
    """
    try:
        yield
    except MaxConnectionsError as exc:
        # A cluster client's connections to one node are all in use (it does not wait for one).
        raise Unavailable("the sale is busy: try again shortly", retry_after=1) from exc
    except (RedisError, RedisClusterException) as exc:  # the second: no node of a cluster answers
        if "used memory > 'maxmemory'" in str(exc):
            raise Unavailable(
                "the sale's memory (Redis) is full: try again shortly", retry_after=5
            ) from exc
        raise StoreError(f"{what}: {exc}") from exc
