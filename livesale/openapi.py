"""The OpenAPI 3.1 document, generated from the routes that exist.

Every route of the app appears: JSON endpoints with their msgspec body and response schemas
(from :func:`livesale.http.endpoint` metadata), every other route (pages, WebSocket, metrics)
with the summary line of its handler's docstring.

Each operation lists every status it answers, so a client (or a fuzzer) can hold the server to
them: its successes, the refusals its metadata names (``errors``: 409, 429, ...), those that
follow from what it takes (401/403 with a credential, 404 with an id in the path,
413/415/422 with a body) and the HTTP edge's own, which any request may get (:data:`EDGE`).
What only the server's settings decide is written from them: /metrics behind its token here,
the sale's bodies by :func:`livesale.orders.describe`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from livesale import __version__
from livesale.config import Settings
from livesale.http import PROBLEM_BASE, EndpointInfo

_PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "merchant": [{"merchantKey": []}],
    "host": [{"hostToken": []}],
    "merchant or host": [{"merchantKey": []}, {"hostToken": []}],
    "viewer": [{"viewerToken": []}],
    "the hold's viewer": [{"viewerToken": []}],
    "operator": [{"metricsToken": []}],
}

#: What each status means, as the document describes it.
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted: more is needed first (see the body)",
    204: "No content",
    400: "Malformed request (JSON, SDP, Host header or signature)",
    401: "No credential",
    402: "Payment declined",
    403: "Wrong credential, or not this one's",
    404: "No such resource",
    405: "Method not allowed",
    408: "The request body did not arrive in time",
    409: "The resource's state does not allow it",
    413: "Request body too large",
    415: "Unsupported media type",
    421: "The request names another host",
    422: "Invalid request",
    429: "Too many requests (see Retry-After)",
    431: "Request headers too large",
    502: "The payment provider failed",
    503: "Temporarily unavailable",
}
#: Refusals of the HTTP edge, before any endpoint: a malformed or foreign Host, a body too
#: slow, too many connections from one address, a request head too large.
EDGE = (400, 408, 421, 429, 431)


def _summary(handler: Any) -> str:
    doc = (getattr(handler, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else getattr(handler, "__name__", "endpoint")


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": REASONS.get(status, "Refused"),
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _responses(meta: EndpointInfo | None, path_params: bool, ok: dict[str, Any]) -> dict[str, Any]:
    if meta is None:  # a route without metadata: its handler's docstring names it
        refusals = {*EDGE, *((404,) if path_params else ())}
        return {"200": ok, **{str(s): _problem(s) for s in sorted(refusals)}}
    refusals = set(EDGE) | set(meta.errors)
    if meta.auth in _SECURITY:
        refusals |= {401, 403}
    if path_params:
        refusals.add(404)
    if meta.body is not None or meta.request_media_type != "application/json":
        refusals |= {413, 415}
        if meta.request_media_type == "application/json":
            refusals.add(422)
    responses: dict[str, Any] = {}
    if meta.status < 400:
        for status in (meta.status, *meta.also):
            responses[str(status)] = ok if status != 204 else {"description": REASONS[204]}
    else:
        refusals.add(meta.status)
    for status in sorted(refusals):
        responses[str(status)] = _problem(status)
        if meta.response_media_type == "text/html" and status not in EDGE:
            # A page's own refusals are pages too (livesale.pages.page_errors); the edge's,
            # before any endpoint, stay problems.
            responses[str(status)] = {
                "description": REASONS.get(status, "Refused"),
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
    return dict(sorted(responses.items()))


def document(routes: list[BaseRoute], settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document describing ``routes`` as served with ``settings``."""
    info: list[tuple[str, str, Any, EndpointInfo | None]] = []
    for route in _flatten(routes):
        if isinstance(route, Route):
            if not route.include_in_schema:
                continue
            meta = getattr(route.endpoint, "__livesale_endpoint__", None)
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                info.append((route.path, method.lower(), route.endpoint, meta))
        elif isinstance(route, WebSocketRoute):
            info.append((route.path, "get", route.endpoint, None))
    types = [t for *_, m in info if m for t in (m.body, m.response) if t is not None]
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler, meta in info:
        operation: dict[str, Any] = {"summary": meta.summary if meta else _summary(handler)}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name, _ in _PARAM.findall(path)
        ]
        if params:
            operation["parameters"] = params
        ok: dict[str, Any] = {"description": "OK"}
        if meta is not None:
            if meta.auth in _SECURITY:
                operation["security"] = _SECURITY[meta.auth]
            body_schema = schema_of[meta.body] if meta.body is not None else None
            if body_schema is None and meta.request_media_type != "application/json":
                body_schema = {"type": "string"}
            if body_schema is not None:
                operation["requestBody"] = {
                    "required": meta.body_required,
                    "content": {meta.request_media_type: {"schema": body_schema}},
                }
            if meta.response is not None:
                ok["content"] = {meta.response_media_type: {"schema": schema_of[meta.response]}}
            elif meta.response_media_type != "application/json":
                ok["content"] = {meta.response_media_type: {"schema": {"type": "string"}}}
        if meta is None and isinstance(handler, type):  # the room WebSocket (an ASGI class)
            operation["responses"] = {
                "101": {"description": "Switching Protocols: the room socket (RFC 6455)"},
                **{str(s): _problem(s) for s in sorted({*EDGE, 401, 403, 404})},
            }
        else:
            operation["responses"] = _responses(meta, bool(params), ok)
        paths.setdefault(_PARAM.sub(r"{\1}", path), {})[method] = operation
    components["Problem"] = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "examples": [PROBLEM_BASE + "sold-out"]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
        "required": ["type", "title", "status", "detail"],
    }
    if settings is not None:
        _narrow(paths, settings)
    return {
        "openapi": "3.1.0",
        "info": {"title": "livesale", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                name: {"type": "http", "scheme": "bearer", "description": desc}
                for name, desc in (
                    ("merchantKey", "a merchant API key (livesale keys create)"),
                    ("hostToken", "the show's host token"),
                    ("viewerToken", "a viewer token from POST /api/viewers"),
                    ("metricsToken", "the server's --metrics-token"),
                )
            },
        },
    }


def _narrow(paths: dict[str, Any], settings: Settings) -> None:
    """What the server's own settings change: /metrics behind its token."""
    metrics = paths.get("/metrics", {}).get("get")
    if metrics is not None and settings.metrics_token:
        metrics["security"] = _SECURITY["operator"]
        metrics["responses"].update({str(s): _problem(s) for s in (401, 403)})
        metrics["responses"] = dict(sorted(metrics["responses"].items()))


def _flatten(routes: list[BaseRoute]) -> list[BaseRoute]:
    flat: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Mount) and route.routes:
            flat.extend(_flatten(list(route.routes)))
        else:
            flat.append(route)
    return flat
