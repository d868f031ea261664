"""The stores of record, SQLite and PostgreSQL: migrations applied once, one write transaction
at a time, statements split as SQLite would, errors translated."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from livesale.db import Database, PostgresDatabase, SQLiteDatabase, migrations, open_database
from livesale.db import statements as _statements
from livesale.db.base import format_placeholders, redact
from livesale.errors import ConfigError, IntegrityFailed, StoreError


@pytest.fixture
async def db(tmp_path: Path, database_url: str) -> AsyncIterator[Database]:
    """An open store of this test's kind: a new SQLite file, or a new PostgreSQL database."""
    opened = await open_database(database_url or tmp_path / "x.db")
    yield opened
    await opened.close()


async def test_migrations_apply_once(db: Database) -> None:
    """Every shipped migration is applied at the first open and never again."""
    rows = await db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == [v for v, _, _ in migrations()]
    assert await db.migrate() == []


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    """SQLite only (a PRAGMA): the file is in WAL mode, so reads never wait for the writer."""
    db = await open_database(tmp_path / "x.db")
    try:
        assert isinstance(db, SQLiteDatabase)
        mode = await db.fetchone("PRAGMA journal_mode")
        assert mode is not None and mode[0] == "wal"
    finally:
        await db.close()


async def test_migrations_from_nothing_by_processes_starting_together(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> None:
    """Stores opened at once on an empty database apply every migration exactly once."""
    if database_url:
        cluster = request.getfixturevalue("postgres_cluster")
        name = database_url.split("?", 1)[0].rsplit("/", 1)[1]
        target: Path | str = cluster.url(name + "_empty")
        cluster.execute(f"CREATE DATABASE {name}_empty")
        targets = [target]
    else:
        # Several rounds: SQLite's switch to WAL refuses a file being opened beside it at once,
        # without waiting, now and then (a few times in a hundred rounds).
        targets = [tmp_path / f"empty-{n}.db" for n in range(12)]
    for target in targets:
        opened = await asyncio.gather(*(open_database(target) for _ in range(6)))
        try:
            rows = await opened[0].fetchall(
                "SELECT version FROM schema_migrations ORDER BY version"
            )
            assert [r[0] for r in rows] == [v for v, _, _ in migrations()]
        finally:
            for db in opened:
                await db.close()
            if database_url:
                cluster.drop(str(target))


async def test_a_file_that_fails_to_open_leaves_no_thread(tmp_path: Path) -> None:
    """A file that is not a database is refused with StoreError, and the connections opened
    on the way are closed: their threads end (a live one would keep the process from exiting)."""
    before = set(threading.enumerate())
    bad = tmp_path / "not.db"
    bad.write_bytes(b"this is not an SQLite database, not even close" * 100)
    with pytest.raises(StoreError, match="not a database"):
        await open_database(bad)
    deadline = time.monotonic() + 10
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert set(threading.enumerate()) - before == set()


async def test_failed_transaction_rolls_back(db: Database) -> None:
    """A write transaction that raises leaves nothing behind."""
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO settings VALUES ('k', 'v')")
            raise RuntimeError("boom")
    assert await db.fetchone("SELECT * FROM settings WHERE key = 'k'") is None


async def test_engine_errors_come_out_as_store_errors(db: Database) -> None:
    """A refused constraint is IntegrityFailed, any other engine error StoreError, and the
    transaction is rolled back: nothing of it is kept."""
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO settings VALUES ('k', 'v')")
    with pytest.raises(IntegrityFailed):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO settings VALUES ('other', 'v')")
            await conn.execute("INSERT INTO settings VALUES ('k', 'again')")
    with pytest.raises(StoreError):
        await db.fetchone("SELECT nothing FROM nowhere")
    assert await db.fetchone("SELECT * FROM settings WHERE key = 'other'") is None


async def test_rows_by_name_and_position_and_the_shared_sql(db: Database) -> None:
    """Rows read by column name and by index; ``ON CONFLICT DO NOTHING``, ``RETURNING``,
    ``rowcount``, a literal ``%`` and 0/1 booleans mean the same on both engines."""
    async with db.transaction() as conn:
        cur = await conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING key",
            ("a", "100%"),
        )
        made = await cur.fetchone()
        assert made is not None and made["key"] == made[0] == "a"
        cur = await conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING key",
            ("a", "again"),
        )
        assert await cur.fetchone() is None
        cur = await conn.execute("UPDATE settings SET value = value || '?' WHERE key LIKE 'a%'")
        assert cur.rowcount == 1
        await conn.executemany(
            "INSERT INTO payment_log (order_id, provider, action, outcome, at)"
            " VALUES (?, 'test', 'authorize', ?, ?)",
            [("o1", "ok", 1.5), ("o2", "ok", 1796238446.907966)],
        )
    row = await db.fetchone("SELECT value FROM settings WHERE key = ?", ("a",))
    assert row is not None and row["value"] == "100%?"
    log = await db.fetchall("SELECT id, at FROM payment_log ORDER BY id")
    assert [r["at"] for r in log] == [1.5, 1796238446.907966]  # 8-byte floats on both
    assert log[1]["id"] > log[0]["id"]
    flag = await db.fetchone("SELECT ? = 1 AS yes", (True,))
    assert flag is not None and bool(flag["yes"])


async def test_write_transactions_never_overlap(db: Database, database_url: str) -> None:
    """Read-then-write transactions from two stores on one database (as from two processes)
    never lose an update: each sees every commit before it."""
    other = await open_database(database_url) if database_url else db

    async def bump(store: Database) -> None:
        async with store.transaction() as conn:
            cur = await conn.execute("SELECT value FROM settings WHERE key = 'n'")
            found = await cur.fetchone()
            count = int(found[0]) if found else 0
            await asyncio.sleep(0)
            await conn.execute(
                "INSERT INTO settings (key, value) VALUES ('n', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(count + 1),),
            )

    try:
        await asyncio.gather(*(bump(db if n % 2 else other) for n in range(60)))
    finally:
        if other is not db:
            await other.close()
    row = await db.fetchone("SELECT value FROM settings WHERE key = 'n'")
    assert row is not None and row[0] == "60"


async def test_database_urls() -> None:
    """``sqlite:///`` and ``postgresql://`` URLs name their engine; any other is refused
    without showing its password; a password never shows in a store's URL."""
    with pytest.raises(ConfigError) as refused:
        await open_database("mysql://shop:hunter2@db/livesale")
    assert "hunter2" not in str(refused.value)
    assert redact("postgresql://shop:hunter2@db:5432/livesale") == (
        "postgresql://shop:***@db:5432/livesale"
    )
    assert redact("postgresql:///livesale?host=/run/pg") == "postgresql:///livesale?host=/run/pg"
    with pytest.raises(StoreError) as unreachable:
        await PostgresDatabase.open("postgresql://shop:hunter2@127.0.0.1:1/livesale")
    assert "hunter2" not in str(unreachable.value)


def test_placeholders() -> None:
    """``?`` becomes ``%s`` except inside quoted strings and names; every ``%`` doubles."""
    sql = "SELECT '?', \"a?\", ? FROM t WHERE x LIKE 'a%' AND y = ? AND z % 2 = 0"
    assert format_placeholders(sql) == (
        "SELECT '?', \"a?\", %s FROM t WHERE x LIKE 'a%%' AND y = %s AND z %% 2 = 0"
    )


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


async def test_a_read_sees_every_commit_before_it(db: Database) -> None:
    """Reads that overlap (on SQLite's shared reader connection, on PostgreSQL's pool) never
    pin an old snapshot: right after a commit, the writer's own next read finds its row,
    however many reads run beside."""
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
