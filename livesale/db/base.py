"""What every store of record offers the rest of livesale, whichever engine keeps the rows.

A store is a :class:`Database`: :meth:`~Database.transaction` yields a :class:`Connection`
whose ``execute`` returns a :class:`Cursor` (``fetchone``, ``fetchall``, ``rowcount``);
:meth:`~Database.fetchone` and :meth:`~Database.fetchall` read outside a transaction. Rows are
indexable by column name and by position. SQL is written once, with ``?`` placeholders, in
the subset SQLite and PostgreSQL share (``INSERT ... ON CONFLICT``, ``RETURNING``, partial
indexes, 0/1 for booleans); each engine's adapter turns the placeholders into its driver's.
Every engine error comes out as :class:`~livesale.errors.StoreError` (a refused constraint as
:class:`~livesale.errors.IntegrityFailed`).

Both engines keep the one rule the order book was built on: write transactions never overlap.
SQLite has one writer connection; PostgreSQL takes one advisory lock per write transaction
(:mod:`livesale.db.postgres`), so a read-then-write inside a transaction sees every commit
before it and nothing changes under it, across every process sharing the database.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Any, Protocol, TypeVar

from livesale.errors import StoreError

log = logging.getLogger("livesale.db")

Params = Sequence[Any]
_D = TypeVar("_D", bound="Database")


class Row(Protocol):
    """One row: ``row["sku"]`` or ``row[0]``."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    """The answer to one statement."""

    @property
    def rowcount(self) -> int:
        """Rows the statement changed (``-1`` for a query)."""
        ...

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> list[Row]: ...


class Connection(ABC):
    """A write transaction's connection (only valid inside :meth:`Database.transaction`)."""

    #: ``"sqlite"`` or ``"postgresql"``: for the rare statement the two spell differently.
    dialect: str

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement; :class:`StoreError` if the engine refuses it."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per row of parameters."""


class Database(ABC):
    """The store of record: catalogue, shows, orders and payments."""

    dialect: str

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """One write transaction: commits when the block ends, rolls back if it raises.

        No two write transactions overlap, in this process or any other sharing the store.
        Engine errors come out as :class:`StoreError`; livesale errors raised inside pass
        through unchanged.
        """

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of one read, which sees every commit made before it."""

    @abstractmethod
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of one read (see :meth:`fetchall`)."""

    @abstractmethod
    async def close(self) -> None: ...

    def ddl(self, statement: str) -> str:
        """A migration's statement as this engine takes it (SQLite's: as written)."""
        return statement

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")

    async def migrated(self: _D) -> _D:
        """This store with every pending migration applied; closed if that fails (what each
        engine's ``open`` returns)."""
        try:
            await self.migrate()
        except BaseException:
            await self.close()
            raise
        return self

    async def migrate(self) -> list[int]:
        """Apply every migration not yet applied, each in its own transaction; return them.

        Safe with several processes starting together: each migration is checked inside its
        write transaction, which no other process's can overlap.
        """
        applied: list[int] = []
        async with self.transaction() as conn:
            await conn.execute(
                self.ddl(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
            )
        for version, name, sql in migrations():
            async with self.transaction() as conn:
                cur = await conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                )
                if await cur.fetchone() is not None:
                    continue
                for statement in statements(sql):
                    await conn.execute(self.ddl(statement))
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
                applied.append(version)
                log.info("applied migration %04d %s", version, name)
        return applied


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped in ``livesale/migrations``: ``(version, name, sql)``,
    one series for every engine."""
    found = []
    for entry in resources.files("livesale.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name[5:-4], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a number: {versions}")
    return found


def statements(sql: str) -> Iterable[str]:
    """Split a migration file into statements, as SQLite itself would.

    ``sqlite3.complete_statement`` understands comments, string literals and trigger bodies,
    so a semicolon inside any of them does not end a statement.
    """
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if _has_sql(buffer):
                yield buffer.strip()
            buffer = ""
    if _has_sql(buffer.rstrip(";")):
        raise StoreError(f"migration ends with an incomplete statement: {buffer.strip()[:80]}")


def _has_sql(text: str) -> bool:
    lines = (ln.split("--", 1)[0].strip() for ln in text.splitlines())
    return any(ln and ln != ";" for ln in lines)


#: A ``?`` placeholder, a ``%``, or a quoted string or name.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")


def format_placeholders(sql: str) -> str:
    """``?`` placeholders as ``%s`` (the format paramstyle); every literal ``%`` doubled, in
    quotes too (psycopg reads ``%`` everywhere), and a ``?`` in quotes left as it is."""

    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        return "%s" if token == "?" else token.replace("%", "%%")

    return _TOKENS.sub(swap, sql)


def redact(url: str) -> str:
    """``url`` without its password, fit for a log line or an error message."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)
