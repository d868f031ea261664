"""``livesale serve``: the embedded Redis, the app and uvicorn, started and stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import signal
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from types import FrameType
from typing import Any

import uvicorn
from rich.console import Console

from livesale import _uvicorn, datadir, demo, workers
from livesale import services as svc
from livesale.app import assemble, create_app
from livesale.client import CLI_KEY_FILE, MERCHANT_KEY_FILE, SERVER_FILE
from livesale.config import Settings
from livesale.embedded_redis import EmbeddedRedis

log = logging.getLogger("livesale")

#: Room WebSocket frames from clients are small JSON objects; anything bigger is refused (1009).
WS_MAX_SIZE = 4096
#: Ping every 5 s, close 5 s after an unanswered ping: a silent peer is gone within 10 s.
WS_PING_INTERVAL = 5.0
WS_PING_TIMEOUT = 5.0
#: uvicorn's own protocols (the fallback) have no cap per address: past this many connections
#: and requests in all, uvicorn answers 503, well before a process's file descriptors run out.
FALLBACK_CONCURRENCY = 8192
#: Allocations between collections of the youngest GC generation (CPython's default is 700).
GC_GEN0_THRESHOLD = 20_000


def uvicorn_config(app: object, settings: Settings, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's settings for livesale; tests use the same ones."""
    http, ws = _uvicorn.protocols_for(settings.edge)
    fallback = isinstance(http, str)
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        http=http,
        ws=ws,
        ws_max_size=WS_MAX_SIZE,
        ws_ping_interval=WS_PING_INTERVAL,
        ws_ping_timeout=WS_PING_TIMEOUT,
        ws_per_message_deflate=False,
        # h11's bound on a request head (the fallback's; livesale's own protocol has its own).
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=FALLBACK_CONCURRENCY if fallback else None,
        timeout_keep_alive=15,
        timeout_graceful_shutdown=10,
        # Who the client is, is livesale's call (--trust-proxy, livesale.clients): uvicorn would
        # otherwise take X-Forwarded-For from any peer on 127.0.0.1 as the client's address.
        proxy_headers=False,
        lifespan="on",
        server_header=False,
    )


