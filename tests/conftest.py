"""Real parts for every test: the embedded Redis, SQLite files in ``tmp_path`` (or a database
of a throw-away PostgreSQL cluster), and a real uvicorn server on a pre-bound ``127.0.0.1:0``
socket running in its own thread and event loop.

The suites of the store of record (``tests/orders``, ``tests/catalogue``, ``tests/shows``,
``tests/test_db.py``, ``tests/test_cli_orders.py``) run every test that takes ``settings`` (or
``store``) twice, ``[sqlite]`` and ``[postgres]``; a test marked ``sqlite_only`` runs on SQLite
alone and says why in its docstring."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import redis
import uvicorn

from livesale.app import create_app
from livesale.auth import ApiKeys
from livesale.config import RATE_LIMITS, Settings, in_ci
from livesale.db import open_database
from livesale.embedded_redis import EmbeddedRedis
from livesale.server import uvicorn_config
from tests.localstripe import PUBLISHABLE_KEY as STRIPE_PUBLISHABLE_KEY
from tests.localstripe import SECRET_KEY as STRIPE_SECRET_KEY
from tests.localstripe import WEBHOOK_SECRET as STRIPE_WEBHOOK_SECRET
from tests.localstripe import LocalStripe
from tests.postgres import Cluster, binaries
from tests.redis_cluster import Cluster as RedisCluster
from tests.redis_cluster import binary as cluster_binary

#: The suites that run on both stores of record.
BOTH_STORES = ("orders", "catalogue", "shows", "test_db.py", "test_cli_orders.py")
STORES = ("sqlite", "postgres")

#: Settings for a crowd that all comes from 127.0.0.1: no address cap, no default per-buyer
#: limit, rate limits far above what a test sends.
ONE_ADDRESS: dict[str, Any] = {
    "max_connections_per_address": 1_000_000,
    "address_cap_multiple": 0,
    "default_limit_per_buyer": 0,
    "crowd_per_address": 1_000_000,
    "rate_limits": tuple((action, 1_000_000, 1.0) for action in RATE_LIMITS),
}
#: The same for ``livesale serve`` in a subprocess.
ONE_ADDRESS_ARGS = [
    "--max-connections-per-address",
    "1000000",
    "--address-cap-multiple",
    "0",
    "--default-limit-per-buyer",
    "0",
    "--crowd-per-address",
    "1000000",
    *(arg for action in RATE_LIMITS for arg in ("--rate-limit", f"{action}=1000000/1")),
]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded Redis for the session (each test flushes it before use)."""
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    url = embedded.start()
    yield url
    embedded.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A throw-away 3-master Redis Cluster of Debian's redis-server, for the session."""
    server = cluster_binary()
    if server is None:
        missing("no Redis 7 redis-server at /usr/bin/redis-server (apt-get install redis-server)")
    with RedisCluster(server) as started:
        yield started


