"""The sale's shop and event loop (``tests/orders``), for the stock tests that race buyers."""

from tests.orders.conftest import shop, uvloop_policy  # noqa: F401 - fixtures
