"""Shows and line-ups over HTTP: states, host tokens, and bad line-ups refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.catalogue.test_routes import assert_problem
from tests.conftest import LiveServer

PRODUCTS = [
    {
        "sku": f"SKU-{n}",
        "title": f"Item {n}",
        "price": {"amount": 1000 + n, "currency": "EUR"},
        "stock": 10,
    }
    for n in range(1, 4)
] + [{"sku": "YEN-1", "title": "Yen item", "price": {"amount": 500, "currency": "JPY"}}]


@pytest.fixture
def show(merchant: httpx.Client) -> dict[str, Any]:
    """A scheduled show over a small catalogue."""
    assert merchant.post("/api/products/import", json=PRODUCTS).status_code == 201
    created = merchant.post("/api/shows", json={"title": "Glow-Up", "host_name": "Mia"})
    assert created.status_code == 201
    body: dict[str, Any] = created.json()
    return body


def test_create_show_returns_host_token_and_links(show: dict[str, Any], server: LiveServer) -> None:
    """Creating a show returns its host token once, in the studio link's fragment."""
    assert show["state"] == "scheduled"
    assert show["host_token"].startswith("host_")
    assert show["studio_url"] == f"{server.url}/studio/{show['id']}#token={show['host_token']}"
    assert show["watch_url"] == f"{server.url}/watch/{show['id']}"


def test_show_lifecycle_and_listing_order(merchant: httpx.Client, show: dict[str, Any]) -> None:
    """scheduled → live → ended; live shows list first; no way back from ended."""
    other = merchant.post("/api/shows", json={"title": "Later", "host_name": "Li"}).json()
    started = merchant.post(f"/api/shows/{show['id']}/start")
    assert started.status_code == 200 and started.json()["state"] == "live"
    assert [s["id"] for s in merchant.get("/api/shows").json()] == [show["id"], other["id"]]
    assert merchant.post(f"/api/shows/{show['id']}/start").json()["state"] == "live"
    assert merchant.post(f"/api/shows/{show['id']}/end").json()["state"] == "ended"
    assert_problem(merchant.post(f"/api/shows/{show['id']}/start"), 409, "invalid-transition")
    assert merchant.get(f"/api/shows/{show['id']}").json()["state"] == "ended"
    assert [s["id"] for s in merchant.get("/api/shows").json()] == [other["id"], show["id"]]


def test_host_token_may_start_and_reorder_lineup(server: LiveServer, show: dict[str, Any]) -> None:
    """The show's host token can start it and reorder its line-up, not change what is on it;
    another show's token can do neither."""
    host = {"Authorization": f"Bearer {show['host_token']}"}
    lineup = f"/api/shows/{show['id']}/lineup"
    with server.client(headers={"Authorization": "Bearer " + server.api_key}) as merchant:
        assert merchant.put(lineup, json=[{"sku": "SKU-1"}, {"sku": "SKU-2"}]).is_success
    with server.client(headers=host) as client:
        assert client.put(lineup, json=[{"sku": "SKU-2"}, {"sku": "SKU-1"}]).is_success
        assert_problem(client.put(lineup, json=[{"sku": "SKU-1"}]), 403, "forbidden")
        assert client.post(f"/api/shows/{show['id']}/start").json()["state"] == "live"
        # a host token is not a merchant key
        assert_problem(
            client.post("/api/shows", json={"title": "x", "host_name": "y"}), 403, "forbidden"
        )
    with server.client(headers={"Authorization": "Bearer " + server.api_key}) as merchant:
        other = merchant.post("/api/shows", json={"title": "B", "host_name": "Bo"}).json()
    with server.client(headers=host) as client:
        assert_problem(client.post(f"/api/shows/{other['id']}/start"), 403, "forbidden")
    with server.client() as anon:
        assert_problem(anon.post(f"/api/shows/{show['id']}/end"), 401, "unauthorized")


