"""The app as a whole: OpenAPI covers every route, metrics, the landing page, problems."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from livesale.config import Settings
from tests.catalogue.test_routes import assert_problem
from tests.conftest import LiveServer


def test_openapi_describes_every_route(server: LiveServer, http: httpx.Client) -> None:
    """Every route the app serves (HTTP and WebSocket) is in /api/openapi.json, and no more;
    routes kept out of the schema (the WHIP/WHEP 405 answers to other methods) are not."""
    document = http.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for route in server.app.routes:
        if isinstance(route, Route):
            if not route.include_in_schema:
                continue
            path = re.sub(r"{([^}:]+)(:[^}]+)?}", r"{\1}", route.path)
            served |= {(path, m.lower()) for m in (route.methods or set()) - {"HEAD"}}
        elif isinstance(route, WebSocketRoute):
            served.add((route.path, "get"))
        else:
            assert isinstance(route, Mount)
    assert served == described
    stock = document["paths"]["/api/stock/{sku}"]["put"]
    assert stock["security"] == [{"merchantKey": []}]
    body_ref = stock["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.rsplit("/", 1)[-1] in document["components"]["schemas"]


def test_metrics_count_requests_by_route(http: httpx.Client) -> None:
    """/metrics serves Prometheus text with requests counted by route template."""
    http.get("/api/products/NOPE")
    text = http.get("/metrics").text
    assert "# TYPE livesale_http_requests_total counter" in text
    assert 'route="/api/products/{sku}",status="404"' in text


def test_metrics_token_is_required_when_set(settings: Settings) -> None:
    """With --metrics-token, /metrics answers only that bearer token: none is 401, a wrong
    one 403, both as problems; without it (above) anyone may read it."""
    live = LiveServer(replace(settings, metrics_token="m3tr1cs-s3cret")).start()
    try:
        with live.client() as http:
            assert_problem(http.get("/metrics"), 401, "unauthorized")
            assert http.get("/metrics").headers["www-authenticate"].startswith("Bearer")
            wrong = {"Authorization": "Bearer m3tr1cs-s3crex"}
            assert_problem(http.get("/metrics", headers=wrong), 403, "forbidden")
            key = {"Authorization": f"Bearer {live.api_key}"}  # a merchant key is not it
            assert_problem(http.get("/metrics", headers=key), 403, "forbidden")
            good = http.get("/metrics", headers={"Authorization": "Bearer m3tr1cs-s3cret"})
            assert good.status_code == 200
            assert "livesale_http_requests_total" in good.text
            assert 'route="/metrics",status="403"' in good.text
        assert "m3tr1cs" not in repr(live.settings)
    finally:
        live.stop()


def test_landing_lists_shows_live_first(server: LiveServer, merchant: httpx.Client) -> None:
    """/ lists shows with state and watch links, live first, and no host token."""
    first = merchant.post("/api/shows", json={"title": "Morning <b>", "host_name": "A"}).json()
    second = merchant.post("/api/shows", json={"title": "Evening", "host_name": "B"}).json()
    merchant.post(f"/api/shows/{second['id']}/start")
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert html.index("Evening") < html.index("Morning &lt;b&gt;")
    assert f'href="/watch/{second["id"]}"' in html and "Live now" in html and "Upcoming" in html
    assert first["host_token"] not in html and second["host_token"] not in html


@pytest.mark.parametrize(
    ("payments", "shown"), [(("manual", "test"), True), (("manual",), False)], ids=["test", "real"]
)
def test_landing_says_test_mode(settings: Settings, payments: tuple[str, ...], shown: bool) -> None:
    """/ carries the test-mode banner exactly when the test provider is on."""
    live = LiveServer(replace(settings, payments=payments)).start()
    try:
        html = httpx.get(live.url + "/").text
    finally:
        live.stop()
    banner = '<div class="test-mode-banner" role="status">Test mode — payments are not real</div>'
    assert (banner in html) is shown


def test_unknown_route_and_method_are_problems(http: httpx.Client) -> None:
    """An unknown path is a 404 problem and a wrong method a 405 problem."""
    assert_problem(http.get("/api/nothing-here"), 404, "not-found")
    assert_problem(http.delete("/api/products"), 405, "method-not-allowed")


def test_wrong_content_type_is_415(merchant: httpx.Client) -> None:
    """A JSON endpoint refuses another content type with 415."""
    response = merchant.post(
        "/api/products",
        content=b"sku=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "unsupported-media-type")


def test_405_allows_every_method_of_the_resource(http: httpx.Client) -> None:
    """A 405's Allow lists the methods of every route sharing the path (RFC 9110 §15.5.6),
    not one route's; a literal path is its own resource, not a value of a template."""
    cases = {
        "/api/holds/ho_x": "GET, HEAD, DELETE",
        "/api/products": "GET, HEAD, POST",
        "/api/shows": "GET, HEAD, POST",
        "/api/shows/sh_x/lineup": "GET, HEAD, PUT",
        "/api/stock/SKU-1": "GET, HEAD, PUT",
        "/api/stock/reconcile": "POST",
        "/api/products/import": "POST",
    }
    for path, allow in cases.items():
        response = http.options(path)
        assert_problem(response, 405, "method-not-allowed")
        assert response.headers["allow"] == allow, path


