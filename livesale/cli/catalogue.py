"""``livesale products`` and ``livesale stock``: the catalogue and its counters, over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from livesale.catalogue import read_products
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
from livesale.client import ClientError
from livesale.rows import FileProblems


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

    text = read(file)
    client = connect(server, api_key, data_dir)
    try:
        items = read_products(text)
    except FileProblems as problems:
        print_bad_rows(file, problems)
        raise fail(f"{len(problems.rows)} bad row(s) in {file}; nothing was imported") from None
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
            raise fail(str(exc)) from exc
        progress.update(task, completed=len(items))
    if as_json:
        print_json(result)
    else:
        out.print(plain(f"Imported {result['imported']} product(s) from {file}."), markup=False)


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
