"""HTTP plumbing shared by every domain: bodies in, JSON and problems out, endpoint metadata.

* :func:`read_body` decodes a request body into a msgspec Struct: malformed JSON is ``400``,
  wrong types, missing fields and broken constraints ``422``.
* :func:`problem_response` is the one place errors become RFC 9457 problem objects.
* :func:`endpoint` attaches the metadata :mod:`livesale.openapi` turns into the OpenAPI document.
* :class:`BodyLimit` refuses bodies over ``max_body_bytes`` with ``413`` before they are read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livesale import errors

log = logging.getLogger("livesale.http")

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]

_encoder = msgspec.json.Encoder()
PROBLEM_BASE = "/problems/"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded by msgspec (Structs, lists, dicts)."""
    return Response(_encoder.encode(body), status, headers, media_type="application/json")


def problem_response(exc: errors.LivesaleError) -> Response:
    """The RFC 9457 problem object for ``exc`` (``application/problem+json``)."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + exc.slug,
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
    }
    body.update(exc.extra)
    headers = {}
    if exc.status == 401:
        # RFC 6750 §3: a 401 names the scheme the client should use.
        headers["WWW-Authenticate"] = 'Bearer realm="livesale"'
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return Response(
        _encoder.encode(body), exc.status, headers, media_type="application/problem+json"
    )


_HTTP_STATUS_ERRORS: dict[int, type[errors.LivesaleError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


async def handle_livesale_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.LivesaleError)
    if isinstance(exc, errors.Unavailable):
        # Expected while stock is rebuilt or a part starts: one line each, or a busy sale's
        # 503s would bury the log in tracebacks that say nothing more.
        log.warning("%s %s unavailable: %s", request.method, request.url.path, exc)
    elif exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return problem_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown route, wrong method) as problems too."""
    assert isinstance(exc, HTTPException)
    kind = _HTTP_STATUS_ERRORS.get(exc.status_code, errors.BadRequest)
    detail = exc.detail if isinstance(exc.detail, str) else kind.title
    if exc.status_code == 404:
        detail = f"no such resource: {request.url.path}"
    response = problem_response(kind(detail))
    response.status_code = exc.status_code
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        # Starlette names the methods of the first route matching the path only; the methods of
        # every route sharing it are allowed (RFC 9110 §15.5.6).
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on the request's path."""
    scope = {**request.scope, "method": ""}
    matching = [
        route
        for route in request.app.router.routes
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] != Match.NONE
    ]
    # The resource is the most literal template matching the path: /api/stock/reconcile, not
    # /api/stock/{sku} with sku="reconcile".
    fewest = min((route.path.count("{") for route in matching), default=0)
    methods: set[str] = set()
    for route in matching:
        if route.path.count("{") == fewest:
            methods |= route.methods or set()
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


async def handle_client_gone(request: Request, exc: Exception) -> Response:
    """A client that left before its body was read (or was cut off for sending it too slowly):
    nothing can reach it, so the answer is only for the metrics, and nothing is logged."""
    return Response(status_code=400)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s crashed", request.method, request.url.path, exc_info=exc)
    return problem_response(errors.LivesaleError("unexpected server error"))


def _number(text: str) -> int | float:
    """A JSON number written with a fraction or an exponent: an ``int`` when it is a whole
    number of sane size (``29.0``, ``1e2``), else a ``float``."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return float(text)
    # ``adjusted()`` bounds the digits first: 1e999999 would be a million-digit int.
    if value.is_finite() and value.adjusted() < 19 and value == value.to_integral_value():
        return int(value)
    return float(text)


_numbers = msgspec.json.Decoder(float_hook=_number)


def decode(data: bytes, kind: type[T]) -> T:
    """Decode JSON ``data`` as ``kind``, translating msgspec's errors to problems.

    JSON has one kind of number, and JSON Schema's ``integer`` is any whole one: ``29.0`` is
    the integer 29 (an OpenAPI client may write it so). msgspec's typed decoding refuses a
    fraction point for an ``int``, so a body refused for a float is decoded once more with whole
    numbers read as integers; the fast path stays the common one."""
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        if "got `float`" in str(exc):
            try:
                return msgspec.convert(_numbers.decode(data), kind)
            except msgspec.ValidationError as again:
                raise errors.ValidationFailed(str(again)) from again
        raise errors.ValidationFailed(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise errors.MalformedJson(f"body is not valid JSON: {exc}") from exc


async def read_body(request: Request, kind: type[T]) -> T:
    """The request body decoded as ``kind``. The caller validates cross-field rules."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
        raise errors.UnsupportedMediaType(f"expected application/json, got {content_type}")
    return decode(await request.body(), kind)


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or ``None`` when absent."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized("use Authorization: Bearer <token>")
    return token.strip()


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413.

    A declared ``Content-Length`` over the limit is refused before the handler runs; a chunked
    body is counted as it is received and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await problem_response(self._too_large())(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> errors.PayloadTooLarge:
        return errors.PayloadTooLarge(f"request body is larger than {self.limit} bytes")


@dataclass(frozen=True)
class EndpointInfo:
    """What the OpenAPI document says about one endpoint."""

    summary: str
    auth: str = "anyone"
    body: Any = None
    response: Any = None
    status: int = 200
    request_media_type: str = "application/json"
    response_media_type: str = "application/json"
    #: False when the body may be left out (its fields' defaults are taken).
    body_required: bool = True
    #: The refusals of this endpoint beyond those :mod:`livesale.openapi` infers from its
    #: credential, path and body (404 for a path's unknown id, 400/413/415/422 for a body...):
    #: 409 for a state that forbids it, 429 for a rate limit, 402, 502, 503.
    errors: tuple[int, ...] = ()
    #: Other successful statuses (202 for a checkout waiting on 3-D Secure, 200 for a repeat).
    also: tuple[int, ...] = ()


def endpoint(
    summary: str,
    *,
    auth: str = "anyone",
    body: Any = None,
    response: Any = None,
    status: int = 200,
    request_media_type: str = "application/json",
    response_media_type: str = "application/json",
    body_required: bool = True,
    errors: tuple[int, ...] = (),
    also: tuple[int, ...] = (),
) -> Callable[[Handler], Handler]:
    """Attach OpenAPI metadata to a handler; ``auth`` is anyone/merchant/host/viewer/..."""
    info = EndpointInfo(
        summary,
        auth,
        body,
        response,
        status,
        request_media_type,
        response_media_type,
        body_required,
        errors,
        also,
    )

    def mark(handler: Handler) -> Handler:
        handler.__livesale_endpoint__ = info  # type: ignore[attr-defined]
        return handler

    return mark
