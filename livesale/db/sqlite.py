"""The embedded store: one SQLite file, WAL, one writer connection.

All writes go through :meth:`SQLiteDatabase.transaction`, which serialises them on the single
writer connection (Datasette's ``execute_write_fn`` idea); reads use a separate connection that
sees every committed write thanks to WAL. ``synchronous=FULL`` keeps a committed order on disk
through a power cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from livesale.datadir import PRIVATE_DIR, PRIVATE_FILE
from livesale.db.base import Connection, Cursor, Database, Params, Row
from livesale.errors import IntegrityFailed, StoreError

#: How long opening the file keeps trying to switch it to WAL while others open it too.
WAL_SECONDS = 10.0


def _error(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityFailed(str(exc))
    return StoreError(str(exc))


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in ("busy_timeout = 10000", "foreign_keys = ON", "synchronous = FULL"):
            await _pragma(conn, pragma)
    except BaseException:
        await _close_quietly(conn)
        raise
    return conn


async def _close_quietly(conn: aiosqlite.Connection | None) -> None:
    """Close ``conn`` (and stop its thread) on the way out of a failed open."""
    if conn is not None:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await conn.close()


async def _wal(conn: aiosqlite.Connection) -> None:
    """Put the file in WAL mode, which it keeps. The switch needs the file to itself for a
    moment, and SQLite answers "database is locked" at once, without the busy timeout, while
    another process opens the file too (several workers starting together): try again."""
    deadline = time.monotonic() + WAL_SECONDS
    while True:
        try:
            await _pragma(conn, "journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    # Step the statement to its end and close it: an open PRAGMA cursor keeps a lock.
    async with conn.execute(f"PRAGMA {pragma}") as cur:
        await cur.fetchall()


class _Cursor:
    __slots__ = ("_cur",)

    def __init__(self, cur: aiosqlite.Cursor) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    async def fetchone(self) -> Row | None:
        try:
            row: sqlite3.Row | None = await self._cur.fetchone()
        except sqlite3.Error as exc:
            raise _error(exc) from exc
        return row

    async def fetchall(self) -> list[Row]:
        try:
            return list(await self._cur.fetchall())
        except sqlite3.Error as exc:
            raise _error(exc) from exc


class _Connection(Connection):
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> Cursor:
        try:
            return _Cursor(await self._conn.execute(sql, params))
        except sqlite3.Error as exc:
            raise _error(exc) from exc

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            await self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _error(exc) from exc


class SQLiteDatabase(Database):
    """Owns the writer and reader connections to one SQLite file."""

    dialect = "sqlite"

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._conn = _Connection(writer)
        self._reader = reader
        self._write_lock = asyncio.Lock()
        # One statement at a time on the reader: while any statement of a connection is still
        # open, SQLite keeps that connection's read snapshot, so reads that overlapped would go
        # on seeing the database as it was before commits made since (a checkout would not
        # find the order it had just written).
        self._read_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SQLiteDatabase:
        """Open (creating if needed) the database and apply pending migrations."""
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        writer: aiosqlite.Connection | None = None
        try:
            # Buyers' addresses live here: the file is the owner's alone, and SQLite gives its
            # WAL and shared-memory files the database's mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
            writer = await _connect(path)
            await _wal(writer)
            reader = await _connect(path)
        except (sqlite3.Error, OSError) as exc:
            await _close_quietly(writer)
            raise StoreError(f"cannot open {path}: {exc}") from exc
        except BaseException:
            await _close_quietly(writer)
            raise
        return await cls(path, writer, reader).migrated()

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE``) on the writer connection."""
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"database busy: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            try:
                await self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._writer.execute("ROLLBACK")
                raise StoreError(f"commit failed: {exc}") from exc

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            async with self._read_lock, self._reader.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise _error(exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        try:
            async with self._read_lock, self._reader.execute(sql, params) as cur:
                row: sqlite3.Row | None = await cur.fetchone()
                return row
        except sqlite3.Error as exc:
            raise _error(exc) from exc
