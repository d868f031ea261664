"""``livesale products`` and ``livesale stock``: the catalogue and its counters, over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from livesale.catalogue import ImportLimits, read_products
from livesale.cli.base import (
    call,
    cli,
    client_options,
    connect,
    err,
    fail,
    money,
    out,
    plain,
    print_bad_rows,
    print_json,
    read,
    table,
)
from livesale.client import Client, ClientError
from livesale.config import Settings
from livesale.rows import FileProblems, count_rows


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

    The import is all or nothing: every bad row is reported with its line number, and then
    nothing is imported. A file over the server's limits (products per import, bytes per
    request) is refused before anything is sent.
    """
    text = read(file)
    client = connect(server, api_key, data_dir)
    limits = _import_limits(client)
    rows = count_rows(text)
    if rows > limits.max_rows:
        raise fail(
            f"{file} holds {rows} products, and the server imports at most {limits.max_rows}"
            " at a time, all or nothing: split the file into parts of at most"
            f" {limits.max_rows} rows and import each; nothing was imported"
        )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as progress:
        reading = progress.add_task(f"Reading {file.name}", total=rows)
        try:
            items = read_products(text, lambda n: progress.update(reading, completed=n))
        except FileProblems as problems:
            progress.stop()
            print_bad_rows(file, problems)
            raise fail(f"{len(problems.rows)} bad row(s) in {file}; nothing was imported") from None
        progress.update(reading, completed=len(items))
        body = msgspec.json.encode(items)
        if len(body) > limits.max_body_bytes:
            raise fail(
                f"{file} makes a request of {len(body)} bytes, and the server takes at most"
                f" {limits.max_body_bytes} bytes a request: split the file into smaller parts"
                " and import each; nothing was imported"
            )
        sending = progress.add_task(f"Importing into {client.server}", total=len(body))
        try:
            result = client.upload(
                "POST",
                "/api/products/import",
                body,
                lambda n: progress.update(sending, completed=n),
            )
        except ClientError as exc:
            raise fail(str(exc)) from exc
    if as_json:
        print_json(result)
    else:
        out.print(plain(f"Imported {result['imported']} product(s) from {file}."), markup=False)


def _import_limits(client: Client) -> ImportLimits:
    """What the server takes in one import; its defaults when it is too old to say."""
    try:
        answer = client.request("GET", "/api/products/import/limits")
    except ClientError as exc:
        if exc.status != 404:
            raise fail(str(exc)) from exc
        defaults = Settings()
        return ImportLimits(defaults.max_import_rows, defaults.max_body_bytes)
    return msgspec.convert(answer, ImportLimits)


@products.command("list")
@client_options
def products_list(server: str | None, api_key: str | None, data_dir: Path, as_json: bool) -> None:
    """List the catalogue with stock."""
    data = call(connect(server, api_key, data_dir), "GET", "/api/products")
    if as_json:
        print_json(data)
        return
    table(
        "Products",
        ["SKU", "Title", "Price", "On hand", "Available", "Held", "Sold"],
        (
            [
                p["sku"],
                p["title"],
                money(p["price"]),
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
        print_json(level)
        return
    table(
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
    client = connect(server, api_key, data_dir)
    level = call(client, "PUT", f"/api/stock/{sku}", {"on_hand": count, "reason": reason})
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
    client = connect(server, api_key, data_dir)
    level = call(client, "POST", f"/api/stock/{sku}/adjust", {"delta": delta, "reason": reason})
    _print_stock(level, as_json)


@stock.command("show")
@click.argument("sku")
@client_options
def stock_show(
    sku: str, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Show SKU's counters: on hand = available + held + sold."""
    _print_stock(call(connect(server, api_key, data_dir), "GET", f"/api/stock/{sku}"), as_json)


@stock.command("reconcile")
@client_options
def stock_reconcile(server: str | None, api_key: str | None, data_dir: Path, as_json: bool) -> None:
    """Rebuild stock in Redis from the database now and report every difference found."""
    diffs = call(connect(server, api_key, data_dir), "POST", "/api/stock/reconcile")
    if as_json:
        print_json(diffs)
        return
    if not diffs:
        out.print("Stock agrees with the database: nothing changed.")
        return
    table(
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
