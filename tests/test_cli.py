"""The merchant CLI through ``main([...])`` against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from livesale.cli import main
from livesale.config import Settings
from tests.conftest import LiveServer, free_port

CATALOGUE_CSV = """sku,title,price,currency,description,image_url,stock
LIP-RED,Velvet Lipstick Red,19.90,EUR,"Matte, long-wear",https://shop.example/r.png,40
LIP-NUD,Velvet Lipstick Nude,19.90,EUR,,,25
SRM-C,Vitamin C Serum,39.00,EUR,Brightening,,
"""


class Cli:
    """Runs ``livesale`` commands against ``server`` and captures what they print."""

    def __init__(self, server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
        self.server = server
        self.capsys = capsys

    def __call__(self, *args: str, key: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        argv = [*args, "--server", self.server.url, "--api-key", key or self.server.api_key]
        code = main(argv)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(server: LiveServer, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server, capsys)


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.csv"
    path.write_text(CATALOGUE_CSV)
    return path


def test_products_import_and_list(cli: Cli, catalogue: Path) -> None:
    """A CSV catalogue imports with decimal prices and stock; list shows it."""
    code, out, err = cli("products", "import", str(catalogue))
    assert code == 0, err
    assert "Imported 3 product(s)" in out
    products = {p["sku"]: p for p in cli.json("products", "list")}
    assert products["LIP-RED"]["price"] == {"amount": 1990, "currency": "EUR"}
    assert products["LIP-RED"]["description"] == "Matte, long-wear"
    assert products["LIP-RED"]["stock"]["on_hand"] == 40
    assert products["SRM-C"]["stock"]["on_hand"] == 0
    code, out, _ = cli("products", "list")
    assert code == 0 and "LIP-NUD" in out and "EUR 19.90" in out


def test_bad_rows_are_all_reported_and_nothing_imported(cli: Cli, tmp_path: Path) -> None:
    """Every bad row is printed with its line number, and nothing is imported."""
    path = tmp_path / "bad.csv"
    path.write_text(
        "sku,title,price,currency,description,image_url,stock\n"
        "OK-1,Fine,10.00,EUR,,,5\n"
        "BAD-1,Negative,-1.00,EUR,,,5\n"
        "BAD-2,Too precise,1.999,EUR,,,\n"
        "BAD-3,Money,9.99,XYZ,,,\n"
        "OK-1,Again,10.00,EUR,,,\n"
        ",No sku,1.00,EUR,,,\n"
        "BAD-4,Stock,1.00,EUR,,,many\n"
    )
    code, out, err = cli("products", "import", str(path))
    assert code == 1
    for line in (3, 4, 5, 6, 7, 8):
        assert f"{path}:{line}:" in err
    assert f"{path}:2:" not in err
    assert "6 bad row(s)" in err and "nothing was imported" in err
    assert cli.json("products", "list") == []


@pytest.fixture
def small_limits(settings: Settings) -> Iterator[LiveServer]:
    """A server that takes at most 5 products, and 4 KiB of body, in one import."""
    live = LiveServer(replace(settings, max_import_rows=5, max_body_bytes=4096)).start()
    yield live
    live.stop()


def test_import_over_the_servers_limits_is_refused_before_sending(
    small_limits: LiveServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An import is all or nothing, so a file over the server's limits is not sent in parts:
    the CLI asks the server for them and refuses the file up front, naming the limit and the
    file's row count or size; the server never sees it."""
    cli = Cli(small_limits, capsys)
    path = tmp_path / "big.csv"
    header = "sku,title,price,currency,description,image_url,stock\n"
    path.write_text(header + "".join(f"B-{n},Bulk,1.00,EUR,,,1\n" for n in range(6)))
    code, _, err = cli("products", "import", str(path))
    assert code == 1
    assert "holds 6 products" in err and "at most 5" in err and "nothing was imported" in err
    long = "x" * 1000
    path.write_text(header + "".join(f"B-{n},Bulk,1.00,EUR,{long},,1\n" for n in range(5)))
    code, _, err = cli("products", "import", str(path))
    assert code == 1 and "at most 4096 bytes" in err and "nothing was imported" in err
    assert cli.json("products", "list") == []
    path.write_text(header + "".join(f"B-{n},Bulk,1.00,EUR,,,1\n" for n in range(5)))
    assert cli("products", "import", str(path))[0] == 0
    assert len(cli.json("products", "list")) == 5
    with small_limits.client() as http:
        imports = [
            line
            for line in http.get("/metrics").text.splitlines()
            if line.startswith("livesale_http_requests_total") and '"/api/products/import"' in line
        ]
    assert len(imports) == 1 and 'status="201"' in imports[0] and imports[0].endswith(" 1.0")


