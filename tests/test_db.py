"""The SQLite store: WAL, migrations applied once, statements split as SQLite would."""

from __future__ import annotations

from pathlib import Path

import pytest

from livesale.db import Database, _statements, migrations
from livesale.errors import StoreError


async def test_migrations_apply_once(tmp_path: Path) -> None:
    """Every shipped migration is applied at the first open and never again."""
    db = await Database.open(tmp_path / "x.db")
    try:
        rows = await db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == [v for v, _, _ in migrations()]
        assert await db.migrate() == []
        mode = await db.fetchone("PRAGMA journal_mode")
        assert mode is not None and mode[0] == "wal"
    finally:
        await db.close()


async def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    """A write transaction that raises leaves nothing behind."""
    db = await Database.open(tmp_path / "x.db")
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO settings VALUES ('k', 'v')")
                raise RuntimeError("boom")
        assert await db.fetchone("SELECT * FROM settings WHERE key = 'k'") is None
    finally:
        await db.close()


def test_statement_splitting() -> None:
    """Semicolons in comments, literals and trigger bodies do not split statements."""
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'z'; END;
    """
    statements = list(_statements(sql))
    assert len(statements) == 2
    assert statements[1].endswith("END;")
    with pytest.raises(StoreError):
        list(_statements("CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1;"))


async def test_a_read_sees_every_commit_before_it(tmp_path: Path) -> None:
    """Reads that overlap on the shared reader connection never pin an old snapshot: right
    after a commit, the writer's own next read finds its row, however many reads run beside."""
    import asyncio

    db = await Database.open(tmp_path / "x.db")
    try:
        async with db.transaction() as conn:
            await conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        stop = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                await db.fetchall("SELECT id FROM t")

        readers = [asyncio.create_task(reader()) for _ in range(20)]
        missing = 0
        for n in range(300):
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO t (id) VALUES (?)", (n,))
            if await db.fetchone("SELECT id FROM t WHERE id = ?", (n,)) is None:
                missing += 1
        stop.set()
        await asyncio.gather(*readers)
        assert missing == 0
    finally:
        await db.close()
