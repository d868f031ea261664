"""What the benchmarks and drills share about crowds: they run every "buyer" from one machine,
so a server measuring them turns the per-address limits off (the drill's baseline does too);
and a crowd that each holds a unit of a live show, ready to check out."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from livesale.client import CLI_KEY_FILE
from livesale.config import RATE_LIMITS

#: ``livesale serve`` options with no per-address caps and rate limits no crowd here reaches.
OPEN_LIMITS = [
    "--address-cap-multiple",
    "0",
    "--default-limit-per-buyer",
    "0",
    "--max-connections-per-address",
    "1000000",
    "--crowd-per-address",
    "1000000",
]
for _action in RATE_LIMITS:
    OPEN_LIMITS += ["--rate-limit", f"{_action}=1000000/1"]


def serve(data: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """``livesale serve`` on a free loopback port with ``options``; the process and its URL,
    once it answers ``/healthz``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "livesale", "serve", "--port", str(port), "--data-dir", str(data)]
        + ["--log-level", "warning", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.1)


#: ``--store`` of the benchmarks that measure the store of record.
STORES = ("sqlite", "postgres", "both")


def _tests_importable() -> None:
    """The throw-away servers of the tests (``tests/``) are the benchmarks' too."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


@contextlib.contextmanager
def redis_cluster(kinds: tuple[str, ...]) -> Iterator[Any]:
    """A throw-away 3-master Redis Cluster of Debian's redis-server (``tests/redis_cluster.py``)
    if ``kinds`` has ``cluster``, else ``None``; stopped at the end."""
    if "cluster" not in kinds:
        yield None
        return
    _tests_importable()
    from tests.redis_cluster import Cluster, binary

    server = binary()
    if server is None:
        raise SystemExit("no Redis 7 redis-server (apt-get install redis-server)")
    with Cluster(server) as started:
        yield started


@contextlib.contextmanager
def stores(choice: str, database_url: str = "") -> Iterator[list[tuple[str, str]]]:
    """The stores a benchmark runs on, as ``(name, --database-url)``: SQLite (an empty URL,
    the data directory's file) and/or PostgreSQL, ``database_url`` or else a database of a
    throw-away cluster with PostgreSQL's own durable defaults (fsync on), stopped at the end."""
    wanted = ("sqlite", "postgres") if choice == "both" else (choice,)
    if "postgres" not in wanted or database_url:
        yield [(name, database_url if name == "postgres" else "") for name in wanted]
        return
    _tests_importable()
    from tests.postgres import Cluster, binaries

    bindir = binaries()
    if bindir is None:
        raise SystemExit("PostgreSQL's server binaries are missing (apt-get install postgresql)")
    cluster = Cluster(bindir, durable=True).start()
    try:
        yield [(name, cluster.database() if name == "postgres" else "") for name in wanted]
    finally:
        cluster.stop()


@contextlib.contextmanager
def serving(*options: str) -> Iterator[tuple[str, str, Path]]:
    """:func:`serve` on a fresh data directory with :data:`OPEN_LIMITS`: its URL, the merchant
    key it made, and the data directory; the server is stopped at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc, url = serve(data, *options, *OPEN_LIMITS)
        try:
            yield url, (data / CLI_KEY_FILE).read_text().strip(), data
        finally:
            proc.terminate()
            proc.wait(30)


async def holds(client: httpx.AsyncClient, key: str, sku: str, buyers: int) -> list[Any]:
    """A live show, ``buyers`` viewers, and one held unit of ``sku`` for each."""
    merchant = {"Authorization": f"Bearer {key}"}
    product = {"sku": sku, "title": sku, "price": {"amount": 1990, "currency": "EUR"}}
    made = await client.post("/api/products", json={**product, "stock": buyers}, headers=merchant)
    made.raise_for_status()
    show = (
        await client.post("/api/shows", json={"title": sku, "host_name": "B"}, headers=merchant)
    ).json()["id"]
    await client.put(f"/api/shows/{show}/lineup", json=[{"sku": sku}], headers=merchant)
    await client.post(f"/api/shows/{show}/start", headers=merchant)
    out = []
    for i in range(buyers):
        token = (await client.post("/api/viewers", json={"nickname": f"b{i}"})).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        hold = await client.post(
            f"/api/shows/{show}/holds",
            json={"sku": sku, "qty": 1, "idempotency_key": "k"},
            headers=auth,
        )
        out.append((hold.json()["hold_id"], auth))
    return out