def test_json_catalogue_import(cli: Cli, tmp_path: Path) -> None:
    """A JSON list of products imports too."""
    path = tmp_path / "catalogue.json"
    path.write_text(
        json.dumps(
            [
                {
                    "sku": "J-1",
                    "title": "Json",
                    "price": {"amount": 500, "currency": "USD"},
                    "stock": 3,
                }
            ]
        )
    )
    assert cli("products", "import", str(path))[0] == 0
    assert cli.json("stock", "show", "J-1")["on_hand"] == 3


def test_stock_commands(cli: Cli, catalogue: Path) -> None:
    """stock set / add / show change and report the counters."""
    cli("products", "import", str(catalogue))
    assert cli.json("stock", "set", "SRM-C", "12")["on_hand"] == 12
    assert cli.json("stock", "add", "SRM-C", "-2")["available"] == 10
    code, out, _ = cli("stock", "show", "SRM-C")
    assert code == 0 and "10" in out
    code, _, err = cli("stock", "add", "SRM-C", "-50")
    assert code == 1 and "409" in err and len(err.strip().splitlines()) == 1


def test_show_and_lineup_commands(cli: Cli, catalogue: Path, tmp_path: Path) -> None:
    """A merchant creates a show, pushes its line-up file, starts and ends it."""
    cli("products", "import", str(catalogue))
    created = cli.json("show", "create", "Friday Glow-Up", "--host", "Mia")
    show_id = created["id"]
    assert created["studio_url"].endswith("#token=" + created["host_token"])
    lineup = tmp_path / "lineup.csv"
    lineup.write_text("sku,price,limit_per_buyer\nSRM-C,29.00,1\nLIP-RED,,\n")
    pushed = cli.json("lineup", "push", show_id, str(lineup))
    assert [(i["sku"], i["price"]["amount"], i["limit_per_buyer"]) for i in pushed["items"]] == [
        ("SRM-C", 2900, 1),
        ("LIP-RED", 1990, None),
    ]
    code, out, _ = cli("lineup", "show", show_id)
    assert code == 0 and "SRM-C" in out
    assert cli.json("show", "start", show_id)["state"] == "live"
    assert [s["id"] for s in cli.json("show", "list")] == [show_id]
    assert cli.json("show", "end", show_id)["state"] == "ended"


def test_bad_lineup_file_changes_nothing(cli: Cli, catalogue: Path, tmp_path: Path) -> None:
    """A line-up file with unknown or repeated SKUs is refused line by line, unchanged."""
    cli("products", "import", str(catalogue))
    show_id = cli.json("show", "create", "S", "--host", "H")["id"]
    lineup = tmp_path / "lineup.csv"
    lineup.write_text("sku,price\nLIP-RED,\nNOPE,\nLIP-RED,1.00\nSRM-C,abc\n")
    code, _, err = cli("lineup", "push", show_id, str(lineup))
    assert code == 1
    assert f"{lineup}:3:" in err and f"{lineup}:4:" in err and f"{lineup}:5:" in err
    assert cli.json("lineup", "show", show_id)["items"] == []


