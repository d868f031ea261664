"""The catalogue's part of the running server, and what other domains may ask of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from starlette.requests import HTTPConnection

from livesale import services as svc
from livesale.catalogue.messages import Product
from livesale.catalogue.store import ProductStore, StockStore
from livesale.services import Part, Services
from livesale.values import StockLevel


class Catalogue:
    """Products (SQLite) and their stock counters (Redis, ledgered in SQLite).

    The catalogue's own routes use :attr:`products` and :attr:`stock`; other domains read it
    only through :meth:`stock_levels` and :meth:`products_by_sku`, and the stock rebuild asks
    after interrupted stock changes (:meth:`stock_change_interrupted`).
    """

    def __init__(self, services: Services) -> None:
        self.products = ProductStore(services.db)
        self.stock = StockStore(services.db, services.redis, services.scripts)

    async def stock_levels(self, skus: Sequence[str]) -> dict[str, StockLevel]:
        """The live counters of ``skus`` (a SKU never stocked reads as all zeros)."""
        return await self.stock.get_many(skus)

    async def stock_change_interrupted(self) -> bool:
        """True when a change of on-hand was cut off between its two steps (its process
        died): Redis may count less than SQLite until stock is rebuilt from SQLite."""
        return await self.stock.interrupted() is not None

    async def forget_interrupted_change(self) -> None:
        """Stock was rebuilt from SQLite: an interrupted change has nothing left to finish."""
        await self.stock.forget_interrupted()

    def on_stock_change(self, listener: Callable[[list[str]], Awaitable[None]]) -> None:
        """Call ``listener(skus)`` after every change of on-hand the merchant makes (imports,
        stock set and adjust), once SQLite and Redis both have it."""
        self.stock.listeners.append(listener)

    async def products_by_sku(self, skus: Iterable[str]) -> dict[str, Product]:
        """The products among ``skus`` that exist, by SKU."""
        return await self.products.existing(skus)


CATALOGUE: Part[Catalogue] = Part("catalogue")


def of(conn: HTTPConnection) -> Catalogue:
    """The catalogue of the app serving ``conn``."""
    return svc.of(conn).get(CATALOGUE)