class RedactTokens(logging.Filter):
    """Keep credentials out of logs: uvicorn logs WebSocket paths with their query string."""

    _TOKEN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self._TOKEN.sub(r"\1<redacted>", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = self._TOKEN.sub(r"\1<redacted>", record.msg)
        return True


def quiet_logs() -> None:
    """Redact tokens from uvicorn's logs and keep ICE chatter out of an operator's terminal."""
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
    logging.getLogger("aioice").setLevel(logging.WARNING)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path; call once start-up is done.

    A flash sale keeps thousands of requests in flight, each allocating a few hundred objects,
    so with CPython's defaults the collector runs every few requests and walks every long-lived
    object (modules, the app, its routes) again and again: measured, about half the CPU of a buy
    click. Freezing moves everything built at start-up out of its sight, and a larger first
    threshold collects the young generation less often. Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal it caught once it has shut down; ending with SystemExit lets
    # the embedded Redis be stopped by the ``finally`` below instead of dying mid-write.
    raise SystemExit(0)


async def _prepare(settings: Settings, console: Console) -> svc.Services:
    """Connect, migrate, mint the first keys and seed the demo, before serving anything."""
    services = await svc.build(settings)
    try:
        assemble(services)
        if await services.keys.count() == 0:
            _say_first_key(settings, console, await services.keys.create("first key"))
        cli_key = settings.data_dir / CLI_KEY_FILE
        if not cli_key.exists():
            datadir.write_private(cli_key, await services.keys.create("local cli") + "\n")
        _say_payments(settings, console)
        if settings.demo:
            from livesale.orders import ensure_stock

            await ensure_stock(services)
            studio, watch, fresh = await demo.seed(services)
            console.print("[bold]Demo show[/]" + (" seeded" if fresh else "") + ":")
            console.print(f"  studio (host, keep it secret): {studio}", markup=False)
            console.print(f"  watch:                         {watch}", markup=False)
    except BaseException:
        await services.close()
        raise
    return services


def _say_first_key(settings: Settings, console: Console, key: str) -> None:
    """Show the first merchant key to the person at the terminal; where the output goes to a
    log (systemd's journal, a file) the key goes to a file only its owner can read instead."""
    if console.is_terminal:
        console.print("[bold]Merchant API key[/] (shown once; keep it):")
        console.print(f"  {key}", markup=False)
    else:
        path = settings.data_dir / MERCHANT_KEY_FILE
        datadir.write_private(path, key + "\n")
        console.print(
            f"Merchant API key written to {path} (readable by you only; not printed, as this"
            " output is not a terminal). Move it somewhere safe.",
            markup=False,
        )
    console.print(
        "  Merchant calls and the CLI use it (LIVESALE_API_KEY); "
        "`livesale keys create` makes another."
    )


def _say_payments(settings: Settings, console: Console) -> None:
    """Which money the server takes, said at start; test money loudly."""
    console.print("Payments accepted: " + ", ".join(settings.providers), markup=False)
    if settings.providers == ("manual",):
        console.print(
            "  manual only: buyers pay on delivery or by transfer and you mark orders paid;"
            " --payments stripe takes cards.",
            markup=False,
        )
    if settings.test_payments:
        log.warning(
            "TEST PAYMENTS ARE ON: the test provider confirms orders without real money;"
            " every page says so and every such order is flagged test"
        )
        console.print(
            "[bold red]TEST MODE[/]: the test provider takes no real money; never use it for a"
            " real show."
        )


async def _serve(settings: Settings, log_level: str, console: Console) -> None:
    services = await _prepare(settings, console)
    app = create_app(settings, services)
    quiet_logs()
    server = uvicorn.Server(uvicorn_config(app, settings, log_level))
    with server_marker(settings):
        tune_gc()
        console.print(f"livesale is serving on [bold]{settings.base_url}[/]  (Ctrl-C to stop)")
        await server.serve()
    if not server.started:
        raise SystemExit(1)


@contextlib.contextmanager
def server_marker(settings: Settings) -> Iterator[None]:
    """``server.json`` in the data directory (the CLI finds the server by it) while serving."""
    marker = settings.data_dir / SERVER_FILE
    datadir.write_private(marker, json.dumps({"url": settings.base_url, "pid": os.getpid()}))
    try:
        yield
    finally:
        try:
            if json.loads(marker.read_text()).get("pid") == os.getpid():
                marker.unlink()
        except (OSError, ValueError):
            pass


async def prepare_only(settings: Settings, console: Console) -> None:
    """What one process does before the workers start: migrations, the first keys, the demo."""
    services = await _prepare(settings, console)
    await services.close()


def worker_main(settings: Settings, log_level: str) -> None:
    """A worker process of ``serve --workers``: serve until told to stop."""
    sockets = workers.become_worker(settings, log_level)
    try:
        run_loop(serve_worker(settings, log_level, sockets))
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()


async def serve_worker(settings: Settings, log_level: str, sockets: list[socket.socket]) -> None:
    """One worker of ``serve --workers``: the app on ``sockets`` (the shared port and the
    worker's own unix socket), its own relay and room hub, the shared Redis and data store."""
    services = await svc.build(settings)
    try:
        assemble(services)
    except BaseException:
        await services.close()
        raise
    app = create_app(settings, services)
    quiet_logs()
    server = uvicorn.Server(uvicorn_config(app, settings, log_level))
    tune_gc()
    await server.serve(sockets=sockets)
    if not server.started:
        raise SystemExit(1)


def run(settings: Settings, log_level: str, console: Console) -> None:
    """Run until Ctrl-C or SIGTERM; the embedded Redis (if any) stops after the server."""
    # Everything the server and its Redis create from here is the owner's alone.
    os.umask(datadir.PRIVATE_UMASK)
    tightened = datadir.make_private(settings.data_dir)
    if tightened:
        log.warning(
            "the data directory %s was readable by other users; %d entries (%s) are now the"
            " owner's only (0700 directories, 0600 files)",
            settings.data_dir,
            len(tightened),
            ", ".join(str(p.relative_to(settings.data_dir.parent)) for p in tightened[:3]),
        )
    previous = signal.signal(signal.SIGTERM, _sigterm)
    embedded: EmbeddedRedis | None = None
    try:
        if settings.redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir, settings.redis_maxmemory)
            settings = replace(settings, redis_url=embedded.start())
        if settings.workers > 1:
            workers.supervise(
                settings,
                log_level,
                console,
                prepare=lambda ready: run_loop(prepare_only(ready, console)),
                marker=server_marker,
                target=worker_main,
            )
        else:
            run_loop(_serve(settings, log_level, console))
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            embedded.stop()
        signal.signal(signal.SIGTERM, previous)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