def test_whole_numbers_written_with_a_fraction_are_integers(merchant: httpx.Client) -> None:
    """JSON has one kind of number: 7.0 and 7e0 are the integer 7, as JSON Schema's integer
    says; 7.5 and 1e999 are no integer (422), and a huge exponent costs nothing."""
    product = {"sku": "INT-1", "title": "T", "price": {"amount": 990.0, "currency": "EUR"}}
    assert merchant.post("/api/products", json=product).status_code == 201
    for written, on_hand in ((b'{"on_hand": 7.0}', 7), (b'{"on_hand": 7e0}', 7)):
        answer = merchant.put("/api/stock/INT-1", content=written)
        assert answer.status_code == 200 and answer.json()["on_hand"] == on_hand
    for written in (b'{"on_hand": 7.5}', b'{"on_hand": 1e999}', b'{"on_hand": 1e999999999}'):
        assert_problem(merchant.put("/api/stock/INT-1", content=written), 422, "validation")


def test_openapi_says_what_each_operation_answers(http: httpx.Client) -> None:
    """The document names each operation's credential and statuses (no catch-all), the
    currencies and the nickname rule exactly, the PATCH session operations as what they are,
    and the settings' narrowing of the sale's bodies."""
    document = http.get("/api/openapi.json").json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    for path, method in (("/api/holds/{hold_id}", "delete"), ("/api/holds/{hold_id}/checkout",
                                                             "post")):  # fmt: skip
        assert paths[path][method]["security"] == [{"viewerToken": []}]
    for ops in paths.values():
        for op in ops.values():
            assert "default" not in op["responses"]
    hold = paths["/api/shows/{show_id}/holds"]["post"]["responses"]
    assert {"201", "401", "403", "404", "409", "422", "429"} <= set(hold)
    assert "409" not in paths["/api/products/{sku}"]["get"]["responses"]
    assert "404" in paths["/api/products/{sku}"]["get"]["responses"]
    assert "404" not in paths["/api/products"]["get"]["responses"]
    for kind in ("whip", "whep"):
        session = paths[f"/{kind}/{{show_id}}/{{session_id}}"]
        assert session["patch"]["summary"].startswith("Trickle ICE or ICE restart")
        assert set(session["patch"]["responses"]) >= {"405"}
        assert not any(status.startswith("2") for status in session["patch"]["responses"])
        assert session["delete"]["summary"].startswith("End a")
        options = paths[f"/{kind}/{{show_id}}"]["options"]["responses"]["204"]
        assert "content" not in options
    currency = schemas["Money"]["properties"]["currency"]
    assert "AAA" not in currency["enum"] and {"EUR", "JPY", "KWD"} <= set(currency["enum"])
    assert schemas["ViewerIn"]["properties"]["nickname"]["pattern"] == r"\S"
    payment = schemas["PaymentIn"]["oneOf"]
    assert [p["properties"]["provider"]["const"] for p in payment] == ["test", "manual"]
    assert schemas["HoldIn"]["properties"]["qty"]["maximum"] == 10
    assert schemas["WebhookIn"]["properties"]["url"]["pattern"] == r"^https://\S+$"
