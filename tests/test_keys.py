"""Merchant API keys: listed with their label and last use (never the key), made over HTTP,
revoked so that the very next call with the key is refused; the CLI does the same."""

from __future__ import annotations

import json

import pytest

from livesale.cli import main
from tests.conftest import LiveServer


def test_keys_are_listed_and_revoked_at_once(server: LiveServer) -> None:
    """A new key works, shows in the list with its label and a last use, and stops on the
    very next request once revoked (the 5 s cache included); the key doing the revoking
    cannot revoke itself, and a revoked key stays listed."""
    with server.client(headers=server.merchant) as merchant:
        made = merchant.post("/api/keys", json={"label": "packing station"})
        assert made.status_code == 201, made.text
        new = made.json()
        assert new["key"].startswith("lsk_") and new["label"] == "packing station"
        with server.client(headers={"Authorization": f"Bearer {new['key']}"}) as station:
            assert station.get("/api/orders").status_code == 200
            listed = {k["id"]: k for k in merchant.get("/api/keys").json()}
            assert listed[new["id"]]["last_used_at"] is not None
            assert listed[new["id"]]["revoked_at"] is None
            assert all("key" not in k and "hash" not in k for k in listed.values())
            own = next(k for k in listed.values() if k["label"] == "test")
            refused = merchant.delete(f"/api/keys/{own['id']}")
            assert refused.status_code == 409
            revoked = merchant.delete(f"/api/keys/{new['id']}")
            assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
            stopped = station.get("/api/orders")
            assert stopped.status_code == 403 and "revoked" in stopped.json()["detail"]
            assert merchant.delete(f"/api/keys/{new['id']}").status_code == 200  # again: no-op
        assert merchant.delete("/api/keys/key_nope").status_code == 404
        assert merchant.post("/api/keys", json={"label": "bad\x1b[31m"}).status_code == 422
        listed = {k["id"]: k for k in merchant.get("/api/keys").json()}
        assert listed[new["id"]]["revoked_at"] is not None
    with server.client() as anyone:
        assert anyone.get("/api/keys").status_code == 401


def test_cli_lists_and_revokes_keys(server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    """`livesale keys list` prints labels and ids, never keys; `keys revoke ID` stops one."""
    with server.client(headers=server.merchant) as merchant:
        new = merchant.post("/api/keys", json={"label": "[/] spare"}).json()
    args = ["--server", server.url, "--api-key", server.api_key]
    capsys.readouterr()
    assert main(["keys", "list", *args]) == 0
    printed = capsys.readouterr().out
    assert new["id"] in printed and "[/] spare" in printed and new["key"] not in printed
    assert main(["keys", "revoke", new["id"], *args]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "list", "--json", *args]) == 0
    (listed,) = (k for k in json.loads(capsys.readouterr().out) if k["id"] == new["id"])
    assert listed["revoked_at"] is not None
    with server.client(headers={"Authorization": f"Bearer {new['key']}"}) as spare:
        assert spare.get("/api/orders").status_code == 403
    assert main(["keys", "revoke", "key_nope", *args]) == 1
