"""The ``livesale`` command: the server and the merchant's tools.

``main(argv) -> int`` is the entry point, so tests call ``main([...])`` directly. Every error
ends in one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from livesale.client import Client, ClientError
from livesale.config import DEFAULT_DATA_DIR, Settings
from livesale.errors import LivesaleError
from livesale.orders.files import FileProblems, read_lineup, read_products
from livesale.orders.money import format_amount

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Failure(click.ClickException):
    """An error for a person: printed as one line, exit code 1."""

    def show(self, file: Any = None) -> None:
        err.print(f"[bold red]error:[/] {escape(self.message)}")


def _fail(message: str) -> Failure:
    return Failure(message.replace("\n", " "))


@click.group(
    context_settings={"auto_envvar_prefix": "LIVESALE", "help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="livesale")
def cli() -> None:
    """livesale: self-hosted live-stream shopping."""


# --- serve ----------------------------------------------------------------------------------


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
@click.option("--public-url", default="", help="Base URL printed in links (behind a proxy).")
@click.option("--demo", is_flag=True, help="Seed a demo catalogue and show (once).")
@click.option("--hold-seconds", default=300, show_default=True, type=click.IntRange(5, 86400))
@click.option("--grace-seconds", default=60, show_default=True, type=click.IntRange(0, 3600))
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
    "--allow-origin",
    "allowed_origins",
    multiple=True,
    help="Another web origin whose pages may open room sockets (repeatable).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(log_level: str, **options: Any) -> None:
    """Run the server (HTTP, WebSocket and WebRTC) on one process."""
    options["ice_hosts"] = tuple(options["ice_hosts"])
    options["stun_urls"] = tuple(options["stun_urls"])
    options["turn_urls"] = tuple(options["turn_urls"])
    options["allowed_origins"] = tuple(options["allowed_origins"])
    settings = Settings(**options)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from livesale.server import run

    try:
        run(settings, log_level, out)
    except LivesaleError as exc:
        raise _fail(exc.detail) from exc


# --- keys -----------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """Merchant API keys."""


@keys.command("create", context_settings={"auto_envvar_prefix": "LIVESALE"})
@click.option(
    "--data-dir",
    default=str(DEFAULT_DATA_DIR),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--label", default="cli", show_default=True, help="A name to recognise it by.")
def keys_create(data_dir: Path, label: str) -> None:
    """Make a new merchant API key (works with or without a running server)."""
    from livesale.auth import ApiKeys
    from livesale.db import Database

    async def create() -> str:
        db = await Database.open(data_dir / "livesale.db")
        try:
            return await ApiKeys(db).create(label)
        finally:
            await db.close()

    try:
        key = asyncio.run(create())
    except LivesaleError as exc:
        raise _fail(exc.detail) from exc
    out.print(key)


# --- the merchant's commands, over HTTP ------------------------------------------------------


def client_options(command: F) -> F:
    for option in reversed(
        [
            click.option(
                "--server",
                envvar="LIVESALE_SERVER",
                default=None,
                help="Server URL (default: the local data directory's server).",
            ),
            click.option(
                "--api-key", envvar="LIVESALE_API_KEY", default=None, help="Merchant API key."
            ),
            click.option(
                "--data-dir",
                envvar="LIVESALE_DATA_DIR",
                default=str(DEFAULT_DATA_DIR),
                type=click.Path(file_okay=False, path_type=Path),
                help="Where to find a local server and its key.",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        ]
    ):
        command = option(command)
    return command


def _client(server: str | None, api_key: str | None, data_dir: Path) -> Client:
    try:
        return Client.resolve(server, api_key, data_dir)
    except ClientError as exc:
        raise _fail(str(exc)) from exc


def _call(client: Client, method: str, path: str, body: Any = None) -> Any:
    try:
        return client.request(method, path, body)
    except ClientError as exc:
        raise _fail(str(exc)) from exc


def _money(value: dict[str, Any]) -> str:
    return f"{value['currency']} {format_amount(int(value['amount']), value['currency'])}"


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(c) if c is not None else "" for c in row))
    out.print(table)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from exc


def _print_bad_rows(path: Path, problems: FileProblems) -> None:
    for row in problems.rows:
        err.print(f"{path}:{row.line}: {row}", markup=False)


@cli.group()
def products() -> None:
    """The catalogue."""


@products.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@client_options
def products_import(
    file: Path, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Import products from CSV (sku,title,price,currency,description,image_url,stock) or JSON.

    Every bad row is reported with its line number, and then nothing is imported.
    """
    import msgspec

    text = _read(file)
    client = _client(server, api_key, data_dir)
    try:
        items = read_products(text)
    except FileProblems as problems:
        _print_bad_rows(file, problems)
        raise _fail(f"{len(problems.rows)} bad row(s) in {file}; nothing was imported") from None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"Importing {file.name}", total=len(items))
        try:
            result = client.request("POST", "/api/products/import", msgspec.to_builtins(items))
        except ClientError as exc:
            raise _fail(str(exc)) from exc
        progress.update(task, completed=len(items))
    if as_json:
        _print_json(result)
    else:
        out.print(f"Imported {result['imported']} product(s) from {file}.")


