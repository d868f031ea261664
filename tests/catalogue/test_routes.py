"""Catalogue and stock over HTTP: the contract, and every bad input refused with nothing changed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer

LIPSTICK = {
    "sku": "LIP-RED",
    "title": "Velvet Lipstick",
    "price": {"amount": 1990, "currency": "EUR"},
    "description": "Matte red",
    "image_url": "https://shop.example/lip.png",
}


def state(http: httpx.Client) -> Any:
    """Everything the catalogue API can show, to compare before and after a refusal."""
    products = http.get("/api/products").json()
    return products, [http.get(f"/api/stock/{p['sku']}").json() for p in products]


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["type"].endswith("/" + slug)
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    return problem


@pytest.fixture
def stocked(merchant: httpx.Client) -> httpx.Client:
    """A catalogue with one lipstick, 10 on hand."""
    assert merchant.post("/api/products", json={**LIPSTICK, "stock": 10}).status_code == 201
    return merchant


def test_create_get_replace_product(merchant: httpx.Client) -> None:
    """POST creates (201), GET returns it with stock, a second POST replaces it (200)."""
    created = merchant.post("/api/products", json=LIPSTICK)
    assert created.status_code == 201
    assert created.json()["price"] == {"amount": 1990, "currency": "EUR"}
    got = merchant.get("/api/products/LIP-RED").json()
    assert got["title"] == "Velvet Lipstick"
    assert got["stock"] == {"sku": "LIP-RED", "on_hand": 0, "available": 0, "held": 0, "sold": 0}
    replaced = merchant.post("/api/products", json={**LIPSTICK, "title": "Velvet Lipstick II"})
    assert replaced.status_code == 200
    assert [p["title"] for p in merchant.get("/api/products").json()] == ["Velvet Lipstick II"]


def test_stock_set_adjust_get_and_ledger(stocked: httpx.Client) -> None:
    """Set and adjust keep available + held + sold = on_hand, and the ledger records each."""
    level = stocked.put("/api/stock/LIP-RED", json={"on_hand": 25}).json()
    assert level == {"sku": "LIP-RED", "on_hand": 25, "available": 25, "held": 0, "sold": 0}
    level = stocked.post("/api/stock/LIP-RED/adjust", json={"delta": -5, "reason": "damaged"})
    assert level.json()["on_hand"] == 20
    got = stocked.get("/api/stock/LIP-RED").json()
    assert got["available"] + got["held"] + got["sold"] == got["on_hand"] == 20
    ledger = stocked.get("/api/stock/LIP-RED/ledger").json()
    assert [(e["delta"], e["on_hand"], e["reason"]) for e in ledger] == [
        (-5, 20, "damaged"),
        (15, 25, "set"),
        (10, 10, "import"),
    ]
    assert all(e["actor"].startswith("key_") for e in ledger)


def test_import_all_or_nothing(merchant: httpx.Client) -> None:
    """An import with one bad row imports nothing and names the row."""
    good = {**LIPSTICK, "sku": "A-1", "stock": 5}
    again = {**LIPSTICK, "sku": "A-1"}
    response = merchant.post("/api/products/import", json=[good, {**LIPSTICK, "sku": "B-2"}, again])
    problem = assert_problem(response, 422, "validation")
    assert problem["errors"] == [{"index": 2, "sku": "A-1", "reason": "SKU repeats row 0"}]
    assert merchant.get("/api/products").json() == []
    ok = merchant.post("/api/products/import", json=[good, {**LIPSTICK, "sku": "B-2"}])
    assert ok.status_code == 201 and ok.json()["imported"] == 2
    assert merchant.get("/api/stock/A-1").json()["on_hand"] == 5


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        pytest.param(b'{"sku": "X-1", "title": ', 400, "malformed-json", id="malformed-json"),
        pytest.param(
            {**LIPSTICK, "price": {"amount": "19.90", "currency": "EUR"}},
            422,
            "validation",
            id="wrong-type",
        ),
        pytest.param(
            {k: v for k, v in LIPSTICK.items() if k != "title"},
            422,
            "validation",
            id="missing-field",
        ),
        pytest.param(
            {**LIPSTICK, "price": {"amount": -1, "currency": "EUR"}},
            422,
            "validation",
            id="negative-price",
        ),
        pytest.param(
            {**LIPSTICK, "price": {"amount": 19.9, "currency": "EUR"}},
            422,
            "validation",
            id="non-integer-price",
        ),
        pytest.param(
            {**LIPSTICK, "price": {"amount": 1990, "currency": "XYZ"}},
            422,
            "validation",
            id="unknown-currency",
        ),
        pytest.param({**LIPSTICK, "sku": "bad sku!"}, 422, "validation", id="bad-sku"),
        pytest.param({**LIPSTICK, "colour": "red"}, 422, "validation", id="unknown-field"),
        pytest.param([LIPSTICK], 422, "validation", id="list-not-object"),
    ],
)
def test_bad_product_refused_and_nothing_changes(
    stocked: httpx.Client, body: Any, status: int, slug: str
) -> None:
    """Each bad product body gets its problem and leaves the catalogue as it was."""
    before = state(stocked)
    if isinstance(body, bytes):
        response = stocked.post(
            "/api/products", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = stocked.post("/api/products", json=body)
    assert_problem(response, status, slug)
    assert state(stocked) == before


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "slug"),
    [
        ("PUT", "/api/stock/LIP-RED", {"on_hand": -1}, 422, "validation"),
        ("PUT", "/api/stock/LIP-RED", {"on_hand": "ten"}, 422, "validation"),
        ("PUT", "/api/stock/LIP-RED", {}, 422, "validation"),
        ("POST", "/api/stock/LIP-RED/adjust", {"delta": -11}, 409, "stock-conflict"),
        ("POST", "/api/stock/LIP-RED/adjust", {"delta": 1.5}, 422, "validation"),
        ("PUT", "/api/stock/NOPE", {"on_hand": 3}, 404, "not-found"),
    ],
)
def test_bad_stock_change_refused(
    stocked: httpx.Client, method: str, path: str, body: Any, status: int, slug: str
) -> None:
    """Bad stock changes get their problem and change no counter or ledger row."""
    before = state(stocked), stocked.get("/api/stock/LIP-RED/ledger").json()
    assert_problem(stocked.request(method, path, json=body), status, slug)
    assert (state(stocked), stocked.get("/api/stock/LIP-RED/ledger").json()) == before


def test_body_over_one_mib_is_413(stocked: httpx.Client) -> None:
    """A request body over 1 MiB is refused with 413 and nothing is imported."""
    before = state(stocked)
    row = {**LIPSTICK, "description": "x" * 4000}
    rows = [{**row, "sku": f"BULK-{n}"} for n in range(300)]
    response = stocked.post("/api/products/import", json=rows)
    assert_problem(response, 413, "payload-too-large")
    assert state(stocked) == before


def test_chunked_body_over_limit_is_413(stocked: httpx.Client) -> None:
    """A body without Content-Length is counted as it streams and refused past 1 MiB."""
    before = state(stocked)

    def chunks() -> Any:
        yield b"["
        for n in range(400):
            yield (
                b'{"sku": "C-%d", "title": "t", "price": {"amount": 1, "currency": "EUR"},'
                b' "description": "%s"},' % (n, b"y" * 3000)
            )
        yield b"{}]"

    response = stocked.post(
        "/api/products/import", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")
    assert state(stocked) == before


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer lsk_wrong"}, 403), ({"Authorization": "Basic x"}, 401)],
)
def test_merchant_calls_need_a_valid_key(
    server: LiveServer, headers: dict[str, str], status: int
) -> None:
    """Without a key 401, with a wrong key 403, and nothing changes either way."""
    with server.client(headers=headers) as anon:
        before = state(anon)
        for method, path, body in [
            ("POST", "/api/products", LIPSTICK),
            ("POST", "/api/products/import", [LIPSTICK]),
            ("PUT", "/api/stock/LIP-RED", {"on_hand": 5}),
            ("POST", "/api/stock/LIP-RED/adjust", {"delta": 5}),
            ("GET", "/api/stock/LIP-RED/ledger", None),
            ("POST", "/api/shows", {"title": "t", "host_name": "h"}),
        ]:
            response = anon.request(method, path, json=body)
            problem = assert_problem(
                response, status, "unauthorized" if status == 401 else "forbidden"
            )
            assert problem["status"] == status
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
        assert state(anon) == before


def test_unknown_product_is_404(http: httpx.Client) -> None:
    """An unknown SKU is a 404 problem."""
    assert_problem(http.get("/api/products/NOPE"), 404, "not-found")
    assert_problem(http.get("/api/stock/NOPE"), 404, "not-found")


def test_stock_cannot_fall_below_held_or_sold(server: LiveServer, stocked: httpx.Client) -> None:
    """With units held by a buyer, on-hand cannot be set or adjusted below them."""
    show = stocked.post("/api/shows", json={"title": "S", "host_name": "H"}).json()
    assert stocked.put(f"/api/shows/{show['id']}/lineup", json=[{"sku": "LIP-RED"}]).is_success
    assert stocked.post(f"/api/shows/{show['id']}/start").is_success
    viewer = httpx.post(server.url + "/api/viewers", json={"nickname": "Ann"}).json()
    hold = httpx.post(
        f"{server.url}/api/shows/{show['id']}/holds",
        json={"sku": "LIP-RED", "qty": 3, "idempotency_key": "click-1"},
        headers={"Authorization": f"Bearer {viewer['token']}"},
    )
    assert hold.status_code == 201, hold.text
    before = state(stocked), stocked.get("/api/stock/LIP-RED/ledger").json()
    assert before[0][1][0]["held"] == 3
    problem = assert_problem(
        stocked.put("/api/stock/LIP-RED", json={"on_hand": 2}), 409, "stock-conflict"
    )
    assert problem["held"] == 3
    assert_problem(
        stocked.post("/api/stock/LIP-RED/adjust", json={"delta": -8}), 409, "stock-conflict"
    )
    assert (state(stocked), stocked.get("/api/stock/LIP-RED/ledger").json()) == before
    level = stocked.put("/api/stock/LIP-RED", json={"on_hand": 3}).json()
    assert level == {"sku": "LIP-RED", "on_hand": 3, "available": 0, "held": 3, "sold": 0}


def test_import_limits_and_too_many_rows(server: LiveServer, merchant: httpx.Client) -> None:
    """The server says what one import may carry (for the CLI); an import over the row limit is
    a 422 naming it, and nothing is imported."""
    assert merchant.get("/api/products/import/limits").json() == {
        "max_rows": 5000,
        "max_body_bytes": 1024 * 1024,
    }
    rows = [{**LIPSTICK, "sku": f"R-{n}", "description": ""} for n in range(5001)]
    problem = assert_problem(merchant.post("/api/products/import", json=rows), 422, "validation")
    assert problem["max_rows"] == 5000 and "5001" in problem["detail"]
    assert merchant.get("/api/products").json() == []
    with server.client() as anon:
        assert_problem(anon.get("/api/products/import/limits"), 401, "unauthorized")
