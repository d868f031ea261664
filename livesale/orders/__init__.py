"""Orders: holds (the buy click), checkout and payment providers, orders, the show's closing
and fulfilment batch, the merchant's webhook, and rebuilding stock from the record.

This module is the orders' surface: other domains and the app import only the names below.
"""

from livesale.orders.component import ORDERS, OrdersComponent, start
from livesale.orders.files import csv_cell, read_tracking
from livesale.orders.recovery import ensure_stock
from livesale.orders.routes import describe, routes

__all__ = [
    "ORDERS",
    "OrdersComponent",
    "csv_cell",
    "describe",
    "ensure_stock",
    "read_tracking",
    "routes",
    "start",
]
