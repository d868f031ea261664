"""The SQLite store: one file, WAL, numbered migrations, one writer connection.

SQLite is the system of record (catalogue, shows, line-ups, orders, payments). All writes go
through :meth:`Database.transaction`, which serialises them on the single writer connection
(Datasette's ``execute_write_fn`` idea); reads use a separate connection that sees every
committed write thanks to WAL. ``synchronous=FULL`` keeps a committed order on disk through a
power cut.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from livesale.datadir import PRIVATE_DIR, PRIVATE_FILE
from livesale.errors import StoreError

log = logging.getLogger("livesale.db")

Params = Sequence[Any] | dict[str, Any]


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped in ``livesale/migrations``: ``(version, name, sql)``."""
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


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in ("busy_timeout = 10000", "foreign_keys = ON", "synchronous = FULL"):
        await _pragma(conn, pragma)
    return conn


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    # Step the statement to its end and close it: an open PRAGMA cursor keeps a lock.
    async with conn.execute(f"PRAGMA {pragma}") as cur:
        await cur.fetchall()


class Database:
    """Owns the writer and reader connections to one SQLite file."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        # One statement at a time on the reader: while any statement of a connection is still
        # open, SQLite keeps that connection's read snapshot, so reads that overlapped would go
        # on seeing the database as it was before commits made since (a checkout would not
        # find the order it had just written).
        self._read_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating if needed) the database and apply pending migrations."""
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        try:
            # Buyers' addresses live here: the file is the owner's alone, and SQLite gives its
            # WAL and shared-memory files the database's mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
            writer = await _connect(path)
            await _pragma(writer, "journal_mode = WAL")
            reader = await _connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        db = cls(path, writer, reader)
        await db.migrate()
        return db

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def migrate(self) -> list[int]:
        """Apply every migration not yet applied, each in its own transaction; return them."""
        applied: list[int] = []
        async with self.transaction() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
        for version, name, sql in migrations():
            async with self.transaction() as conn:
                # Checked inside the write transaction: another process sharing the data
                # directory may have applied it a moment ago.
                cur = await conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                )
                if await cur.fetchone() is not None:
                    continue
                for statement in _statements(sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
                applied.append(version)
                log.info("applied migration %04d %s", version, name)
        return applied

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``) on the writer connection.

        Commits when the block ends, rolls back if it raises. SQLite errors come out as
        :class:`StoreError`; livesale errors raised inside pass through unchanged.
        """
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"database busy: {exc}") from exc
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            try:
                await self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._writer.execute("ROLLBACK")
                raise StoreError(f"commit failed: {exc}") from exc

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Every row of one read, from a snapshot taken after every commit so far."""
        try:
            async with self._read_lock, self._reader.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The first row of one read (see :meth:`fetchall`)."""
        try:
            async with self._read_lock, self._reader.execute(sql, params) as cur:
                row: sqlite3.Row | None = await cur.fetchone()
                return row
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")


def _statements(sql: str) -> Iterable[str]:
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
