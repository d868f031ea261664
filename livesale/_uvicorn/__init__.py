"""The one place livesale reaches into uvicorn: its protocol classes, subclassed for deadlines.

:mod:`livesale._uvicorn.protocols` subclasses uvicorn's httptools HTTP protocol (a handshake
deadline, a body deadline, a header size limit, a cap on connections per address; each
response's head and body in one write) and its websockets-sansio WebSocket protocol (a bounded
send buffer, aborting peers that stopped reading, direct frame writes, counted in the cap).
Those classes are uvicorn's internals: :data:`PRIVATE_NAMES` lists every name of theirs the
subclasses override or use, and :func:`server_protocols` checks them against the installed uvicorn
before importing the subclasses. If one moved it logs one line and the server runs on uvicorn's
own protocols: h11 for HTTP, whose own limit bounds the request head (answered 400, not 431),
and no deadlines or per-address cap (the server sets uvicorn's ``limit_concurrency`` instead);
two writes per response, frames sent the ASGI way. Every other answer stays the same.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import logging
import re
from typing import Any

from livesale.transport import AddressCounts, EdgeLimits

log = logging.getLogger("livesale")

_HTTP = "uvicorn.protocols.http.httptools_impl"
_WS = "uvicorn.protocols.websockets.websockets_sansio_impl"

#: Every uvicorn name the protocol subclasses rely on: (module, class, name, kind), kind being
#: ``method`` (overridden or called) or ``attribute`` (set by uvicorn's own code, then read or
#: replaced).
PRIVATE_NAMES: tuple[tuple[str, str, str, str], ...] = (
    (_HTTP, "HttpToolsProtocol", "connection_made", "method"),
    (_HTTP, "HttpToolsProtocol", "connection_lost", "method"),
    (_HTTP, "HttpToolsProtocol", "data_received", "method"),
    (_HTTP, "HttpToolsProtocol", "on_message_begin", "method"),
    (_HTTP, "HttpToolsProtocol", "on_url", "method"),
    (_HTTP, "HttpToolsProtocol", "on_header", "method"),
    (_HTTP, "HttpToolsProtocol", "on_headers_complete", "method"),
    (_HTTP, "HttpToolsProtocol", "on_message_complete", "method"),
    (_HTTP, "HttpToolsProtocol", "handle_websocket_upgrade", "method"),
    (_HTTP, "HttpToolsProtocol", "send_400_response", "method"),
    (_HTTP, "HttpToolsProtocol", "loop", "attribute"),
    (_HTTP, "HttpToolsProtocol", "transport", "attribute"),
    (_HTTP, "HttpToolsProtocol", "cycle", "attribute"),
    (_HTTP, "HttpToolsProtocol", "scope", "attribute"),
    (_HTTP, "HttpToolsProtocol", "pipeline", "attribute"),
    (_HTTP, "RequestResponseCycle", "transport", "attribute"),
    (_HTTP, "RequestResponseCycle", "response_started", "attribute"),
    (_HTTP, "RequestResponseCycle", "response_complete", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "connection_made", "method"),
    (_WS, "WebSocketsSansIOProtocol", "connection_lost", "method"),
    (_WS, "WebSocketsSansIOProtocol", "handle_connect", "method"),
    (_WS, "WebSocketsSansIOProtocol", "start_keepalive", "method"),
    (_WS, "WebSocketsSansIOProtocol", "schedule_ping", "method"),
    (_WS, "WebSocketsSansIOProtocol", "send_keepalive_ping", "method"),
    (_WS, "WebSocketsSansIOProtocol", "keepalive_timeout", "method"),
    (_WS, "WebSocketsSansIOProtocol", "send", "method"),
    (_WS, "WebSocketsSansIOProtocol", "loop", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "transport", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "conn", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "response", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "scope", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "writable", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "queue", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "request", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "handshake_complete", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "close_sent", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "close_timer", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "close_timeout", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "ping_interval", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "ping_timeout", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "ping_timer", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "pong_timer", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "pending_ping_payload", "attribute"),
    (_WS, "WebSocketsSansIOProtocol", "ping_sent_at", "attribute"),
)


def check(names: tuple[tuple[str, str, str, str], ...] | None = None) -> list[str]:
    """What is missing in the installed uvicorn, in words; empty when all is in place.
    (Default: :data:`PRIVATE_NAMES`.)"""
    names = PRIVATE_NAMES if names is None else names
    problems: list[str] = []
    sources: dict[tuple[str, str], str] = {}
    for module_name, class_name, name, kind in names:
        try:
            owner: Any = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            problems.append(f"uvicorn has no {module_name}.{class_name} ({exc})")
            continue
        where = f"uvicorn's {class_name}.{name}"
        if kind == "method":
            if not callable(getattr(owner, name, None)):
                problems.append(f"{where}() is gone")
            continue
        key = (module_name, class_name)
        if key not in sources:
            try:
                # The methods' source, not the class's: finding a class's source parses its
                # whole module with ``ast``, which CPython 3.11 cannot do in two threads at once.
                sources[key] = "\n".join(
                    inspect.getsource(member)
                    for member in vars(owner).values()
                    if inspect.isfunction(member)
                )
            except (OSError, TypeError) as exc:
                problems.append(f"cannot read uvicorn's {class_name}: {exc}")
                sources[key] = ""
        if not re.search(rf"self\.{re.escape(name)}\s*[:=]", sources[key]):
            problems.append(f"{where} is no longer set")
    return list(dict.fromkeys(problems))


@functools.cache
def server_protocols() -> tuple[Any, Any]:
    """The ``http`` and ``ws`` protocols for uvicorn's config: livesale's subclasses when the
    installed uvicorn has what they need, else uvicorn's defaults (said once in the log)."""
    problems = check()
    if problems:
        log.warning(
            "transport: running on uvicorn's own protocols (no header or body deadline, no cap "
            "per address, no direct frame writes): %s",
            "; ".join(problems),
        )
        sansio = importlib.util.find_spec(_WS) is not None
        return "h11", "websockets-sansio" if sansio else "auto"
    from livesale._uvicorn.protocols import DeadlineHttpProtocol, DeadlineWebSocketProtocol

    return DeadlineHttpProtocol, DeadlineWebSocketProtocol


def protocols_for(limits: EdgeLimits) -> tuple[Any, Any]:
    """:func:`server_protocols` for one server: the subclasses holding its connections to
    ``limits`` (with counts of their own), or uvicorn's protocol names."""
    http, ws = server_protocols()
    if isinstance(http, str):
        return http, ws
    counts = AddressCounts(limits.max_connections_per_address)
    return http.bound(limits, counts), ws.bound(counts)
