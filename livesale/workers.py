"""``livesale serve --workers N``: N server processes on one port, kept running.

The supervisor (the process the operator started) does what must happen once: the embedded
Redis, the migrations, the first keys and the demo. It then holds the port with a socket of
its own (bound with SO_REUSEPORT, never listening: another program cannot take the port, and a
port of 0 is chosen once for all) and starts the workers. Each worker binds the same port with
SO_REUSEPORT, so the kernel spreads new connections over them, plus its own unix socket
(``DATA_DIR/run/worker-N.sock``) on which the other workers forward it the WHIP and WHEP
requests of the shows whose publisher it holds (:mod:`livesale.media.origin`). Room sockets,
holds and checkout work on any worker: their state is in Redis and the data store.

A worker that dies is started again (its WebRTC viewers and room sockets reconnect by
themselves); one that keeps dying at once makes the supervisor stop with an error rather than
loop. Ctrl-C or SIGTERM stops every worker gracefully, then the embedded Redis. Workers run in
their own process group, so a terminal's Ctrl-C reaches the supervisor alone, which then
stops them in order; and each asks the kernel to end it if the supervisor dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path

from rich.console import Console

from livesale import datadir
from livesale.config import Settings
from livesale.errors import ConfigError

log = logging.getLogger("livesale")

#: A worker that dies within this many seconds of its start counts as failing at once.
QUICK_DEATH_SECONDS = 10.0
#: After this many quick deaths in a row of one worker, the supervisor gives up.
MAX_QUICK_DEATHS = 5
#: How long stopping workers get before they are killed.
STOP_SECONDS = 20.0
#: Connections waiting to be accepted, per worker.
BACKLOG = 2048
#: Marks a request one worker sends another (forwarded signalling, a metrics scrape): the
#: run's secret, which no client knows.
WORKER_HEADER = "x-livesale-worker"
#: prctl(2)'s PR_SET_PDEATHSIG.
_PR_SET_PDEATHSIG = 1


def count(text: str) -> int:
    """``--workers``: a number from 1, or ``auto`` for one per core this process may use."""
    if text.strip().lower() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    number = int(text)
    if not 1 <= number <= 256:
        raise ValueError("from 1 to 256, or auto")
    return number


def _listener(family: socket.AddressFamily, address: str | tuple[str, int]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def hold_port(settings: Settings) -> tuple[socket.socket, Settings]:
    """The supervisor's socket on the port (never listening), and the settings with the
    port it got when asked for port 0."""
    try:
        guard = _listener(_family(settings.host), (settings.host, settings.port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
    port = guard.getsockname()[1]
    return guard, replace(settings, port=port)


def worker_sockets(settings: Settings) -> list[socket.socket]:
    """A worker's listening sockets: the shared port, and its own unix socket."""
    public = _listener(_family(settings.host), (settings.host, settings.port))
    own: Path = settings.worker_socket(settings.worker)
    with contextlib.suppress(FileNotFoundError):
        own.unlink()
    private = _listener(socket.AF_UNIX, str(own))
    os.chmod(own, datadir.PRIVATE_FILE)
    for sock in (public, private):
        sock.listen(BACKLOG)
        sock.setblocking(False)
    return [public, private]


def _die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when the supervisor goes (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def become_worker(settings: Settings, log_level: str) -> list[socket.socket]:
    """In a worker process, before it serves: its own process group (a terminal's Ctrl-C is the
    supervisor's to handle), its end with the supervisor's, its umask, its log lines marked
    ``[wN]``, and its listening sockets."""
    os.setpgid(0, 0)
    _die_with_parent()
    os.umask(datadir.PRIVATE_UMASK)
    logging.basicConfig(
        level=log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s[w{settings.worker}]: %(message)s",
    )
    return worker_sockets(settings)


class Supervisor:
    """Starts the workers, starts again the ones that die, and stops them all."""

    def __init__(
        self, settings: Settings, log_level: str, target: Callable[[Settings, str], None]
    ) -> None:
        self.settings = settings
        self.log_level = log_level
        #: What a worker process runs (``livesale.server.worker_main``; importable by name,
        #: as the processes are spawned).
        self.target = target
        self._context = multiprocessing.get_context("spawn")
        self.workers: dict[int, BaseProcess] = {}
        self._started: dict[int, float] = {}
        self._quick_deaths: dict[int, int] = {}

    def start(self, index: int) -> None:
        process = self._context.Process(
            target=self.target,
            args=(replace(self.settings, worker=index), self.log_level),
            name=f"livesale-worker-{index}",
        )
        process.start()
        self.workers[index] = process
        self._started[index] = time.monotonic()

    def start_all(self) -> None:
        for index in range(self.settings.workers):
            self.start(index)

    def check(self) -> None:
        """Start again every worker that died; :class:`ConfigError` when one keeps dying."""
        for index, process in list(self.workers.items()):
            if process.exitcode is None:
                continue
            lived = time.monotonic() - self._started[index]
            quick = self._quick_deaths.get(index, 0) + 1 if lived < QUICK_DEATH_SECONDS else 0
            self._quick_deaths[index] = quick
            if quick >= MAX_QUICK_DEATHS:
                raise ConfigError(
                    f"worker {index} keeps stopping at once (exit code {process.exitcode});"
                    " see its log above"
                )
            log.error(
                "worker %d (pid %s) stopped with exit code %s after %.0f s: starting it again",
                index,
                process.pid,
                process.exitcode,
                lived,
            )
            self.start(index)

    def stop(self) -> None:
        """SIGTERM to every worker, then SIGKILL to any still there after STOP_SECONDS."""
        for process in self.workers.values():
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.error(
                    "worker pid %s did not stop in %.0f s: killing it", process.pid, STOP_SECONDS
                )
                process.kill()
                process.join(5)


def supervise(
    settings: Settings,
    log_level: str,
    console: Console,
    *,
    prepare: Callable[[Settings], None],
    marker: Callable[[Settings], AbstractContextManager[None]],
    target: Callable[[Settings, str], None],
) -> None:
    """Run ``settings.workers`` workers (each running ``target``) until Ctrl-C or SIGTERM,
    once ``prepare`` has done the one-time work; the Redis is running, and ``marker`` says
    the server runs."""
    guard, settings = hold_port(settings)
    settings = replace(settings, worker_secret=secrets.token_urlsafe(32))
    settings.run_dir.mkdir(mode=datadir.PRIVATE_DIR, exist_ok=True)
    supervisor = Supervisor(settings, log_level, target)
    try:
        prepare(settings)
        with marker(settings):
            supervisor.start_all()
            console.print(
                f"livesale is serving on [bold]{settings.base_url}[/] with"
                f" {settings.workers} workers  (Ctrl-C to stop)"
            )
            while True:
                time.sleep(0.5)
                supervisor.check()
    finally:
        supervisor.stop()
        guard.close()
