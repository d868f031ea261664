"""The store of record: SQLite (the embedded default) or PostgreSQL, one interface for both.

:func:`open_database` opens the store a path or URL names and applies pending migrations;
:mod:`livesale.db.base` says what every store offers and promises.
"""

from __future__ import annotations

from pathlib import Path

from livesale.db.base import (
    Connection,
    Cursor,
    Database,
    Params,
    Row,
    migrations,
    redact,
    statements,
)
from livesale.db.postgres import PostgresDatabase
from livesale.db.sqlite import SQLiteDatabase
from livesale.errors import ConfigError

__all__ = [
    "Connection",
    "Cursor",
    "Database",
    "Params",
    "PostgresDatabase",
    "Row",
    "SQLiteDatabase",
    "migrations",
    "open_database",
    "redact",
    "statements",
]


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL; ``None`` for any
    other URL."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


async def open_database(where: Path | str) -> Database:
    """The store at ``where`` (an SQLite file's path, a ``sqlite:///`` URL or a
    ``postgresql://`` URL), migrated; :class:`ConfigError` for a URL of another engine."""
    if isinstance(where, Path):
        return await SQLiteDatabase.open(where)
    path = sqlite_path(where)
    if path is not None:
        return await SQLiteDatabase.open(path)
    if where.startswith(("postgresql://", "postgres://")):
        return await PostgresDatabase.open(where)
    raise ConfigError(
        f"unknown database URL {redact(where)!r}: use sqlite:///PATH or postgresql://..."
    )
