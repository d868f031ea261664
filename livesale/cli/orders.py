"""``livesale orders``: orders, their cancels and refunds, and a show's fulfilment batch (CSV or
JSON), over HTTP."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
import msgspec

from livesale.cli.base import (
    call,
    cli,
    client_options,
    connect,
    err,
    fail,
    money,
    plain,
    print_bad_rows,
    print_json,
    read,
    say,
    table,
)
from livesale.client import Client
from livesale.money import format_amount
from livesale.orders import csv_cell, read_tracking
from livesale.rows import FileProblems

# --- orders and fulfilment -------------------------------------------------------------------


@cli.group()
def orders() -> None:
    """Orders, their cancels and refunds, and the fulfilment batch of a show."""


def _orders(client: Client, show_id: str | None, state: str | None = None) -> list[dict[str, Any]]:
    """The orders (of ``show_id``, in ``state``), oldest first, as the server answers them."""
    query = urlencode({k: v for k, v in (("show", show_id), ("state", state)) if v})
    found: list[dict[str, Any]] = call(
        client, "GET", f"/api/orders?{query}" if query else "/api/orders"
    )
    return found


def _refunded(order: dict[str, Any]) -> str:
    """What was refunded of ``order``, in words ("" for nothing)."""
    if not order["refunded"]["amount"]:
        return ""
    return f"{order['returned_qty']} unit(s), {money(order['refunded'])}"


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
    """List orders, oldest first. TEST marks the test provider's money, never real."""
    data = _orders(connect(server, api_key, data_dir), show_id, state)
    if as_json:
        print_json(data)
        return
    # One show's list leaves out the column that would repeat its id on every row.
    every_show = show_id is None
    table(
        "Orders" if every_show else f"Orders of show {show_id}",
        [
            "Order",
            *(["Show"] if every_show else []),
            "Buyer",
            "Item",
            "Total",
            "State",
            "Payment",
            "Refunded",
        ],
        (
            [
                o["id"],
                *([o["show_id"]] if every_show else []),
                o["nickname"],
                f"{o['qty']} x {o['sku']}",
                money(o["total"]) + (" TEST" if o["test"] else ""),
                o["state"],
                f"{o['provider']}: {o['payment_status']}",
                _refunded(o),
            ]
            for o in data
        ),
        whole=("Order", "Show", "State"),
    )


# --- cancel and refund -----------------------------------------------------------------------


def _check_cancel_target(order_id: str | None, show_id: str | None, unpaid: bool) -> None:
    """Exactly one of ORDER_ID and ``--show SHOW --unpaid``, else a usage error."""
    problem = ""
    if order_id is not None and (show_id is not None or unpaid):
        problem = "give an ORDER_ID or --show SHOW --unpaid, not both"
    elif order_id is None and show_id is None and not unpaid:
        problem = "give an ORDER_ID, or --show SHOW --unpaid to cancel a show's unpaid orders"
    elif show_id is not None and not unpaid:
        problem = "--show needs --unpaid: only the unpaid orders of a show are cancelled at once"
    elif unpaid and show_id is None:
        problem = "--unpaid needs --show SHOW"
    if problem:
        raise click.UsageError(problem)


