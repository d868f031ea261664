"""The data directory is its owner's alone: created 0700 with every file 0600 (SQLite and its
WAL, the Redis append-only file and socket, the keys, ``server.json``), and an existing one
left open to others is tightened with a warning."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from livesale.datadir import make_private


def modes(root: Path) -> dict[str, int]:
    """Every entry under ``root`` (itself as ``.``) and its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(root: Path) -> None:
    for name, mode in modes(root).items():
        assert not mode & 0o077, f"{name} is {mode:o}"


def test_a_new_data_directory_is_the_owners_alone(spawn: Any, tmp_path: Path) -> None:
    """Started on a fresh directory, with a umask that would leave files world-readable."""
    data = tmp_path / "data"
    old = os.umask(0o022)
    try:
        server = spawn("--data-dir", str(data))
    finally:
        os.umask(old)
    found = modes(data)
    for name in ("livesale.db", "livesale.db-wal", "server.json", "cli-key", "merchant-key"):
        assert name in found, sorted(found)
    assert "redis/livesale.sock" in found or any(n.endswith(".sock") for n in found)
    assert any(n.startswith("redis/appendonly") for n in found), sorted(found)
    assert found["."] == 0o700
    assert_private(data)
    assert "Merchant API key written to" in server.output()
    assert "lsk_" not in server.output()  # not printed where a log would keep it
    server.stop()
    assert_private(data)


def test_an_open_data_directory_is_tightened_with_a_warning(spawn: Any, tmp_path: Path) -> None:
    """A directory an older version (or a copy) left 0755 with 0644 files is fixed at start."""
    data = tmp_path / "data"
    first = spawn("--data-dir", str(data))
    first.stop()
    for path in [data, *data.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        elif path.is_file():
            path.chmod(0o644)
    second = spawn("--data-dir", str(data), port=first.port)
    assert "was readable by other users" in second.output()
    assert_private(data)
    second.stop()


def test_make_private_keeps_the_owners_own_bits(tmp_path: Path) -> None:
    """Only the group's and others' bits go: an owner-only executable stays executable."""
    root = tmp_path / "d"
    root.mkdir(mode=0o755)
    script = root / "hook"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    private = root / "already"
    private.write_text("x")
    private.chmod(0o600)
    tightened = make_private(root)
    assert set(tightened) == {root, script}
    assert stat.S_IMODE(script.stat().st_mode) == 0o700
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert make_private(root) == []
