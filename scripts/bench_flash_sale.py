#!/usr/bin/env python3
"""Flash-sale benchmark: N buyers press "Buy" on one SKU at the same moment.

Starts ``livesale serve`` (one process, the embedded Redis) on a fresh data directory, makes a
live show and N viewers, and one product with S units for each round, so that every round is a
real sale (S holds, the rest sold out) and not a replay against an empty shelf. Client
processes (``--clients``, default 2) then each open a keep-alive connection per buyer beforehand
(the page is open) and, on a common signal, send every buyer's click at once. The script prints
answered clicks per second (all N answers over the time from the first click sent to the last
answer read), p50/p99 latency of the clicks (the percentile of ``_stats.py``, shared by the
benchmarks), the CPU the server process used per click, and the oversell check.

In the same run it measures the baseline, one redis-py client (hiredis when installed) calling
the click's same script (``click``: the show's rules, then the stock, in one call) on the same
Redis: sequentially (one call in flight) and pipelined (batches of 100 clicks, as the
server's batcher sends them). The ratio is against the pipelined rate,
the most one Python client gets out of this Redis.

    python scripts/bench_flash_sale.py --buyers 2000 --stock 500

``--workers 1 2`` runs the whole benchmark once per worker count (``serve --workers N``), one
after the other in the same run, and prints how the best round of each compares with the first
(clicks per second and p99). The server's CPU is then the sum over its worker processes.

With ``--store both`` (the default) the whole run is made twice, on the embedded SQLite and on
PostgreSQL (``--database-url``, or a throw-away cluster of Debian's server binaries with
PostgreSQL's durable defaults), and the best rounds are printed side by side at the end. A buy
click writes nothing to the store of record (holds live in Redis), so the two should be close:
the figure shows that the store never gets in the way of the click.

``--redis cluster`` serves from a throw-away 3-master Redis Cluster of Debian's redis-server
(``--redis-url redis+cluster://``) instead of the embedded Redis, ``--redis both`` from each in
turn, and prints the cluster's best rounds next to the embedded Redis's (the baseline of raw
script calls is measured on the embedded Redis only).

``--nodes 1 3 --redis cluster --store postgres`` runs livesale nodes (a data directory each,
sharing PostgreSQL and the cluster, as on machines of their own) behind nginx with
``deploy/nginx/livesale.conf``, one run per count, and prints the clicks per second and p99
through the balancer next to the first count's. The server CPU is then the nodes' (nginx's own
is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx
import redis.asyncio as aioredis
import uvloop
from _crowd import OPEN_LIMITS, STORES, redis_cluster, stores
from _stats import percentile, summary
from redis.utils import HIREDIS_AVAILABLE

from livesale.embedded_redis import socket_path
from livesale.ids import new_id
from livesale.lua import SOURCES, ScriptCall, calls

RAW_BATCH = 100


class Buyer(asyncio.Protocol):
    """A buyer with the page open: one keep-alive connection, like a browser tab."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answer: asyncio.Future[int] | None = None
        self.sent = 0.0
        self.latency = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def click(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.sent = time.perf_counter()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.answer is None or self.answer.done():
            return
        length = 0
        for line in self.buffer[:head_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) >= head_end + 4 + length:
            self.latency = time.perf_counter() - self.sent
            self.answer.set_result(int(self.buffer.split(b" ", 2)[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("server closed the connection"))


async def client_main(port: int, path: str, tokens: list[str], pipe: Connection) -> None:
    """One client process: connect every buyer, then one burst of clicks per ``go``."""
    loop = asyncio.get_running_loop()
    buyers: list[Buyer] = []
    for start in range(0, len(tokens), 100):
        made = await asyncio.gather(
            *(loop.create_connection(Buyer, "127.0.0.1", port) for _ in tokens[start : start + 100])
        )
        buyers.extend(protocol for _, protocol in made)
    pipe.send("ready")
    while True:
        job = await loop.run_in_executor(None, pipe.recv)
        if job is None:
            break
        round_no, sku = job
        requests = []
        for token in tokens:
            body = json.dumps({"sku": sku, "qty": 1, "idempotency_key": f"r{round_no}"}).encode()
            requests.append(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        pipe.send("armed")
        await loop.run_in_executor(None, pipe.recv)  # go
        first = time.perf_counter()
        answers = [b.click(r) for b, r in zip(buyers, requests, strict=True)]
        statuses = await asyncio.gather(*answers, return_exceptions=True)
        last = time.perf_counter()
        pipe.send(
            (
                first,
                last,
                [s if isinstance(s, int) else 0 for s in statuses],
                [b.latency for b in buyers],
            )
        )
    for b in buyers:
        if b.transport is not None:
            b.transport.close()


def client_process(port: int, path: str, tokens: list[str], pipe: Connection) -> None:
    uvloop.run(client_main(port, path, tokens, pipe))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its living children so far, the workers of
    ``serve --workers`` (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def click_call(show_id: str, sku: str, n: int) -> ScriptCall:
    """The one script call of a buy click the server makes on a single Redis, built by the
    same call builder."""
    return calls.click(
        hold_id=f"{new_id('ho')}.{sku}",
        show_id=show_id,
        viewer_id=f"bench{n}",
        sku=sku,
        qty=1,
        hold_ms=300000,
        idem_key=f"k{n}",
        idem_seconds=86400,
        reap_batch=10,
        index_ms=360000,
    )


async def raw_rates(redis_url: str, show_id: str, sku: str, seconds: float) -> tuple[float, float]:
    """Buy clicks per second of one redis-py client calling the click's script itself:
    ``(sequential, pipelined)``."""
    client = aioredis.Redis.from_url(redis_url)
    sha = await client.script_load(SOURCES["click"])
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        n += 1
        call = click_call(show_id, sku, n)
        await client.evalsha(sha, len(call.keys), *call.keys, *call.args)
    sequential = n / (time.perf_counter() - started)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(RAW_BATCH):
                n += 1
                call = click_call(show_id, sku, n)
                pipe.evalsha(sha, len(call.keys), *call.keys, *call.args)
            results = await pipe.execute()
        assert all(r[:2] == [b"reserve", b"ok"] for r in results), results[0]
        count += RAW_BATCH
    pipelined = count / (time.perf_counter() - started)
    await client.aclose()
    return sequential, pipelined


def redis_usec(redis_url: str) -> float:
    """Redis's average time per ``EVALSHA`` so far (its ``INFO commandstats``)."""

    async def ask() -> float:
        client = aioredis.Redis.from_url(redis_url)
        try:
            stats = await client.info("commandstats")
        finally:
            await client.aclose()
        return float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))

    return uvloop.run(ask())


def viewer_tokens(url: str, count: int) -> list[str]:
    async def make() -> list[str]:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            sem = asyncio.Semaphore(50)

            async def one(n: int) -> str:
                async with sem:
                    r = await client.post("/api/viewers", json={"nickname": f"b{n}"})
                r.raise_for_status()
                return str(r.json()["token"])

            return await asyncio.gather(*(one(n) for n in range(count)))

    return uvloop.run(make())


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        print("server did not stop within 30 s of SIGTERM; killing it", file=sys.stderr)
        server.kill()
        server.wait(10)


def bench(
    args: argparse.Namespace,
    workers: int,
    store: str,
    database_url: str,
    cluster: Any = None,
    nodes: int = 0,
) -> tuple[int, tuple[float, float]]:
    """One whole run against ``serve --workers workers`` on ``store`` (and on ``cluster``, a
    Redis Cluster, else the embedded Redis), or against ``nodes`` such servers behind nginx
    (``deploy/nginx/livesale.conf``, one data directory each): its exit status and its best
    round's (clicks per second, p99 in ms)."""
    data_dir = Path(tempfile.mkdtemp(prefix="livesale-bench-"))
    port = args.port
    log = (data_dir / "server.log").open("wb")
    on_store = ["--database-url", database_url] if database_url else []
    if cluster is not None:
        cluster.flush()
        on_store += ["--redis-url", cluster.url]
    homes = [data_dir] + [data_dir / f"node-{n}" for n in range(1, nodes)]
    ports = [port + 1 + n for n in range(nodes)] if nodes else [port]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "livesale", "serve", "--port", str(at)]
            + ["--workers", str(workers), "--data-dir", str(home), "--log-level", "warning"]
            + [*OPEN_LIMITS, *on_store, *(["--trust-proxy", "127.0.0.1/32"] if nodes else [])],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for home, at in zip(homes, ports, strict=True)
    ]
    clients: list[tuple[mp.Process, Connection]] = []
    proxy = None
    try:
        for at in ports:
            wait_healthy(f"http://127.0.0.1:{at}")
        if nodes:
            proxy = nginx(data_dir / "nginx", [f"127.0.0.1:{at}" for at in ports], port)
        url = f"http://127.0.0.1:{port}"
        api_key = (data_dir / "cli-key").read_text().strip()
        merchant = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )
        # SKUs of this run alone: the runs on PostgreSQL share one database.
        run = f"{store[0]}{workers}".upper()
        skus = [f"FLASH-{run}-{n}" for n in range(1, args.rounds + 1)]
        raw = f"RAW-{run}"
        products = [(sku, f"Flash lipstick {n}", args.stock) for n, sku in enumerate(skus, 1)]
        for product, title, stock in [*products, (raw, "Raw", 10_000_000)]:
            merchant.post(
                "/api/products",
                json={
                    "sku": product,
                    "title": title,
                    "price": {"amount": 1990, "currency": "EUR"},
                    "stock": stock,
                },
            ).raise_for_status()
        show = merchant.post("/api/shows", json={"title": "Bench", "host_name": "Bench"}).json()
        merchant.put(
            f"/api/shows/{show['id']}/lineup", json=[{"sku": s} for s in [*skus, raw]]
        ).raise_for_status()
        merchant.post(f"/api/shows/{show['id']}/start").raise_for_status()

        tokens = viewer_tokens(url, args.buyers)
        path = f"/api/shows/{show['id']}/holds"
        spawn = mp.get_context("spawn")
        for i in range(args.clients):
            ours, theirs = spawn.Pipe()
            share = tokens[i :: args.clients]
            process = spawn.Process(
                target=client_process, args=(port, path, share, theirs), daemon=True
            )
            process.start()
            clients.append((process, ours))
        for _, pipe in clients:
            assert pipe.recv() == "ready"
        processes = "one server process" if workers == 1 else f"{workers} server workers"
        if nodes:
            processes = f"{nodes} node(s) of {processes} behind nginx"
        print(
            f"buyers={args.buyers} stock={args.stock} clients={args.clients} "
            f"({processes}, {'a 3-master Redis Cluster' if cluster else 'embedded Redis'}, "
            f"store {store}; hiredis={HIREDIS_AVAILABLE})"
        )
        print(f"load average before: {load_average()}")
        rates: list[float] = []
        p99s: list[float] = []
        for round_no, sku in enumerate(skus, 1):
            for _, pipe in clients:
                pipe.send((round_no, sku))
            for _, pipe in clients:
                assert pipe.recv() == "armed"
            cpu_before = sum(cpu_seconds(s.pid) for s in servers)
            for _, pipe in clients:
                pipe.send("go")
            results = [pipe.recv() for _, pipe in clients]
            cpu = sum(cpu_seconds(s.pid) for s in servers) - cpu_before
            wall = max(r[1] for r in results) - min(r[0] for r in results)
            latencies = [x for r in results for x in r[3]]
            statuses: dict[int, int] = {}
            for r in results:
                for s in r[2]:
                    statuses[s] = statuses.get(s, 0) + 1
            answered = sum(n for s, n in statuses.items() if s)
            rate = answered / wall
            rates.append(rate)
            p99s.append(percentile(latencies, 99) * 1000)
            print(
                f"round {round_no}: {rate:,.0f} answered clicks/s  wall {wall:.2f}s  "
                f"{summary(latencies, scale=1000, digits=0)}  "
                f"server CPU {cpu / max(answered, 1) * 1e6:.0f} us/click  statuses {statuses}"
            )
        for _, pipe in clients:
            pipe.send(None)
        for process, _ in clients:
            process.join(10)
        oversold = 0
        invariant = True
        for sku in skus:
            level = merchant.get(f"/api/stock/{sku}").json()
            oversold += max(0, level["held"] + level["sold"] - args.stock)
            invariant = invariant and (
                level["available"] + level["held"] + level["sold"] == level["on_hand"]
            )
            print(f"stock after: {level}")
        print(
            f"oversold units: {oversold}  invariant available + held + sold = on_hand: {invariant}"
        )
        top = max(rates)
        if cluster is not None or nodes:
            merchant.close()
            return (0 if oversold == 0 and invariant else 1), (top, p99s[rates.index(top)])
        redis_url = f"unix://{socket_path(data_dir)}"
        print(f"Redis's own time per script call in the rounds: {redis_usec(redis_url):.0f} us")
        sequential, pipelined = uvloop.run(raw_rates(redis_url, show["id"], raw, args.raw_seconds))
        print(
            f"baseline, the click's script, one redis-py client: "
            f"sequential {sequential:,.0f} clicks/s, pipelined ({RAW_BATCH} a batch) "
            f"{pipelined:,.0f} clicks/s"
        )
        print(f"ratio server/raw pipelined: {top / pipelined:.2f} (best round {top:,.0f} clicks/s)")
        print(f"load average after: {load_average()}")
        merchant.close()
        return (0 if oversold == 0 and invariant else 1), (top, p99s[rates.index(top)])
    finally:
        for process, _ in clients:
            if process.is_alive():
                process.kill()
        if proxy is not None:
            proxy.stop()
        for server in servers:
            stop(server)
        log.close()
        codes = [server.returncode for server in servers]
        if not any(codes):
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"server exited with {codes}; its log: {data_dir / 'server.log'}")


