"""``livesale orders`` cancel, refund, list and export through ``main([...])`` against a real
server: the test provider's money captured when a show closes, manual orders due or paid."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.orders.conftest import Shop, checkout_body
from tests.test_cli import Cli

#: Long enough for a closing on a busy machine; only a hang reaches it.
DEADLINE = 60


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The show's closing (release, capture, batch) starts a second after its end; the test
    # and manual providers stay on.
    return replace(settings, grace_seconds=1)


@pytest.fixture
def shop(server: LiveServer) -> Iterator[Shop]:
    s = Shop.of(server)
    yield s
    s.close()


@pytest.fixture
def cli(server: LiveServer, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server, capsys)


def buy(
    shop: Shop, show: str, nickname: str, sku: str, qty: int = 1, provider: str = "test"
) -> dict[str, Any]:
    """A confirmed order of ``qty`` units by a new viewer, paid with ``provider``."""
    buyer = shop.viewer(nickname)
    hold = shop.ok(shop.hold(show, buyer, sku, qty=qty, key=f"{nickname}-{sku}"), 201)
    token = "tok_visa" if provider == "test" else ""
    body = checkout_body(token=token, provider=provider)
    order: dict[str, Any] = shop.ok(shop.checkout(hold["hold_id"], buyer, body), 201)
    assert order["state"] == "confirmed", order
    return order


def close(shop: Shop, show: str) -> dict[str, Any]:
    """End ``show`` and wait until its closing has captured the money and made the batch."""
    shop.end(show)
    deadline = time.monotonic() + DEADLINE
    while (batch := shop.ok(shop.client.get(f"/api/shows/{show}/fulfilment")))["state"] != "ready":
        assert time.monotonic() < deadline, f"the show's closing hangs: {batch}"
        time.sleep(0.1)
    result: dict[str, Any] = batch
    return result


def order(shop: Shop, order_id: str) -> dict[str, Any]:
    found: dict[str, Any] = shop.ok(shop.client.get(f"/api/orders/{order_id}"))
    return found


def test_cancel_puts_the_units_back_on_sale(cli: Cli, shop: Shop) -> None:
    """Cancelling a confirmed manual order says what happened and every unit is available
    again; cancelling it again answers the same order."""
    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01"}])
    due = buy(shop, show, "ada", "LIP-01", qty=2, provider="manual")
    assert shop.stock("LIP-01")["sold"] == 2
    code, out, err = cli("orders", "cancel", due["id"], "--reason", "buyer changed her mind")
    assert code == 0, err
    assert f"Order {due['id']} is cancelled: 2 unit(s) of LIP-01 back on sale" in out
    level = shop.stock("LIP-01")
    assert (level["available"], level["held"], level["sold"]) == (10, 0, 0)
    cancelled = order(shop, due["id"])
    assert (cancelled["state"], cancelled["returned_qty"]) == ("cancelled", 2)
    assert cancelled["reason"] == "buyer changed her mind"
    again = cli.json("orders", "cancel", due["id"])
    assert (again["state"], again["returned_qty"]) == ("cancelled", 2)
    assert shop.stock("LIP-01")["available"] == 10


def test_cancel_unpaid_spares_paid_orders(cli: Cli, shop: Shop) -> None:
    """``cancel --show --unpaid`` cancels the show's manual orders still due, and only them:
    one marked paid and one paid by card stay sold."""
    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01"}])
    ada = buy(shop, show, "ada", "LIP-01", qty=2, provider="manual")
    bob = buy(shop, show, "bob", "LIP-01", provider="manual")
    paid = buy(shop, show, "cat", "LIP-01", provider="manual")
    card = buy(shop, show, "dan", "LIP-01")
    shop.ok(shop.client.post(f"/api/orders/{paid['id']}/paid"))
    assert shop.stock("LIP-01")["sold"] == 5
    code, out, err = cli("orders", "cancel", "--show", show, "--unpaid")
    assert code == 0, err
    assert f"Cancelled 2 unpaid order(s) of show {show}: 3 unit(s) back on sale." in out
    assert ada["id"] in out and bob["id"] in out
    assert paid["id"] not in out and card["id"] not in out
    assert [order(shop, o["id"])["state"] for o in (ada, bob, paid, card)] == [
        "cancelled",
        "cancelled",
        "confirmed",
        "confirmed",
    ]
    assert order(shop, paid["id"])["payment_status"] == "paid"
    level = shop.stock("LIP-01")
    assert (level["available"], level["held"], level["sold"]) == (8, 0, 2)
    code, out, _ = cli("orders", "cancel", "--show", show, "--unpaid")
    assert code == 0 and "no unpaid order: nothing cancelled" in out
    assert cli.json("orders", "cancel", "--show", show, "--unpaid") == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "give an ORDER_ID, or --show SHOW --unpaid"),
        (("or_x", "--show", "sh_x", "--unpaid"), "not both"),
        (("--show", "sh_x"), "--show needs --unpaid"),
        (("--unpaid",), "--unpaid needs --show SHOW"),
    ],
)
def test_cancel_takes_one_target(cli: Cli, args: tuple[str, ...], words: str) -> None:
    """``orders cancel`` wants an order id or ``--show SHOW --unpaid``, exactly one: anything
    else is a usage error saying so."""
    code, _, err = cli("orders", "cancel", *args)
    assert code == 2 and words in err


def test_refund_one_unit_then_the_rest(cli: Cli, shop: Shop) -> None:
    """A captured test-provider order is refunded a unit at a time: each refund says its units
    and money, the units go back on sale, and the order ends ``refunded``."""
    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01"}])
    bought = buy(shop, show, "ada", "LIP-01", qty=3)
    close(shop, show)
    assert order(shop, bought["id"])["payment_status"] == "captured"

    code, out, err = cli("orders", "refund", bought["id"], "--qty", "1", "--reason", "scratched")
    assert code == 0, err
    assert f"Refunded 1 unit(s) of order {bought['id']} (LIP-01): EUR 19.90 back" in out
    assert "1 of 3 unit(s), EUR 19.90 refunded in all" in out
    assert "Test money: nothing real moved." in out
    partial = order(shop, bought["id"])
    assert (partial["state"], partial["payment_status"]) == ("confirmed", "partially_refunded")
    assert partial["returned_qty"] == 1
    assert partial["refunded"] == {"amount": 1990, "currency": "EUR"}
    level = shop.stock("LIP-01")
    assert (level["available"], level["held"], level["sold"]) == (8, 0, 2)

    code, out, err = cli("orders", "refund", bought["id"])
    assert code == 0, err
    assert f"Refunded 2 unit(s) of order {bought['id']} (LIP-01): EUR 39.80 back" in out
    assert "The order is refunded, its payment refunded: 3 of 3 unit(s), EUR 59.70" in out
    whole = order(shop, bought["id"])
    assert (whole["state"], whole["payment_status"], whole["returned_qty"]) == (
        "refunded",
        "refunded",
        3,
    )
    assert whole["refunded"] == {"amount": 5970, "currency": "EUR"}
    level = shop.stock("LIP-01")
    assert (level["available"], level["held"], level["sold"]) == (10, 0, 0)


def test_refusals_print_the_detail(cli: Cli, shop: Shop) -> None:
    """A cancel of a captured order, a refund of an unpaid one and a refund of more units than
    are left are refused: one line with the server's reason, exit code 1, nothing changed."""
    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01"}])
    card = buy(shop, show, "ada", "LIP-01", qty=2)
    due = buy(shop, show, "bob", "LIP-01", provider="manual")
    close(shop, show)

    code, out, err = cli("orders", "cancel", card["id"])
    assert code == 1 and out == ""
    assert "409" in err and "refund the order instead" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("orders", "refund", due["id"])
    assert code == 1 and "409" in err and "cancel the order instead" in err
    code, _, err = cli("orders", "refund", card["id"], "--qty", "3")
    assert code == 1 and "422" in err and "2 unit(s) left to refund" in err
    assert order(shop, card["id"])["payment_status"] == "captured"
    assert order(shop, due["id"])["payment_status"] == "due"
    assert shop.stock("LIP-01")["sold"] == 3