def test_errors_are_one_line(
    cli: Cli, server: LiveServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Unreachable server, wrong key and 404 each end in one line and exit code 1."""
    code, _, err = cli("products", "list", key="lsk_wrong")
    assert code == 0  # reading the catalogue needs no key
    code, _, err = cli("stock", "set", "X", "1", key="lsk_wrong")
    assert code == 1 and "403" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("show", "start", "sh_nope")
    assert code == 1 and "404" in err and len(err.strip().splitlines()) == 1
    capsys.readouterr()
    port = free_port()
    code = main(
        ["products", "list", "--server", f"http://127.0.0.1:{port}", "--data-dir", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach the server" in err and len(err.strip().splitlines()) == 1
    code = main(["products", "list", "--data-dir", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert code == 1 and "no server" in err


def test_local_data_dir_fallback(
    spawn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], catalogue: Path
) -> None:
    """With no --server or key, the CLI finds the local server and its key in the data dir."""
    data = tmp_path / "data"
    spawn("--data-dir", str(data))
    assert main(["products", "import", str(catalogue), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["products", "list", "--json", "--data-dir", str(data)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_keys_create(
    server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keys create` makes a working key directly on the data directory."""
    capsys.readouterr()
    assert main(["keys", "create", "--data-dir", str(server.settings.data_dir)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("lsk_")
    with server.client(headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.post("/api/shows", json={"title": "t", "host_name": "h"}).status_code == 201


def test_demo_seeds_once(spawn: Any, tmp_path: Path) -> None:
    """`serve --demo` seeds a dozen products and a show once, and prints working links."""
    import httpx

    data = tmp_path / "data"
    first = spawn("--data-dir", str(data), "--demo")
    products = httpx.get(first.url + "/api/products").json()
    assert len(products) == 12
    assert {p["sku"][:3] for p in products} >= {"FDN", "LIP", "SRM"}
    (show,) = httpx.get(first.url + "/api/shows").json()
    lineup = httpx.get(f"{first.url}/api/shows/{show['id']}/lineup").json()
    assert len(lineup["items"]) >= 5
    out = first.output()
    assert "Merchant API key" in out
    assert f"/watch/{show['id']}" in out and f"/studio/{show['id']}#token=host_" in out
    token = out.split("#token=")[1].split()[0]
    assert (
        httpx.post(
            f"{first.url}/api/shows/{show['id']}/start",
            headers={"Authorization": f"Bearer {token}"},
        ).status_code
        == 200
    )
    first.stop()
    second = spawn("--data-dir", str(data), "--demo", port=first.port)
    assert len(httpx.get(second.url + "/api/products").json()) == 12
    assert len(httpx.get(second.url + "/api/shows").json()) == 1
    assert "Merchant API key" not in second.output()  # printed on the first start only
    assert f"/studio/{show['id']}#token=host_" in second.output()


def test_serve_options_read_environment(spawn: Any, tmp_path: Path) -> None:
    """`livesale serve` options also read LIVESALE_<NAME> (here LIVESALE_DATA_DIR)."""
    import os

    import httpx

    data = tmp_path / "from-env"
    os.environ["LIVESALE_DATA_DIR"] = str(data)
    try:
        server = spawn()
    finally:
        del os.environ["LIVESALE_DATA_DIR"]
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert (data / "livesale.db").exists()


def test_allow_origin_option(spawn: Any, tmp_path: Path) -> None:
    """`serve --allow-origin` lets pages of that origin open room sockets, and no other."""
    import httpx
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from tests.conftest import create_key

    data = tmp_path / "data"
    server = spawn("--data-dir", str(data), "--allow-origin", "https://shop.example")
    key = create_key(data)
    show = httpx.post(
        server.url + "/api/shows",
        json={"title": "S", "host_name": "H"},
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    url = f"ws://127.0.0.1:{server.port}/ws/shows/{show['id']}?token={show['host_token']}"
    with connect(url, origin="https://shop.example") as ws:  # type: ignore[arg-type]
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    with pytest.raises(InvalidStatus) as refused:
        with connect(url, origin="https://elsewhere.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


def test_outside_text_reaches_the_terminal_inert(cli: Cli, tmp_path: Path) -> None:
    """A product title with rich markup and terminal escapes is printed as the characters it
    holds: the brackets stay, ESC and CR show as escapes, never as control codes."""
    path = tmp_path / "hostile.json"
    title = "[bold red]FREE[/] \x1b[2J\rgone"
    body = [{"sku": "HOST-1", "title": title, "price": {"amount": 100, "currency": "EUR"}}]
    path.write_text(json.dumps(body))
    assert cli("products", "import", str(path))[0] == 0
    code, out, _ = cli("products", "list")
    assert code == 0
    assert "[bold red]FREE[/]" in out
    assert "\\x1b[2J" in out and "\\rgone" in out
    assert "\x1b" not in out and "\r" not in out


def test_show_token_prints_a_new_studio_link(cli: Cli) -> None:
    """`show token SHOW` prints a studio link with a new host token; the old one stops."""
    created = cli.json("show", "create", "Friday", "--host", "Lee")
    code, out, err = cli("show", "token", created["id"])
    assert code == 0, err
    token = out.split("#token=")[1].split()[0]
    assert token.startswith("host_") and token != created["host_token"]
    assert "old link no longer works" in out
    with cli.server.client() as http:
        start = f"/api/shows/{created['id']}/start"
        old = http.post(start, headers={"Authorization": f"Bearer {created['host_token']}"})
        assert old.status_code == 403
        assert http.post(start, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert cli("show", "token", "sh_missing")[0] == 1
