"""The catalogue: products, their stock counters and ledger, and product imports.

This module is the catalogue's surface: other domains import only the names below.
"""

from livesale.catalogue.component import CATALOGUE, Catalogue
from livesale.catalogue.files import read_products
from livesale.catalogue.messages import ImportLimits, Product, ProductIn
from livesale.catalogue.routes import routes, save_products
from livesale.catalogue.state import check as check_stock

__all__ = [
    "CATALOGUE",
    "Catalogue",
    "ImportLimits",
    "Product",
    "ProductIn",
    "check_stock",
    "read_products",
    "routes",
    "save_products",
]