def test_list_and_export_show_test_money_and_refunds(
    cli: Cli, shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``orders list`` marks test money and shows payments and refunds; every export row (CSV
    and JSON) carries the test flag, provider, payment status and what was refunded."""
    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01"}])
    card = buy(shop, show, "ada", "LIP-01", qty=2)
    due = buy(shop, show, "bob", "LIP-01", provider="manual")
    close(shop, show)
    assert cli("orders", "refund", card["id"], "--qty", "1")[0] == 0

    monkeypatch.setenv("COLUMNS", "120")  # a terminal wide enough for a row a line
    code, out, err = cli("orders", "list", "--show", show)
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if "LIP-01" in line}
    assert set(rows) == {card["id"], due["id"]}
    assert "2 x LIP-01" in rows[card["id"]] and "EUR 39.80 TEST" in rows[card["id"]]
    assert "test: partially_refunded" in rows[card["id"]]
    assert "1 unit(s), EUR 19.90" in rows[card["id"]]
    assert "TEST" not in rows[due["id"]] and "manual: due" in rows[due["id"]]
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = cli("orders", "list")
    assert code == 0 and card["id"] in out and show in out  # ids are never broken
    listed = {o["id"]: o for o in cli.json("orders", "list", "--show", show)}
    assert listed[card["id"]]["test"] is True and listed[due["id"]]["test"] is False

    path = tmp_path / "batch.csv"
    code, _, err = cli("orders", "export", show, "--output", str(path))
    assert code == 0, err
    # One row per parcel (one parcel per buyer), its lines inside.
    exported = {r["orders"]: r for r in csv.DictReader(io.StringIO(path.read_text()))}
    assert set(exported) == {card["id"], due["id"]}
    ada = exported[card["id"]]
    assert {k: ada[k] for k in ("items", "units", "amount", "currency")} == {
        "items": "1 x LIP-01 Product LIP-01",
        "units": "1",
        "amount": "19.90",
        "currency": "EUR",
    }
    assert ada["parcel_id"].startswith("pc_") and ada["nickname"] == "ada"
    pay = ("test", "payments", "refunded_qty", "refunded_amount", "carrier", "tracking_number")
    assert [ada[k] for k in pay] == ["true", "test: partially_refunded", "1", "19.90", "", ""]
    assert [exported[due["id"]][k] for k in pay] == ["false", "manual: due", "0", "0.00", "", ""]

    code, _, err = cli("orders", "export", show, "--format", "json", "--output", str(path))
    assert code == 0, err
    lines = {
        line["order_id"]: line
        for parcel in json.loads(path.read_text())["parcels"]
        for line in parcel["lines"]
    }
    assert lines[card["id"]]["test"] is True and lines[due["id"]]["test"] is False
    assert lines[card["id"]]["payment_status"] == "partially_refunded"
    assert lines[card["id"]]["refunded_qty"] == 1
    assert lines[card["id"]]["refunded"] == {"amount": 1990, "currency": "EUR"}
    assert lines[due["id"]]["provider"] == "manual"


def test_export_cells_never_start_a_formula(cli: Cli, shop: Shop, tmp_path: Path) -> None:
    """Buyers' and products' text that a spreadsheet would run as a formula is exported as
    text: a leading apostrophe, the rest unchanged."""
    title = "@SUM(1+1)"
    shop.ok(
        shop.client.post(
            "/api/products",
            json={
                "sku": "LIP-01",
                "title": title,
                "price": {"amount": 1990, "currency": "EUR"},
                "stock": 5,
            },
        ),
        201,
    )
    show = shop.show([{"sku": "LIP-01"}])
    buyer = shop.viewer('=HYPERLINK("http://evil.example","x")')
    hold = shop.ok(shop.hold(show, buyer, "LIP-01"), 201)
    body = checkout_body(name="+cmd|' /C calc'!A0", address="-2+3 Main St")
    shop.ok(shop.checkout(hold["hold_id"], buyer, body), 201)
    close(shop, show)
    path = tmp_path / "batch.csv"
    assert cli("orders", "export", show, "--output", str(path))[0] == 0
    (row,) = csv.DictReader(io.StringIO(path.read_text()))
    assert row["nickname"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["name"] == "'+cmd|' /C calc'!A0"
    assert row["address"] == "'-2+3 Main St"
    assert row["items"] == "1 x LIP-01 " + title  # the cell starts with the quantity
    assert row["email"] == "ada@example.com"


class DropFirstPostAnswer:
    """A TCP relay to the server that swallows the answer to the first POST: the server acts on
    it, the client never hears back, as when a connection breaks at the worst moment."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = threading.Event()
        self.posts = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        first = conn.recv(65536)
        with self._lock:
            drop = first.startswith(b"POST") and not self.dropped.is_set()
            self.posts += first.startswith(b"POST")
            if drop:
                self.dropped.set()
        upstream.sendall(first)
        threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()
        if drop:
            upstream.recv(1)  # the server has acted and begun its answer: lose it
        else:
            self._pump(upstream, conn)
        for s in (conn, upstream):
            # shutdown, not only close: the other pump may be blocked reading it.
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone
            s.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # pass the end on, so neither side waits for more
        except OSError:
            return  # the other side closed

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def lossy(server: LiveServer) -> Iterator[DropFirstPostAnswer]:
    relay = DropFirstPostAnswer(server.settings.port)
    yield relay
    relay.close()


def test_refund_sent_again_refunds_once(
    shop: Shop, lossy: DropFirstPostAnswer, capsys: pytest.CaptureFixture[str]
) -> None:
    """When a refund's answer is lost the CLI sends it again with the same idempotency key:
    the server refunds once, and the CLI reports that one refund."""
    from livesale.cli import main

    shop.product("LIP-01", stock=10)
    show = shop.show([{"sku": "LIP-01"}])
    bought = buy(shop, show, "ada", "LIP-01", qty=3)
    close(shop, show)
    capsys.readouterr()
    args = ["--server", lossy.url, "--api-key", shop.api_key]
    assert main(["orders", "refund", bought["id"], "--qty", "1", *args]) == 0
    out = capsys.readouterr().out
    assert lossy.dropped.is_set() and lossy.posts == 2
    assert "Refunded 1 unit(s)" in out and "1 of 3 unit(s), EUR 19.90 refunded in all" in out
    refunded = order(shop, bought["id"])
    assert (refunded["returned_qty"], refunded["refunded"]["amount"]) == (1, 1990)
    assert shop.stock("LIP-01")["available"] == 8