@orders.command("cancel")
@click.argument("order_id", required=False)
@click.option("--show", "show_id", default=None, help="With --unpaid: the show.")
@click.option("--unpaid", is_flag=True, help="Cancel every manual order of --show still due.")
@click.option("--reason", default="", help="Why; kept with the order and sent in the webhook.")
@client_options
def orders_cancel(
    order_id: str | None,
    show_id: str | None,
    unpaid: bool,
    reason: str,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Cancel ORDER_ID before its payment is taken (a card authorization is voided), or with
    --show SHOW --unpaid every manual order of the show still due. The units go back on sale.
    An order already paid is refunded instead (`livesale orders refund`)."""
    _check_cancel_target(order_id, show_id, unpaid)
    client = connect(server, api_key, data_dir)
    body = {"reason": reason}
    if order_id is None:
        cancelled = call(client, "POST", f"/api/shows/{show_id}/orders/cancel-unpaid", body)
        if as_json:
            print_json(cancelled)
        elif not cancelled:
            say(f"Show {show_id} has no unpaid order: nothing cancelled.")
        else:
            units = sum(o["returned_qty"] for o in cancelled)
            say(
                f"Cancelled {len(cancelled)} unpaid order(s) of show {show_id}:"
                f" {units} unit(s) back on sale.",
                *(
                    f"  {o['id']}  {o['nickname']}  {o['returned_qty']} x {o['sku']}"
                    for o in cancelled
                ),
            )
        return
    # Cancelling a cancelled order changes nothing, so a request whose answer was lost may go
    # again.
    order = call(client, "POST", f"/api/orders/{order_id}/cancel", body, retries=2)
    if as_json:
        print_json(order)
        return
    say(
        f"Order {order['id']} is {order['state']}: {order['returned_qty']} unit(s) of"
        f" {order['sku']} back on sale (payment {order['payment_status']})."
    )


@orders.command("refund")
@click.argument("order_id")
@click.option(
    "--qty",
    type=click.IntRange(1, 99),
    default=None,
    help="Units to refund (default: every unit not refunded yet).",
)
@click.option("--reason", default="", help="Why; kept with the refund and sent in the webhook.")
@client_options
def orders_refund(
    order_id: str,
    qty: int | None,
    reason: str,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Refund ORDER_ID after its payment was taken, whole or --qty units: the money for them
    goes back to the buyer and the units back on sale. An order not paid yet is cancelled
    instead (`livesale orders cancel`)."""
    client = connect(server, api_key, data_dir)
    before = call(client, "GET", f"/api/orders/{order_id}")
    # One key for this run: a request sent again because its answer was lost refunds once.
    body: dict[str, Any] = {"reason": reason, "idempotency_key": f"cli-{secrets.token_hex(16)}"}
    if qty is not None:
        body["qty"] = qty
    after = call(client, "POST", f"/api/orders/{order_id}/refund", body, retries=2)
    if as_json:
        print_json(after)
        return
    units = after["returned_qty"] - before["returned_qty"]
    amount = {
        "amount": after["refunded"]["amount"] - before["refunded"]["amount"],
        "currency": after["refunded"]["currency"],
    }
    lines = [
        f"Refunded {units} unit(s) of order {after['id']} ({after['sku']}): {money(amount)}"
        " back to the buyer, the units back on sale.",
        f"  The order is {after['state']}, its payment {after['payment_status']}:"
        f" {after['returned_qty']} of {after['qty']} unit(s), {money(after['refunded'])}"
        " refunded in all.",
    ]
    if after["provider"] == "manual":
        lines.append("  Paid by hand: give the buyer the money back yourself.")
    if after["test"]:
        lines.append("  Test money: nothing real moved.")
    say(*lines)


# --- export ----------------------------------------------------------------------------------

#: One row per parcel; its lines are inside (``items``, ``orders``, ``payments``, joined by
#: "; " in the same order). Fill in ``carrier`` and ``tracking_number`` and hand the file to
#: ``livesale orders ship``.
EXPORT_COLUMNS = (
    "parcel_id",
    "viewer_id",
    "nickname",
    "name",
    "address",
    "email",
    "items",
    "units",
    "amount",
    "currency",
    "orders",
    "test",
    "payments",
    "refunded_qty",
    "refunded_amount",
    "batch",
    "carrier",
    "tracking_number",
)


def _parcel_row(parcel: dict[str, Any]) -> list[object]:
    """A parcel as one export row (:data:`EXPORT_COLUMNS`)."""
    lines, ship = parcel["lines"], parcel["shipping"]
    shipment = parcel.get("shipment") or {}
    currencies = sorted({line["total"]["currency"] for line in lines})
    amounts = "; ".join(format_amount(t["amount"], t["currency"]) for t in parcel["totals"])
    refunded = [line["refunded"] for line in lines]
    return [
        parcel["id"],
        parcel["viewer_id"],
        parcel["nickname"],
        ship["name"],
        ship["address"],
        ship["email"],
        "; ".join(f"{line['qty']} x {line['sku']} {line['title']}" for line in lines),
        parcel["units"],
        amounts,
        "; ".join(currencies),
        "; ".join(line["order_id"] for line in lines),
        "true" if any(line["test"] for line in lines) else "false",
        "; ".join(f"{line['provider']}: {line['payment_status']}" for line in lines),
        sum(int(line["refunded_qty"]) for line in lines),
        "; ".join(
            format_amount(sum(r["amount"] for r in refunded if r["currency"] == c), c)
            for c in currencies
        ),
        parcel.get("batch", 1),
        shipment.get("carrier", ""),
        shipment.get("tracking_number", ""),
    ]


def _with_payments(batch: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> None:
    """Add each parcel line's payment and refunds (from its order) to ``batch``, in place."""
    for parcel in batch["parcels"]:
        for line in parcel["lines"]:
            order = by_id.get(line["order_id"])
            if order is None:
                raise fail(f"order {line['order_id']} of the batch is not in the order list")
            line["test"] = order["test"]
            line["provider"] = order["provider"]
            line["payment_status"] = order["payment_status"]
            line["refunded_qty"] = order["returned_qty"]
            line["refunded"] = order["refunded"]


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
@click.option(
    "--batch",
    "batch_number",
    type=click.IntRange(1),
    default=None,
    help="Only this batch (1: the one made at the end; later ones hold the replay's orders).",
)
@client_options
def orders_export(
    show_id: str,
    fmt: str,
    output: Path | None,
    batch_number: int | None,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Export SHOW's fulfilment batch as CSV (one row per parcel, one parcel per buyer, its
    lines inside) or JSON; each says whether its money is test money, the payments and what
    was refunded. Fill in carrier and tracking_number and give the file to `orders ship`."""
    import csv
    import io

    client = connect(server, api_key, data_dir)
    which = f"?batch={batch_number}" if batch_number is not None else ""
    batch = call(client, "GET", f"/api/shows/{show_id}/fulfilment{which}")
    if batch["state"] != "ready":
        raise fail(f"show {show_id} has no fulfilment batch yet (it is {batch['state']})")
    _with_payments(batch, {o["id"]: o for o in _orders(client, show_id)})
    if fmt == "json" or as_json:
        text = json.dumps(batch, indent=2, ensure_ascii=False) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for parcel in batch["parcels"]:
            writer.writerow([csv_cell(c) for c in _parcel_row(parcel)])
        text = buffer.getvalue()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        summary = f"{len(batch['parcels'])} parcel(s), {batch['units']} unit(s) -> {output}"
        err.print(plain(summary), markup=False)


@orders.command("batch")
@click.argument("show_id")
@client_options
def orders_batch(
    show_id: str, server: str | None, api_key: str | None, data_dir: Path, as_json: bool
) -> None:
    """Pack the orders taken on SHOW's replay since its last batch into a new batch now
    (the server also does it by itself, --replay-batch-hours after the last one)."""
    made = call(connect(server, api_key, data_dir), "POST", f"/api/shows/{show_id}/batches")
    if as_json:
        print_json(made)
        return
    say(
        f"Batch {made['batch']} of show {show_id}: {len(made['parcels'])} parcel(s),"
        f" {made['units']} unit(s). Export it with: livesale orders export {show_id}"
        f" --batch {made['batch']}"
    )


@orders.command("ship")
@click.argument("show_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@client_options
def orders_ship(
    show_id: str,
    file: Path,
    server: str | None,
    api_key: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    """Mark SHOW's parcels shipped from FILE, a CSV with parcel_id, carrier and
    tracking_number (the export, filled in, is one; rows without a carrier are skipped). Every
    buyer's order page shows the tracking number, and the webhook hears parcel.shipped."""
    try:
        items = read_tracking(read(file))
    except FileProblems as problems:
        print_bad_rows(file, problems)
        raise fail(
            f"{len(problems.rows)} bad row(s) in {file}; nothing was marked shipped"
        ) from None
    if not items:
        raise fail(f"no row of {file} has a carrier and a tracking number")
    client = connect(server, api_key, data_dir)
    body = [msgspec.to_builtins(item) for item in items]
    answer = call(client, "POST", f"/api/shows/{show_id}/shipments", body, retries=2)
    if as_json:
        print_json(answer)
        return
    say(f"{answer['shipped']} parcel(s) marked shipped, {answer['unchanged']} already were.")
