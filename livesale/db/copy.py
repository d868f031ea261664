"""Moving a shop's store of record from its SQLite file into PostgreSQL (``livesale db copy``).

Both stores are opened (so both carry every migration) and every row of every table is copied,
parents before the tables that refer to them, in one write transaction on the target: a copy
that fails half-way leaves the target as empty as it was. The target must be empty, so a copy
never merges two shops' rows. Identity columns (the ledger's and the logs' ``id``) go on from
the highest copied id. The source is only read, and must not be served meanwhile: the caller
checks that no server has it open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from livesale.db.base import Connection, Database
from livesale.errors import ConfigError, StoreError

#: Rows read from the source and written to the target at a time.
BATCH_ROWS = 500

#: ``progress(table, rows copied so far, rows of the table)``, after each batch.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: int


async def copy_store(source: Database, target: Database, progress: Progress) -> list[Table]:
    """Copy every row of ``source`` (SQLite) into ``target`` (an empty PostgreSQL database);
    the tables copied, in the order they were. :class:`ConfigError` when the target is not empty
    or not PostgreSQL, :class:`StoreError` (nothing copied) when the target refuses a row."""
    if source.dialect != "sqlite" or target.dialect != "postgresql":
        raise ConfigError("a copy goes from an SQLite file into a PostgreSQL database")
    tables = await _tables(source)
    occupied = [
        t.name for t in tables if await target.fetchone(f'SELECT 1 FROM "{t.name}" LIMIT 1')
    ]
    if occupied:
        raise ConfigError(
            f"the target database already holds rows ({', '.join(occupied)}): copy into a new,"
            " empty database, before any server or `livesale keys create` has used it"
        )
    async with target.transaction() as conn:
        for table in tables:
            await _copy_table(source, conn, table, progress)
        await _continue_identities(conn)
    return tables


async def _tables(source: Database) -> list[Table]:
    """The source's tables (not the migrations' own), each after every table it refers to."""
    rows = await source.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name"
    )
    names = [str(row[0]) for row in rows]
    parents: dict[str, set[str]] = {}
    for name in names:
        refs = await source.fetchall(f"SELECT \"table\" FROM pragma_foreign_key_list('{name}')")
        parents[name] = {str(ref[0]) for ref in refs} - {name}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:
            raise StoreError(f"the tables refer to each other in a circle: {sorted(parents)}")
        ordered.extend(ready)
    tables = []
    for name in ordered:
        columns = await source.fetchall(
            f"SELECT name FROM pragma_table_info('{name}') ORDER BY cid"
        )
        count = await source.fetchone(f'SELECT COUNT(*) FROM "{name}"')
        assert count is not None
        tables.append(Table(name, tuple(str(c[0]) for c in columns), int(count[0])))
    return tables


async def _copy_table(source: Database, conn: Connection, table: Table, progress: Progress) -> None:
    quoted = ", ".join(f'"{c}"' for c in table.columns)
    where = f'FROM "{table.name}" WHERE rowid > ? ORDER BY rowid LIMIT {BATCH_ROWS}'
    read = f"SELECT rowid, {quoted} {where}"
    write = (
        f'INSERT INTO "{table.name}" ({quoted}) VALUES ({", ".join("?" for _ in table.columns)})'
    )
    width = range(1, len(table.columns) + 1)  # past the rowid
    copied, after = 0, -(2**63)
    progress(table.name, 0, table.rows)
    while True:
        batch = await source.fetchall(read, (after,))
        if not batch:
            break
        after = int(batch[-1][0])
        try:
            await conn.executemany(write, [tuple(row[i] for i in width) for row in batch])
        except StoreError as exc:
            raise StoreError(f"{table.name}: {exc.detail}; nothing was copied") from exc
        copied += len(batch)
        progress(table.name, copied, table.rows)


async def _continue_identities(conn: Connection) -> None:
    """Each identity column's next value: one past the highest copied."""
    cur = await conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    for table, column in [(str(r[0]), str(r[1])) for r in await cur.fetchall()]:
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?),"
            f' COALESCE((SELECT MAX("{column}") FROM "{table}"), 0) + 1, false)',
            (table, column),
        )
