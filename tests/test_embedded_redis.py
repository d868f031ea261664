"""The embedded Redis: started, stopped, replaced when stale, never duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from livesale.embedded_redis import EmbeddedRedis, redis_binary, socket_path
from livesale.errors import ConfigError


def redis_pids(sock: Path) -> list[int]:
    """Every running redis-server listening on ``sock``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"redis-server" in cmdline and str(sock).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if b"redis-server" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


def test_start_and_stop(tmp_path: Path) -> None:
    """It answers on a unix socket with AOF everysec, and stop() ends the process."""
    embedded = EmbeddedRedis(tmp_path)
    url = embedded.start()
    try:
        client = redis.Redis.from_url(url)
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.set("k", "v")
        client.close()
        (pid,) = redis_pids(embedded.socket)
    finally:
        embedded.stop()
    assert wait_gone(pid)
    assert redis_pids(embedded.socket) == []


def test_data_survives_restart(tmp_path: Path) -> None:
    """What was written before a stop is there after the next start (append-only file)."""
    first = EmbeddedRedis(tmp_path)
    client = redis.Redis.from_url(first.start())
    client.set("survives", "yes")
    client.close()
    first.stop()
    second = EmbeddedRedis(tmp_path)
    client = redis.Redis.from_url(second.start())
    try:
        assert client.get("survives") == b"yes"
    finally:
        client.close()
        second.stop()


def test_second_launcher_on_same_data_dir_is_refused(tmp_path: Path) -> None:
    """A second embedded Redis on a data directory in use is refused with a clear message."""
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        with pytest.raises(ConfigError, match="already running on data directory"):
            EmbeddedRedis(tmp_path).start()
        assert len(redis_pids(first.socket)) == 1
    finally:
        first.stop()


def test_stale_redis_is_replaced_not_duplicated(tmp_path: Path) -> None:
    """A redis-server left by a killed run is stopped and replaced by exactly one new one."""
    probe = EmbeddedRedis(tmp_path)
    probe.redis_dir.mkdir(parents=True)
    # A survivor of a killed run: same socket and pidfile, no livesale process holding the lock.
    orphan = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(probe.socket),
            "--pidfile",
            str(probe.pidfile.resolve()),
            "--dir",
            str(probe.redis_dir.resolve()),
            "--daemonize",
            "no",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not (probe.pidfile.exists() and probe.socket.exists()):
            assert time.monotonic() < deadline, "orphan redis did not start"
            time.sleep(0.02)
        embedded = EmbeddedRedis(tmp_path)
        embedded.start()
        try:
            orphan.wait(10)
            pids = redis_pids(embedded.socket)
            assert orphan.pid not in pids
            assert len(pids) == 1
            assert redis.Redis.from_url(embedded.url).ping()
        finally:
            embedded.stop()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_dead_socket_file_is_cleared(tmp_path: Path) -> None:
    """A socket file with nothing behind it (a crash) does not stop the next start."""
    probe = EmbeddedRedis(tmp_path)
    probe.socket.parent.mkdir(parents=True, exist_ok=True)
    probe.socket.write_text("")
    embedded = EmbeddedRedis(tmp_path)
    try:
        assert redis.Redis.from_url(embedded.start()).ping()
    finally:
        embedded.stop()


def test_deep_data_dir_gets_a_short_socket(tmp_path: Path) -> None:
    """A data directory too deep for a unix socket path still works."""
    deep = tmp_path.joinpath(*["d" * 30] * 4)
    assert len(str(deep / "redis.sock")) > 108
    assert len(str(socket_path(deep))) <= 100
    embedded = EmbeddedRedis(deep)
    try:
        assert redis.Redis.from_url(embedded.start()).ping()
    finally:
        embedded.stop()


def test_serve_stops_redis_on_sigterm(spawn: Any, tmp_path: Path) -> None:
    """`livesale serve` stops its embedded Redis when it gets SIGTERM."""
    data = tmp_path / "data"
    server = spawn("--data-dir", str(data))
    sock = socket_path(data)
    (pid,) = redis_pids(sock)
    assert server.stop(signal.SIGTERM) == 0
    assert wait_gone(pid)
    assert not (data / "server.json").exists()


def test_serve_stops_redis_on_ctrl_c(spawn: Any, tmp_path: Path) -> None:
    """`livesale serve` stops its embedded Redis on Ctrl-C (SIGINT)."""
    data = tmp_path / "data"
    server = spawn("--data-dir", str(data))
    (pid,) = redis_pids(socket_path(data))
    assert server.stop(signal.SIGINT) in (0, 130)
    assert wait_gone(pid)


def test_killed_serve_takes_redis_down_and_restarts(spawn: Any, tmp_path: Path) -> None:
    """After `kill -9` of the server, a restart on the same data directory runs one Redis."""
    data = tmp_path / "data"
    first = spawn("--data-dir", str(data))
    (old,) = redis_pids(socket_path(data))
    first.stop(signal.SIGKILL)
    second = spawn("--data-dir", str(data))
    assert wait_gone(old)
    assert len(redis_pids(socket_path(data))) == 1
    assert second.stop() == 0


def test_second_server_on_same_data_dir_is_refused(spawn: Any, tmp_path: Path) -> None:
    """A second `livesale serve` on the same data directory exits with one clear line."""
    data = tmp_path / "data"
    spawn("--data-dir", str(data))
    second = spawn("--data-dir", str(data), wait=False)
    assert second.proc.wait(30) == 1
    output = second.output()
    assert "already running on data directory" in output
    assert "Traceback" not in output
    assert len(redis_pids(socket_path(data))) == 1


def test_unreachable_redis_is_one_line(spawn: Any, tmp_path: Path) -> None:
    """With a --redis-url nobody answers on, the server exits 1 with a one-line error."""
    server = spawn(
        "--data-dir", str(tmp_path / "data"), "--redis-url", "redis://127.0.0.1:1/0", wait=False
    )
    assert server.proc.wait(30) == 1
    lines = [ln for ln in server.output().splitlines() if ln.strip()]
    assert lines == [lines[-1]] and "cannot reach Redis" in lines[-1], lines
