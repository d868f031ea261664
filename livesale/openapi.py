"""The OpenAPI 3.1 document, generated from the routes that exist.

Every route of the app appears: JSON endpoints with their msgspec body and response schemas
(from :func:`livesale.http.endpoint` metadata), every other route (pages, WebSocket, WHIP/WHEP,
metrics) with the summary line of its handler's docstring.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from livesale import __version__
from livesale.http import PROBLEM_BASE, EndpointInfo

_PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "merchant": [{"merchantKey": []}],
    "host": [{"hostToken": []}],
    "merchant or host": [{"merchantKey": []}, {"hostToken": []}],
    "viewer": [{"viewerToken": []}],
}


def _summary(handler: Any) -> str:
    doc = (getattr(handler, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else getattr(handler, "__name__", "endpoint")


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document describing ``routes``."""
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
        responses: dict[str, Any] = {}
        if meta is not None:
            if meta.auth in _SECURITY:
                operation["security"] = _SECURITY[meta.auth]
            if meta.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {meta.request_media_type: {"schema": schema_of[meta.body]}},
                }
            ok: dict[str, Any] = {"description": "OK"}
            if meta.response is not None:
                ok["content"] = {meta.response_media_type: {"schema": schema_of[meta.response]}}
            responses[str(meta.status)] = ok
        else:
            responses["200"] = {"description": "OK"}
        responses["default"] = {
            "description": "An RFC 9457 problem",
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        operation["responses"] = responses
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
                )
            },
        },
    }


def _flatten(routes: list[BaseRoute]) -> list[BaseRoute]:
    flat: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Mount) and route.routes:
            flat.extend(_flatten(list(route.routes)))
        else:
            flat.append(route)
    return flat
