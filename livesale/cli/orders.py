"""``livesale orders``: orders and a show's fulfilment batch (CSV or JSON), over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import click

from livesale.cli.base import (
    call,
    cli,
    client_options,
    connect,
    err,
    fail,
    money,
    plain,
    print_json,
    table,
)
from livesale.money import format_amount

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
    data = call(
        connect(server, api_key, data_dir), "GET", "/api/orders" + (f"?{query}" if query else "")
    )
    if as_json:
        print_json(data)
        return
    table(
        "Orders",
        ["Order", "Show", "Buyer", "SKU", "Qty", "Total", "State", "Payment"],
        (
            [
                o["id"],
                o["show_id"],
                o["nickname"],
                o["sku"],
                o["qty"],
                money(o["total"]),
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

    batch = call(connect(server, api_key, data_dir), "GET", f"/api/shows/{show_id}/fulfilment")
    if batch["state"] != "ready":
        raise fail(f"show {show_id} has no fulfilment batch yet (it is {batch['state']})")
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
        summary = f"{len(batch['parcels'])} parcel(s), {batch['units']} unit(s) -> {output}"
        err.print(plain(summary), markup=False)
