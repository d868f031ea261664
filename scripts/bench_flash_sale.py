#!/usr/bin/env python3
"""Flash-sale benchmark: N buyers press "Buy" on one SKU at the same moment.

Starts ``livesale serve`` (one process, the embedded Redis) on a fresh data directory, makes a
product with S units, a live show and N viewers, then sends N concurrent buy clicks — each
buyer on its own keep-alive connection opened beforehand (the page is open) — and prints
answered clicks per second, p50/p99 latency and the oversell check. In the same run it
measures the baseline: the raw reserve-script rate of one redis-py client calling the same
script on the same Redis, and prints the ratio.

    python scripts/bench_flash_sale.py --buyers 2000 --stock 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import uvloop

from livesale import keys
from livesale.embedded_redis import socket_path
from livesale.ids import new_id


async def call(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, float]:
    """One request on its own connection: ``(status, body, seconds)``."""
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Connection: close",
        f"Content-Length: {len(payload)}",
        "Content-Type: application/json",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        data = await reader.read()
    finally:
        writer.close()
    elapsed = time.perf_counter() - started
    head, _, content = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), content, elapsed


class Buyer:
    """A buyer with the page open: one keep-alive connection, like a browser tab."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = f"Bearer {token}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def click(self, path: str, body: Any) -> tuple[int, float]:
        assert self.reader is not None and self.writer is not None
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: {self.auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        self.writer.write(head + payload)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split(b" ", 2)[1]), time.perf_counter() - started

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def raw_rate(redis_url: str, show_id: str, sku: str, seconds: float) -> float:
    """Reserve-script calls per second of one redis-py client (50 calls in flight)."""
    client = aioredis.Redis.from_url(redis_url)
    lua = Path(__file__).resolve().parent.parent / "livesale/orders/lua/reserve.lua"
    source = lua.read_text()
    sha = await client.script_load(source)
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < deadline:
            viewer = f"bench{n}"
            i += 1
            await client.evalsha(
                sha,
                11,
                keys.stock(sku),
                keys.holds(sku),
                keys.hold_expiry(sku),
                keys.holds_done(sku),
                keys.buyers(sku),
                keys.show(show_id),
                keys.lineup(show_id),
                keys.idempotency(show_id, viewer, f"k{i}"),
                keys.STOCK_READY,
                keys.show_channel(show_id),
                keys.HOLD_SKUS,
                f"{new_id('ho')}.{sku}",
                show_id,
                viewer,
                sku,
                1,
                300000,
                f"k{i}",
                86400,
                10,
            )
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(50)))
    rate = count / (time.perf_counter() - started)
    await client.aclose()
    return rate


async def bench(args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="livesale-bench-"))
    port = args.port
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livesale",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        api_key = (data_dir / "cli-key").read_text().strip()
        merchant = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )
        sku = "FLASH-1"
        merchant.post(
            "/api/products",
            json={
                "sku": sku,
                "title": "Flash lipstick",
                "price": {"amount": 1990, "currency": "EUR"},
                "stock": args.stock,
            },
        ).raise_for_status()
        merchant.post(
            "/api/products",
            json={
                "sku": "RAW-1",
                "title": "Baseline",
                "price": {"amount": 100, "currency": "EUR"},
                "stock": 10_000_000,
            },
        ).raise_for_status()
        show = merchant.post("/api/shows", json={"title": "Bench", "host_name": "Bench"}).json()
        merchant.put(
            f"/api/shows/{show['id']}/lineup", json=[{"sku": sku}, {"sku": "RAW-1"}]
        ).raise_for_status()
        merchant.post(f"/api/shows/{show['id']}/start").raise_for_status()

        sem = asyncio.Semaphore(200)

        async def viewer(n: int) -> str:
            async with sem:
                status, body, _ = await call(port, "POST", "/api/viewers", {"nickname": f"b{n}"})
            assert status == 201, body
            return str(json.loads(body)["token"])

        tokens = await asyncio.gather(*(viewer(n) for n in range(args.buyers)))
        buyers = [Buyer(port, t) for t in tokens]
        for start in range(0, len(buyers), 200):
            await asyncio.gather(*(b.connect() for b in buyers[start : start + 200]))
        path = f"/api/shows/{show['id']}/holds"
        print(f"buyers={args.buyers} stock={args.stock} (one server process, embedded Redis)")
        rates: list[float] = []
        for round_no in range(1, args.rounds + 1):
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    b.click(path, {"sku": sku, "qty": 1, "idempotency_key": f"r{round_no}"})
                    for b in buyers
                )
            )
            wall = time.perf_counter() - started
            latencies = [a[1] for a in answers]
            statuses: dict[int, int] = {}
            for a in answers:
                statuses[a[0]] = statuses.get(a[0], 0) + 1
            rate = len(answers) / wall
            rates.append(rate)
            print(
                f"round {round_no}: {rate:,.0f} answered clicks/s  wall {wall:.2f}s  "
                f"p50 {statistics.median(latencies) * 1000:.0f} ms  "
                f"p99 {percentile(latencies, 99) * 1000:.0f} ms  statuses {statuses}"
            )
        level = merchant.get(f"/api/stock/{sku}").json()
        holds = level["held"] + level["sold"]
        oversold = max(0, holds - args.stock)
        invariant = level["available"] + level["held"] + level["sold"] == level["on_hand"]
        print(f"stock after: {level}  oversold units: {oversold}  invariant: {invariant}")
        redis_url = f"unix://{socket_path(data_dir)}"
        raw = await raw_rate(redis_url, show["id"], "RAW-1", args.raw_seconds)
        best = max(rates)
        print(f"baseline: raw reserve script, one redis-py client: {raw:,.0f} calls/s")
        print(f"ratio server/raw: {best / raw:.2f} (best round {best:,.0f} clicks/s)")
        merchant.close()
        for b in buyers:
            b.close()
        return 0 if oversold == 0 and invariant else 1
    finally:
        server.terminate()
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=2000)
    parser.add_argument("--stock", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    return uvloop.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
