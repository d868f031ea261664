"""A throw-away PostgreSQL cluster in a temporary directory, like the embedded Redis.

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``) run ``initdb`` and ``pg_ctl``
on a fresh directory that listens on a unix socket inside it only (no TCP port), never the
system's cluster. PostgreSQL refuses to run as root, so under root the cluster belongs to the
``postgres`` user the Debian package creates. Each test gets a database of its own, copied
from a migrated template (:meth:`Cluster.database`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from livesale.db import PostgresDatabase
from livesale.db.base import format_placeholders
from livesale.db.postgres import adapt_params, row_factory

TEMPLATE = "livesale_template"


def binaries() -> Path | None:
    """The newest PostgreSQL server's ``bin`` directory, or ``None`` if none is installed."""
    found = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            try:
                found.append((int(bindir.parent.name), bindir))
            except ValueError:
                continue
    if found:
        return max(found)[1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


class Cluster:
    """One PostgreSQL server on a unix socket in its own temporary directory.

    ``durable=False`` turns fsync off (tests); the benchmark keeps PostgreSQL's defaults.
    """

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="livesale-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql:///{dbname}?host={self.root}&user=postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if result.returncode:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}{log}")

    def start(self) -> Cluster:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = [f"-k {self.root}", "-c listen_addresses=''", "-c max_connections=300"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        )
        self.execute(f"CREATE DATABASE {TEMPLATE}")
        asyncio.run(_migrate(self.url(TEMPLATE)))
        return self

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def database(self) -> str:
        """The URL of a new database, migrated (a copy of the template)."""
        name = f"test_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.split("?", 1)[0].rsplit("/", 1)[1]
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


async def _migrate(url: str) -> None:
    db = await PostgresDatabase.open(url)
    await db.close()


class SyncConnection:
    """A test's own connection to a PostgreSQL database, shaped like :mod:`sqlite3`'s: ``?``
    placeholders, rows by name or position. Each statement commits on its own, so a read
    never holds an old snapshot (``with`` blocks are there for :mod:`sqlite3`'s shape)."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, row_factory=row_factory, autocommit=True)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(format_placeholders(sql), adapt_params(params))

    def executescript(self, sql: str) -> None:
        """Several statements without parameters (as :mod:`sqlite3`'s ``executescript``)."""
        self._conn.execute(sql.encode())

    def commit(self) -> None:
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SyncConnection:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def __del__(self) -> None:
        self._conn.close()


def connect(database: Path | str) -> Any:
    """A test's own connection to ``database`` (an SQLite path or a PostgreSQL URL)."""
    if isinstance(database, Path):
        conn = sqlite3.connect(database)
        conn.row_factory = sqlite3.Row
        return conn
    return SyncConnection(database)
