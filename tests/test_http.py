"""HTTP plumbing: how refusals are logged."""

from __future__ import annotations

import logging

import httpx
import pytest
import redis

from livesale import keys
from tests.catalogue.test_routes import LIPSTICK, assert_problem
from tests.orders.conftest import wait_for


def test_unavailable_is_one_warning_line(
    merchant: httpx.Client, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 (here: a stock change while stock is being rebuilt) is logged as one warning line
    without a traceback, not as an error: a busy sale's 503s would bury the log."""
    assert merchant.post("/api/products", json={**LIPSTICK, "stock": 10}).status_code == 201
    redis_client.set(keys.REBUILD_LOCK, "1", ex=60)  # a rebuild elsewhere holds the lock
    redis_client.delete(keys.STOCK_READY)
    try:
        with caplog.at_level(logging.WARNING, logger="livesale.http"):
            response = merchant.put("/api/stock/LIP-RED", json={"on_hand": 4})
        assert_problem(response, 503, "unavailable")
        logged = [r for r in caplog.records if r.name == "livesale.http"]
        assert [r.levelno for r in logged] == [logging.WARNING]
        assert logged[0].exc_info is None
        assert "PUT /api/stock/LIP-RED" in logged[0].getMessage()
    finally:
        redis_client.delete(keys.REBUILD_LOCK)
    wait_for(lambda: redis_client.exists(keys.STOCK_READY), 30)
    assert merchant.get("/api/stock/LIP-RED").json()["on_hand"] == 10