@products.command("list")
@client_options
def products_list(server: str | None, api_key: str | None, data_dir: Path, as_json: bool) -> None:
    """List the catalogue with stock."""
    data = _call(_client(server, api_key, data_dir), "GET", "/api/products")
    if as_json:
        _print_json(data)
        return
    _table(
        "Products",
        ["SKU", "Title", "Price", "On hand", "Available", "Held", "Sold"],
        (
            [
                p["sku"],
                p["title"],
                _money(p["price"]),
                *(
                    (p["stock"][k] for k in ("on_hand", "available", "held", "sold"))
                    if p.get("stock")
                    else ("", "", "", "")
                ),
            ]
            for p in data
        ),
    )


@cli.group()
def stock() -> None:
    """Stock counts."""


def _print_stock(level: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(level)
        return
    _table(
        f"Stock of {level['sku']}",
        ["On hand", "Available", "Held", "Sold"],
        [[level["on_hand"], level["available"], level["held"], level["sold"]]],
    )


@stock.command("set")
@click.argument("sku")
@click.argument("count", type=click.IntRange(min=0))
@click.option("--reason", default="count", show_default=True)
@client_options
def stock_set(
    sku: str,
    count: int,
    reason: str,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Set SKU's on-hand count to COUNT."""
    client = _client(server, api_key, data_dir)
    level = _call(client, "PUT", f"/api/stock/{sku}", {"on_hand": count, "reason": reason})
    _print_stock(level, as_json)


# ignore_unknown_options: "-3" is a negative DELTA, not an option.
@stock.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("sku")
@click.argument("delta", type=int)
@click.option("--reason", default="delivery", show_default=True)
@client_options
def stock_add(
    sku: str,
    delta: int,
    reason: str,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Add DELTA units to SKU (negative to remove)."""
    client = _client(server, api_key, data_dir)
    level = _call(client, "POST", f"/api/stock/{sku}/adjust", {"delta": delta, "reason": reason})
    _print_stock(level, as_json)


@stock.command("show")
@click.argument("sku")
@client_options
def stock_show(
    sku: str, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Show SKU's counters: on hand = available + held + sold."""
    _print_stock(_call(_client(server, api_key, data_dir), "GET", f"/api/stock/{sku}"), as_json)


@cli.group()
def show() -> None:
    """Shows."""


def _print_shows(shows: list[dict[str, Any]], as_json: bool, title: str = "Shows") -> None:
    if as_json:
        _print_json(shows)
        return
    _table(
        title,
        ["ID", "Title", "Host", "State", "Watch"],
        (
            [
                s["id"],
                s["title"],
                s["host_name"],
                "live (paused)" if s.get("paused") and s["state"] == "live" else s["state"],
                s["watch_url"],
            ]
            for s in shows
        ),
    )


@show.command("create")
@click.argument("title")
@click.option("--host", "host_name", required=True, help="The host's name, shown to viewers.")
@click.option("--at", "scheduled_at", default=None, help="When it starts (ISO 8601).")
@client_options
def show_create(
    title: str,
    host_name: str,
    scheduled_at: str | None,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Create a show; prints the studio link (with the host token) once."""
    body: dict[str, Any] = {"title": title, "host_name": host_name}
    if scheduled_at:
        body["scheduled_at"] = scheduled_at
    created = _call(_client(server, api_key, data_dir), "POST", "/api/shows", body)
    if as_json:
        _print_json(created)
        return
    out.print(f"Created show [bold]{created['id']}[/]: {created['title']}")
    out.print(f"  studio (keep it secret): {created['studio_url']}", markup=False)
    out.print(f"  watch:                   {created['watch_url']}", markup=False)


@show.command("list")
@client_options
def show_list(server: str | None, api_key: str | None, data_dir: Path, as_json: bool) -> None:
    """List shows, live first."""
    _print_shows(_call(_client(server, api_key, data_dir), "GET", "/api/shows"), as_json)


def _move(
    show_id: str,
    action: str,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    moved = _call(_client(server, api_key, data_dir), "POST", f"/api/shows/{show_id}/{action}")
    if as_json:
        _print_json(moved)
    else:
        out.print(f"Show {moved['id']} is {moved['state']}.")


@show.command("start")
@click.argument("show_id")
@client_options
def show_start(show_id: str, **kw: Any) -> None:
    """Start a show (it takes orders from now on)."""
    _move(show_id, "start", **kw)


@show.command("end")
@click.argument("show_id")
@client_options
def show_end(show_id: str, **kw: Any) -> None:
    """End a show."""
    _move(show_id, "end", **kw)


@cli.group()
def lineup() -> None:
    """A show's line-up (its run-list)."""


def _print_lineup(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(data)
        return
    _table(
        f"Line-up of {data['show_id']}",
        ["#", "SKU", "Title", "Price", "Limit", "Available", ""],
        (
            [
                n,
                i["sku"],
                i["title"],
                _money(i["price"]),
                i["limit_per_buyer"] or "",
                i["available"],
                "featured" if i["featured"] else "",
            ]
            for n, i in enumerate(data["items"], start=1)
        ),
    )


@lineup.command("push")
@click.argument("show_id")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@client_options
def lineup_push(
    show_id: str, file: Path, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Replace SHOW's line-up with FILE (CSV or JSON rows sku[,price][,limit_per_buyer])."""
    import msgspec

    text = _read(file)
    client = _client(server, api_key, data_dir)
    catalogue = _call(client, "GET", "/api/products")
    currencies = {p["sku"]: p["price"]["currency"] for p in catalogue}
    try:
        items = read_lineup(text, currencies)
    except FileProblems as problems:
        _print_bad_rows(file, problems)
        raise _fail(
            f"{len(problems.rows)} bad row(s) in {file}; the line-up is unchanged"
        ) from None
    data = _call(client, "PUT", f"/api/shows/{show_id}/lineup", msgspec.to_builtins(items))
    if as_json:
        _print_json(data)
    else:
        out.print(f"Line-up of {show_id}: {len(data['items'])} item(s).")
        _print_lineup(data, False)


@lineup.command("show")
@click.argument("show_id")
@client_options
def lineup_show(
    show_id: str, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Show SHOW's line-up with live stock."""
    client = _client(server, api_key, data_dir)
    _print_lineup(_call(client, "GET", f"/api/shows/{show_id}/lineup"), as_json)


# --- orders and fulfilment -------------------------------------------------------------------


@cli.group()
def orders() -> None:
    """Orders and the fulfilment batch of a show."""


@orders.command("list")
@click.option("--show", "show_id", default=None, help="Only this show's orders.")
@click.option("--state", default=None, help="Only orders in this state (e.g. confirmed).")
@client_options
def orders_list(
    show_id: str | None,
    state: str | None,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """List orders, oldest first."""
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in (("show", show_id), ("state", state)) if v})
    data = _call(
        _client(server, api_key, data_dir), "GET", "/api/orders" + (f"?{query}" if query else "")
    )
    if as_json:
        _print_json(data)
        return
    _table(
        "Orders",
        ["Order", "Show", "Buyer", "SKU", "Qty", "Total", "State", "Payment"],
        (
            [
                o["id"],
                o["show_id"],
                o["nickname"],
                o["sku"],
                o["qty"],
                _money(o["total"]),
                o["state"],
                o["payment_status"],
            ]
            for o in data
        ),
    )


EXPORT_COLUMNS = (
    "viewer_id",
    "nickname",
    "name",
    "address",
    "email",
    "order_id",
    "sku",
    "title",
    "qty",
    "amount",
    "currency",
)


@orders.command("export")
@click.argument("show_id")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead of standard output.",
)
@client_options
def orders_export(
    show_id: str,
    fmt: str,
    output: Path | None,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Export SHOW's fulfilment batch (one parcel per buyer) as CSV or JSON."""
    import csv
    import io

    batch = _call(_client(server, api_key, data_dir), "GET", f"/api/shows/{show_id}/fulfilment")
    if batch["state"] != "ready":
        raise _fail(f"show {show_id} has no fulfilment batch yet (it is {batch['state']})")
    if fmt == "json" or as_json:
        text = json.dumps(batch, indent=2, ensure_ascii=False) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for parcel in batch["parcels"]:
            ship = parcel["shipping"]
            for line in parcel["lines"]:
                writer.writerow(
                    [
                        parcel["viewer_id"],
                        parcel["nickname"],
                        ship["name"],
                        ship["address"],
                        ship["email"],
                        line["order_id"],
                        line["sku"],
                        line["title"],
                        line["qty"],
                        format_amount(line["total"]["amount"], line["total"]["currency"]),
                        line["total"]["currency"],
                    ]
                )
        text = buffer.getvalue()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"{len(batch['parcels'])} parcel(s), {batch['units']} unit(s) -> {output}")


@stock.command("reconcile")
@client_options
def stock_reconcile(server: str | None, api_key: str | None, data_dir: Path, as_json: bool) -> None:
    """Rebuild stock in Redis from the database now and report every difference found."""
    diffs = _call(_client(server, api_key, data_dir), "POST", "/api/stock/reconcile")
    if as_json:
        _print_json(diffs)
        return
    if not diffs:
        out.print("Stock agrees with the database: nothing changed.")
        return
    _table(
        "Stock differences (Redis had -> rebuilt)",
        ["SKU", "on hand", "available", "held", "sold"],
        (
            [
                d["sku"],
                *(
                    f"{d['redis'][k]} -> {d['rebuilt'][k]}"
                    for k in ("on_hand", "available", "held", "sold")
                ),
            ]
            for d in diffs
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        cli.main(args=argv, prog_name="livesale", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