def wait_healthy(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def nginx(prefix: Path, upstreams: list[str], port: int) -> Any:
    """nginx in front of ``upstreams`` on ``port``, as the tests run it (``tests/nginx.py``)."""
    from tests.nginx import Nginx, nginx_path

    proxy = Nginx(nginx_path(), prefix, upstreams)
    return proxy.start(port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=2000)
    parser.add_argument("--stock", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--raw-seconds", type=float, default=2.0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="server workers, one run each"
    )
    parser.add_argument("--store", choices=STORES, default="both", help="store of record")
    parser.add_argument(
        "--database-url", default="", help="a PostgreSQL database (default: throw-away)"
    )
    parser.add_argument(
        "--nodes",
        type=int,
        nargs="+",
        default=[],
        help="livesale nodes behind nginx, one run each (a data directory each; needs"
        " --redis cluster and --store postgres)",
    )
    parser.add_argument(
        "--redis",
        choices=("embedded", "cluster", "both"),
        default="embedded",
        help="the embedded Redis, a throw-away 3-master Redis Cluster of Debian's redis-server"
        " (--redis-url redis+cluster://), or each in turn",
    )
    args = parser.parse_args()
    if args.nodes and (args.redis != "cluster" or args.store != "postgres"):
        parser.error("--nodes shares one store and one Redis: --redis cluster --store postgres")
    status = 0
    best: dict[tuple[str, str, int], tuple[float, float]] = {}
    balanced: dict[tuple[int, int], tuple[float, float]] = {}
    kinds = ("embedded", "cluster") if args.redis == "both" else (args.redis,)
    with stores(args.store, args.database_url) as chosen, redis_cluster(kinds) as cluster:
        for kind in kinds:
            for name, database_url in chosen:
                for workers in args.workers:
                    on = cluster if kind == "cluster" else None
                    for nodes in args.nodes:
                        print(f"--- {nodes} node(s) behind nginx, workers: {workers}")
                        code, balanced[nodes, workers] = bench(
                            args, workers, name, database_url, on, nodes
                        )
                        status = status or code
                        print()
                    if args.nodes:
                        continue
                    print(f"--- redis: {kind}, store: {name}, workers: {workers}")
                    code, best[kind, name, workers] = bench(args, workers, name, database_url, on)
                    status = status or code
                    print()
    first = args.workers[0]
    for (nodes, workers), (rate, p99) in balanced.items():
        one, one_p99 = balanced[args.nodes[0], workers]
        print(
            f"best round, {nodes} node(s) of {workers} worker(s) behind nginx: {rate:,.0f}"
            f" clicks/s, p99 {p99:.0f} ms; {rate / one:.2f}x {args.nodes[0]} node(s)"
            f" (p99 {one_p99:.0f} ms)"
        )
    for (kind, name, workers), (rate, p99) in best.items():
        line = (
            f"best round, redis {kind}, store {name}, workers {workers}: {rate:,.0f} clicks/s,"
            f" p99 {p99:.0f} ms"
        )
        base_rate, base_p99 = best[kind, name, first]
        if workers != first:
            line += (
                f"; {rate / base_rate:.2f}x the clicks/s of workers {first}"
                f" (p99 {p99:.0f} ms against {base_p99:.0f} ms)"
            )
        if kind == "cluster" and ("embedded", name, workers) in best:
            one, one_p99 = best["embedded", name, workers]
            line += f"; {rate / one:.2f}x the embedded Redis's (p99 {one_p99:.0f} ms)"
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
