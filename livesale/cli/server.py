"""``livesale serve`` and ``livesale keys``: the server, and merchant API keys made on a data
directory."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from livesale import origins
from livesale.cli.base import (
    call,
    cli,
    client_options,
    connect,
    err,
    fail,
    out,
    print_json,
    say,
    table,
)
from livesale.clients import trusted_networks
from livesale.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_PAYMENTS,
    DEFAULT_WHEP_SESSIONS_PER_ADDRESS,
    RATE_LIMITS,
    STRIPE_API_BASE,
    STRIPE_JS_URL,
    Settings,
)
from livesale.errors import LivesaleError
from livesale.transport import BODY_SECONDS, MAX_CONNECTIONS_PER_ADDRESS, MAX_HEADER_BYTES

F = TypeVar("F", bound=Callable[..., Any])

# --- serve ----------------------------------------------------------------------------------


_DEFAULTS = Settings()


def _limit(name: str, default: float, kind: click.ParamType[Any], text: str) -> Callable[[F], F]:
    """One of the server's limits as an option, its default shown."""
    return click.option(name, default=default, show_default=True, type=kind, help=text)


# Every option also reads LIVESALE_<NAME> (LIVESALE_PORT, LIVESALE_DATA_DIR, ...).
@cli.command(context_settings={"auto_envvar_prefix": "LIVESALE"})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data-dir",
    default=str(DEFAULT_DATA_DIR),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="SQLite file, Redis data.",
)
@click.option("--redis-url", default=None, help="Use this Redis instead of the embedded one.")
@click.option(
    "--workers",
    default="1",
    show_default=True,
    callback=lambda ctx, param, value: _workers(value),
    help="Server processes on the port, each with its own relay (auto: one per core).",
)
@click.option(
    "--database-url",
    default="",
    help="postgresql://... to keep orders and the catalogue in PostgreSQL (default: the"
    " SQLite file DATA_DIR/livesale.db; sqlite:///PATH for another one).",
)
@click.option("--public-url", default="", help="Base URL printed in links (behind a proxy).")
@click.option(
    "--node-url",
    default="",
    help="This node's own origin (http://10.0.0.5:8000) as the shop's other nodes reach it,"
    " not the balancer's: a node asked for a show held by another pulls its video from there.",
)
@click.option("--demo", is_flag=True, help="Seed a demo catalogue and show (once).")
@click.option("--hold-seconds", default=300, show_default=True, type=click.IntRange(5, 86400))
@click.option("--grace-seconds", default=60, show_default=True, type=click.IntRange(0, 3600))
@_limit(
    "--replay-batch-hours",
    _DEFAULTS.replay_batch_hours,
    click.FloatRange(0.001, 24 * 30),
    "Hours the orders taken on a replay wait to be packed in a new fulfilment batch.",
)
@click.option(
    "--ice-host",
    "ice_hosts",
    multiple=True,
    help="Host address offered for WebRTC (repeatable; default: every interface).",
)
@click.option("--stun", "stun_urls", multiple=True, help="STUN server URL (repeatable).")
@click.option("--turn", "turn_urls", multiple=True, help="TURN server URL (repeatable).")
@click.option("--turn-username", default="", help="TURN username.")
@click.option("--turn-password", default="", help="TURN password.")
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Record every show as HLS for replay (H.264 video as the host sends it).",
)
@click.option(
    "--media-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where recordings go (default: DATA_DIR/media).",
)
@_limit(
    "--keep-recordings",
    _DEFAULTS.keep_recordings,
    click.IntRange(0, 36500),
    "Days a recording is kept after its last write (0: forever); checked at start and daily.",
)
@click.option(
    "--whep-sessions-per-address",
    default=DEFAULT_WHEP_SESSIONS_PER_ADDRESS,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Video players one client address may have open at once (429 over it).",
)
@click.option(
    "--max-webrtc-viewers",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="WebRTC players this process relays to (0: no cap); past it WHEP answers 503 and"
    " the watch page plays HLS, a few seconds behind.",
)
@click.option(
    "--allow-origin",
    "allowed_origins",
    multiple=True,
    help="Another web origin whose pages may open room sockets (repeatable).",
)
# Browser and outbound edges.
@click.option(
    "--public-origin",
    "public_origins",
    multiple=True,
    envvar="LIVESALE_PUBLIC_ORIGIN",  # named after the option (space-separated values)
    help="An origin (https://live.shop.example) this server is reached at; requests naming"
    " another host get 421 (repeatable; default: --public-url, or --host:--port and the"
    " loopback names).",
)
@click.option(
    "--allow-embed",
    "allow_embed",
    multiple=True,
    help="An origin whose pages may frame the watch page, as a shop embedding the player"
    " (repeatable; default: none may).",
)
@click.option("--allow-insecure-webhooks", is_flag=True, help="Let the webhook URL be plain http.")
@click.option(
    "--allow-private-webhooks",
    is_flag=True,
    help="Let the webhook reach loopback, private and link-local addresses.",
)
@click.option(
    "--metrics-token", default="", help="/metrics answers only Authorization: Bearer TOKEN."
)
@_limit(
    "--max-header-bytes",
    MAX_HEADER_BYTES,
    click.IntRange(1024, 1024 * 1024),
    "Largest request line and headers; larger ones get 431.",
)
@_limit(
    "--body-timeout",
    BODY_SECONDS,
    click.FloatRange(0.5, 3600),
    "Seconds a request body may take after its headers; later ones get 408.",
)
@_limit(
    "--max-connections-per-address",
    MAX_CONNECTIONS_PER_ADDRESS,
    click.IntRange(1, 1_000_000),
    "Open HTTP and WebSocket connections per client address; more get 429.",
)
@click.option(
    "--trust-proxy",
    "trust_proxy",
    multiple=True,
    help="A proxy (CIDR) whose Forwarded / X-Forwarded-For names the client (repeatable).",
)
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    help="ACTION=BURST/SECONDS per client address: signup, hold, checkout, join, chat,"
    " offer (WHIP/WHEP) (repeatable).",
)
@_limit(
    "--default-limit-per-buyer",
    _DEFAULTS.default_limit_per_buyer,
    click.IntRange(0, 10000),
    "Per-buyer limit of a line-up item that sets none (0: none).",
)
@_limit(
    "--address-cap-multiple",
    _DEFAULTS.address_cap_multiple,
    click.IntRange(0, 100000),
    "One client address may hold and buy this many buyers' limits of an item (0: no cap).",
)
@_limit(
    "--max-qty-per-click",
    _DEFAULTS.max_qty_per_click,
    click.IntRange(1, 99),
    "The most units one buy click may hold.",
)
@_limit(
    "--live-holds-per-viewer",
    _DEFAULTS.live_holds_per_viewer,
    click.IntRange(0, 10000),
    "Holds one viewer may have at once in a show (0: no cap); an address that many times"
    " --address-cap-multiple.",
)
@_limit(
    "--crowd-per-address",
    _DEFAULTS.crowd_per_address,
    click.IntRange(1, 1_000_000),
    "Viewers of one client address counted in presence and in an item's votes and wants.",
)
# Memory and bulk edits
@_limit(
    "--max-import-rows",
    _DEFAULTS.max_import_rows,
    click.IntRange(1, 1_000_000),
    "Products one import may carry, all or nothing.",
)
@_limit(
    "--max-lineup-items",
    _DEFAULTS.max_lineup_items,
    click.IntRange(1, 10_000),
    "Items a show's line-up may hold (every viewer's snapshot carries them all).",
)
@_limit(
    "--keep-finished-seconds",
    _DEFAULTS.keep_finished_seconds,
    click.IntRange(1, 86400),
    "How long a finished hold stays readable, and a buy click's retry gets the same hold.",
)
@_limit(
    "--show-keep-seconds",
    _DEFAULTS.show_keep_seconds,
    click.IntRange(1, 30 * 86400),
    "How long a closed show's room (chat tail, requests, plants) stays in Redis.",
)
@click.option(
    "--redis-maxmemory",
    default=_DEFAULTS.redis_maxmemory,
    show_default=True,
    callback=lambda _ctx, _param, value: _memory_size(value),
    help="The embedded Redis's memory limit (e.g. 256mb, 1gb; 0: none). When full it refuses"
    " writes rather than drop stock; a warning comes at 80%.",
)
@click.option(
    "--payments",
    default=",".join(DEFAULT_PAYMENTS),
    show_default=True,
    help="Payment providers checkouts may use, comma-separated: stripe, manual, test"
    " (test also with --demo; never real money).",
)
@click.option("--stripe-secret-key", default="", help="Stripe secret key (sk_...).")
@click.option("--stripe-publishable-key", default="", help="Stripe publishable key (pk_...).")
@click.option(
    "--stripe-webhook-secret", default="", help="Signing secret of the Stripe webhook (whsec_...)."
)
@click.option(
    "--stripe-api-base", default=STRIPE_API_BASE, show_default=True, help="Where Stripe's API is."
)
@click.option(
    "--stripe-js-url", default=STRIPE_JS_URL, show_default=True, help="Stripe.js for the pages."
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(log_level: str, **options: Any) -> None:
    """Run the server (HTTP, WebSocket and WebRTC): one process, or --workers of them."""
    options["ice_hosts"] = tuple(options["ice_hosts"])
    options["stun_urls"] = tuple(options["stun_urls"])
    options["turn_urls"] = tuple(options["turn_urls"])
    options["allowed_origins"] = tuple(options["allowed_origins"])
    options["public_origins"] = tuple(options["public_origins"])
    options["allow_embed"] = tuple(options["allow_embed"])
    options["trust_proxy"] = tuple(options["trust_proxy"])
    options["rate_limits"] = tuple(_rate_limit(text) for text in options["rate_limits"])
    names = options["payments"].split(",")
    options["payments"] = tuple(n.strip().lower() for n in names if n.strip())
    settings = Settings(**options)
    problems = settings.payment_problems() + origins.problems(settings)
    try:
        trusted_networks(settings.trust_proxy)
    except ValueError as exc:
        problems.append(f"--trust-proxy: {exc}")
    if problems:
        raise fail("; ".join(problems))
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from livesale.server import run

    try:
        run(settings, log_level, out)
    except LivesaleError as exc:
        raise fail(exc.detail) from exc


def _workers(text: str) -> int:
    from livesale.workers import count

    try:
        return count(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: {exc}") from exc


def _memory_size(text: str) -> str:
    """A Redis memory size (``256mb``, ``1gb``, ``1048576``, ``0``) as Redis takes it."""
    size = text.strip().lower()
    if not re.fullmatch(r"\d+(b|k|kb|m|mb|g|gb)?", size):
        raise click.BadParameter(f"{text!r}: use a size such as 256mb or 1gb (0: no limit)")
    return size


def _rate_limit(text: str) -> tuple[str, int, float]:
    """``hold=60/10`` as ``("hold", 60, 10.0)``."""
    action, _, rest = text.partition("=")
    burst, _, seconds = rest.partition("/")
    action = action.strip()
    try:
        parsed = (action, int(burst), float(seconds))
    except ValueError:
        parsed = ("", 0, 0.0)
    if action not in RATE_LIMITS or parsed[1] < 1 or parsed[2] <= 0:
        raise fail(
            f"--rate-limit {text!r}: use ACTION=BURST/SECONDS with ACTION one of"
            f" {', '.join(RATE_LIMITS)}"
        )
    return parsed


# --- keys -----------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """Merchant API keys."""


#: ``--data-dir`` of the commands that open the store themselves, without a server.
_store_data_dir = click.option(
    "--data-dir",
    default=str(DEFAULT_DATA_DIR),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The data directory (its livesale.db).",
)


@keys.command("create", context_settings={"auto_envvar_prefix": "LIVESALE"})
@_store_data_dir
@click.option("--database-url", default="", help="The server's --database-url, if it has one.")
@click.option("--label", default="cli", show_default=True, help="A name to recognise it by.")
def keys_create(data_dir: Path, database_url: str, label: str) -> None:
    """Make a new merchant API key (works with or without a running server)."""
    from livesale.auth import ApiKeys
    from livesale.db import open_database

    async def create() -> str:
        db = await open_database(database_url or data_dir / "livesale.db")
        try:
            return await ApiKeys(db).create(label)
        finally:
            await db.close()

    try:
        key = asyncio.run(create())
    except LivesaleError as exc:
        raise fail(exc.detail) from exc
    out.print(key)


@keys.command("list")
@client_options
def keys_list(server: str | None, api_key: str | None, data_dir: Path, as_json: bool) -> None:
    """List merchant API keys: label, when made, last used, revoked (never the keys)."""
    listed = call(connect(server, api_key, data_dir), "GET", "/api/keys")
    if as_json:
        print_json(listed)
        return
    table(
        "Merchant API keys",
        ["id", "label", "created", "last used", "revoked"],
        [
            [
                k["id"],
                k["label"],
                _when(k["created_at"]),
                _when(k["last_used_at"]),
                _when(k["revoked_at"]),
            ]
            for k in listed
        ],
        whole=("id",),
    )


@keys.command("revoke")
@click.argument("key_id")
@client_options
def keys_revoke(
    key_id: str, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Revoke a merchant API key: every call with it is refused from now on."""
    revoked = call(connect(server, api_key, data_dir), "DELETE", f"/api/keys/{key_id}")
    if as_json:
        print_json(revoked)
        return
    say(
        f"Key {revoked['id']} ({revoked['label']}) is revoked since {_when(revoked['revoked_at'])}."
    )


def _when(at: float | None) -> str:
    """A stored time as local ``YYYY-MM-DD HH:MM``; ``-`` for never."""
    if at is None:
        return "-"
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M")


# --- db -------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The store of record."""


@db.command("copy", context_settings={"auto_envvar_prefix": "LIVESALE"})
@_store_data_dir
@click.option("--to", "target_url", required=True, help="An empty PostgreSQL database's URL.")
def db_copy(data_dir: Path, target_url: str) -> None:
    """Copy the shop's SQLite store (products, stock ledger, shows, orders, payments, keys)
    into an empty PostgreSQL database, all or nothing; then serve with --database-url."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from livesale.db import open_database, redact
    from livesale.db.copy import copy_store

    source_path = data_dir / "livesale.db"
    if not source_path.is_file():
        raise fail(f"{source_path} does not exist: nothing to copy")
    if _serving(data_dir):
        raise fail(
            f"a livesale server is serving {data_dir}: stop it first, so that no order is"
            " written to the file while it is copied"
        )
    if not target_url.startswith(("postgresql://", "postgres://")):
        raise fail("--to: give a postgresql://... URL")

    async def run(progress: Progress) -> list[Any]:
        tasks: dict[str, Any] = {}

        def step(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=max(total, 1))
            progress.update(tasks[name], completed=done if total else 1)

        source = await open_database(source_path)
        try:
            target = await open_database(target_url)
            try:
                return await copy_store(source, target, step)
            finally:
                await target.close()
        finally:
            await source.close()

    with Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
    ) as progress:
        try:
            copied = asyncio.run(run(progress))
        except LivesaleError as exc:
            progress.stop()
            raise fail(exc.detail) from exc
    rows = sum(t.rows for t in copied)
    say(
        f"copied {rows} rows of {len(copied)} tables into {redact(target_url)}",
        f"serve from it: livesale serve --database-url {redact(target_url)}",
    )


def _serving(data_dir: Path) -> bool:
    """A server still running (by its ``server.json``) on ``data_dir``."""
    import json

    from livesale.client import SERVER_FILE
    from livesale.embedded_redis import pid_alive

    try:
        pid = int(json.loads((data_dir / SERVER_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return pid_alive(pid)