def test_lineup_put_and_get(merchant: httpx.Client, show: dict[str, Any]) -> None:
    """The line-up keeps show order, show prices and limits, and carries live stock."""
    put = merchant.put(
        f"/api/shows/{show['id']}/lineup",
        json=[
            {"sku": "SKU-3", "price": {"amount": 999, "currency": "EUR"}, "limit_per_buyer": 2},
            {"sku": "SKU-1"},
        ],
    )
    assert put.status_code == 200
    lineup = merchant.get(f"/api/shows/{show['id']}/lineup").json()
    assert lineup == put.json()
    assert lineup["featured"] is None
    assert [
        (i["sku"], i["price"]["amount"], i["limit_per_buyer"], i["available"])
        for i in lineup["items"]
    ] == [("SKU-3", 999, 2, 10), ("SKU-1", 1001, None, 10)]


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        pytest.param([{"sku": "NOPE"}], 422, "validation", id="unknown-sku"),
        pytest.param([{"sku": "SKU-1"}, {"sku": "SKU-1"}], 422, "validation", id="sku-twice"),
        pytest.param([{"sku": "SKU-1", "limit_per_buyer": 0}], 422, "validation", id="limit-0"),
        pytest.param(
            [{"sku": "SKU-1", "price": {"amount": -5, "currency": "EUR"}}],
            422,
            "validation",
            id="negative-price",
        ),
        pytest.param(
            [{"sku": "SKU-1", "price": {"amount": 500, "currency": "JPY"}}],
            422,
            "validation",
            id="other-currency",
        ),
        pytest.param({"sku": "SKU-1"}, 422, "validation", id="object-not-list"),
        pytest.param(b"[{", 400, "malformed-json", id="malformed"),
    ],
)
def test_bad_lineup_refused_and_unchanged(
    merchant: httpx.Client, show: dict[str, Any], body: Any, status: int, slug: str
) -> None:
    """A bad line-up is refused with its problem and the line-up stays as it was."""
    path = f"/api/shows/{show['id']}/lineup"
    assert merchant.put(path, json=[{"sku": "SKU-2"}]).is_success
    before = merchant.get(path).json()
    if isinstance(body, bytes):
        response = merchant.put(path, content=body, headers={"content-type": "application/json"})
    else:
        response = merchant.put(path, json=body)
    assert_problem(response, status, slug)
    assert merchant.get(path).json() == before


def test_lineup_size_is_capped(merchant: httpx.Client, show: dict[str, Any]) -> None:
    """A line-up of 200 items is taken; one of 201 is a 422 naming the cap, and the line-up
    stays as it was (every viewer's snapshot carries the whole line-up)."""
    many = [
        {"sku": f"MANY-{n}", "title": "Many", "price": {"amount": 100, "currency": "EUR"}}
        for n in range(201)
    ]
    assert merchant.post("/api/products/import", json=many).status_code == 201
    path = f"/api/shows/{show['id']}/lineup"
    assert merchant.put(path, json=[{"sku": p["sku"]} for p in many[:200]]).status_code == 200
    problem = assert_problem(
        merchant.put(path, json=[{"sku": p["sku"]} for p in many]), 422, "validation"
    )
    assert problem["max_items"] == 200 and "201" in problem["detail"]
    assert len(merchant.get(path).json()["items"]) == 200


def test_ended_show_lineup_is_final(merchant: httpx.Client, show: dict[str, Any]) -> None:
    """An ended show's line-up cannot change."""
    merchant.post(f"/api/shows/{show['id']}/end")
    response = merchant.put(f"/api/shows/{show['id']}/lineup", json=[{"sku": "SKU-1"}])
    assert_problem(response, 409, "invalid-transition")


@pytest.mark.parametrize(
    "body",
    [
        {"title": "", "host_name": "Mia"},
        {"title": "T"},
        {"title": "T", "host_name": "M", "scheduled_at": "tomorrow"},
    ],
)
def test_bad_show_refused(merchant: httpx.Client, body: dict[str, Any]) -> None:
    """A show without a title or host, or with a bad date, is refused and not created."""
    before = merchant.get("/api/shows").json()
    assert_problem(merchant.post("/api/shows", json=body), 422, "validation")
    assert merchant.get("/api/shows").json() == before


def test_unknown_show_is_404(http: httpx.Client) -> None:
    """Unknown shows are 404 problems."""
    assert_problem(http.get("/api/shows/sh_nope"), 404, "not-found")
    assert_problem(http.get("/api/shows/sh_nope/lineup"), 404, "not-found")


def test_viewer_sign_up(http: httpx.Client) -> None:
    """POST /api/viewers gives a viewer id and a token; an empty nickname is refused."""
    made = http.post("/api/viewers", json={"nickname": "  Lin  "})
    assert made.status_code == 201
    assert made.json()["nickname"] == "Lin" and made.json()["token"].startswith("v1.")
    assert_problem(http.post("/api/viewers", json={"nickname": "   "}), 422, "validation")
