"""The server comes up on its real parts."""

from __future__ import annotations

import httpx


def test_healthz(http: httpx.Client) -> None:
    """/healthz answers ok once Redis and SQLite answer."""
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