def missing(message: str) -> NoReturn:
    """A server a test needs is not installed: skip, except in CI, where it fails
    (scripts/test installs every one)."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def cluster_url(redis_cluster: RedisCluster) -> str:
    """The session's Redis Cluster, emptied for this test (``redis+cluster://``)."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The suites of :data:`BOTH_STORES` run on SQLite and PostgreSQL."""
    if "store" not in metafunc.fixturenames:
        return
    where = Path(metafunc.definition.path).relative_to(Path(__file__).parent).parts
    if where[0] not in BOTH_STORES:
        return
    stores = STORES
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        stores = ("sqlite",)
    if metafunc.definition.get_closest_marker("postgres_only") is not None:
        stores = ("postgres",)
    metafunc.parametrize("store", stores, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """The store of record this test runs on: ``sqlite`` unless its suite runs on both."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throw-away PostgreSQL cluster for the session (each test gets its own database).

    Without PostgreSQL's server binaries the ``[postgres]`` tests skip, except in CI, where
    they fail (scripts/test installs Debian's ``postgresql``)."""
    bindir = binaries()
    if bindir is None:
        missing("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
    cluster = Cluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def database_url(store: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The ``database_url`` setting of this test: empty for SQLite (the file under the data
    directory), a fresh migrated PostgreSQL database otherwise."""
    if store == "sqlite":
        yield ""
        return
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.database()
    yield url
    cluster.drop(url)


def create_key(database: Path | str, label: str = "test") -> str:
    """A merchant API key made directly on the store, like ``livesale keys create``:
    ``database`` is a data directory (its SQLite file) or a database URL."""

    async def make() -> str:
        where = database / "livesale.db" if isinstance(database, Path) else database
        db = await open_database(where)
        try:
            return await ApiKeys(db).create(label)
        finally:
            await db.close()

    return asyncio.run(make())


@dataclass
class LiveServer:
    """A livesale app served by uvicorn in a background thread."""

    settings: Settings
    api_key: str = ""
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    app: Any = None
    errors: list[BaseException] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None
    #: WebSocket keepalive (ping interval and pong timeout, seconds) instead of livesale's own.
    keepalive: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def merchant(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def start(self) -> LiveServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self.settings = replace(self.settings, port=sock.getsockname()[1])
        self.app = create_app(self.settings)
        config = uvicorn_config(self.app, self.settings, "warning")
        if self.keepalive is not None:
            config.ws_ping_interval = config.ws_ping_timeout = self.keepalive
        self.server = uvicorn.Server(config)
        server = self.server

        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:  # surfaced by wait_started / stop
                self.errors.append(exc)
            finally:
                sock.close()

        self.thread = threading.Thread(target=run, name="livesale-test-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if self.errors or not self.thread.is_alive():
                raise RuntimeError(f"server failed to start: {self.errors}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 20 s")
            time.sleep(0.01)
        if not self.api_key:
            self.api_key = create_key(self.settings.database_url or self.settings.data_dir)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(30)
            assert not self.thread.is_alive(), "server did not stop:\n" + self._stacks()
        self.server = None
        if self.errors:
            raise self.errors[0]

    def _stacks(self) -> str:
        """Where the server's thread and every task of its loop are stuck (for a hang)."""
        out = io.StringIO()
        frame = sys._current_frames().get(self.thread.ident or 0) if self.thread else None
        if frame is not None:
            out.write("".join(traceback.format_stack(frame)))
        if self.loop is not None:
            for task in list(asyncio.all_tasks(self.loop)):
                task.print_stack(limit=8, file=out)
        return out.getvalue()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, database_url: str) -> Settings:
    # The test provider is on, as a shop trying livesale out would turn it on; the tests of
    # the payment settings start servers without it. Crowds in tests come from one address
    # (127.0.0.1), so the per-address limits and caps are off here (ONE_ADDRESS): the tests of
    # the limits (tests/test_limits.py, the bot drill) run with the production defaults.
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        database_url=database_url,
        hold_seconds=300,
        payments=("test", "manual"),
        **ONE_ADDRESS,
    )


@pytest.fixture
def keepalive() -> float | None:
    """The server's WebSocket keepalive: livesale's own (``None``) unless a test parametrizes
    it, as one whose client stops reading on purpose must, so that only what it tests cuts
    that client off, however long a busy machine makes it wait."""
    return None


@pytest.fixture
def server(settings: Settings, keepalive: float | None) -> Iterator[LiveServer]:
    """A running livesale server on 127.0.0.1 with a merchant key in ``server.api_key``."""
    live = LiveServer(settings, keepalive=keepalive).start()
    yield live
    live.stop()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def merchant(server: LiveServer, http: httpx.Client) -> httpx.Client:
    """An HTTP client that sends the merchant's API key."""
    http.headers["Authorization"] = f"Bearer {server.api_key}"
    return http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """``livesale serve`` as a subprocess, for lifecycle and crash tests."""

    args: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        handle = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livesale", "serve", "--port", str(self.port), *self.args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        handle.close()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not healthy in {timeout}s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = 15, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start ``livesale serve`` subprocesses; every one still running is killed at the end."""
    started: list[ServerProcess] = []

    def make(*args: str, port: int | None = None, wait: bool = True) -> ServerProcess:
        n = len(started)
        proc = ServerProcess(list(args), port or free_port(), tmp_path / f"server-{n}.log")
        started.append(proc)
        return proc.start(wait=wait)

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    """One localstripe process for the session (each test that uses it starts it empty)."""
    emulator = LocalStripe(tmp_path_factory.mktemp("localstripe") / "store.pickle").start()
    yield emulator
    emulator.stop()


@pytest.fixture
def localstripe(localstripe_server: LocalStripe) -> LocalStripe:
    """The session's localstripe, emptied for this test."""
    localstripe_server.flush()
    return localstripe_server


def stripe_settings(settings: Settings, emulator: LocalStripe, *names: str) -> Settings:
    """``settings`` taking card payments through ``emulator`` (plus ``names``)."""
    return replace(
        settings,
        payments=("stripe", *names),
        stripe_secret_key=STRIPE_SECRET_KEY,
        stripe_publishable_key=STRIPE_PUBLISHABLE_KEY,
        stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        stripe_api_base=emulator.url,
        stripe_js_url=emulator.js_url,
    )
