"""The data directory holds the shop's secrets (the token-signing secret, the webhook secret, the
CLI's key) and its buyers' names and addresses (SQLite and its WAL, the Redis append-only file):
readable by its owner only.

:func:`make_private` creates it ``0700`` and tightens whatever an older version or a careless
``cp`` left open to the group or the world: their bits go, the owner's stay (``0755`` becomes
``0700``, ``0644`` becomes ``0600``). :data:`PRIVATE_UMASK` makes everything created later the
same (SQLite gives its WAL and shared-memory files the database's own mode; Redis creates its
files under the umask it inherits).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: The umask of ``livesale serve`` and of the embedded Redis: no bit for group or others.
PRIVATE_UMASK = 0o077


def make_private(path: Path) -> list[Path]:
    """Create ``path`` (``0700``) or tighten it and everything in it that the group or others
    may read, write or enter. Returns what was tightened, so the caller can warn."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    tightened: list[Path] = []
    for entry in [path, *_walk(path)]:
        try:
            info = entry.lstat()
        except FileNotFoundError:
            continue  # gone meanwhile (a WAL checkpointed away)
        if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
            continue
        if info.st_uid != os.getuid():
            continue  # not ours to change; the owner's own mode stands
        os.chmod(entry, stat.S_IMODE(info.st_mode) & ~PRIVATE_UMASK)
        tightened.append(entry)
    return tightened


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, whatever the umask, replacing
    the file (and its mode) if it exists."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _walk(path: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(path):
        found.extend(Path(root, name) for name in (*dirs, *files))
    return found
