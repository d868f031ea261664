#!/usr/bin/env python3
"""Memory soak: Redis's memory through 100,000 hold/release cycles.

Starts ``livesale serve`` (one process, the embedded Redis) on a fresh data directory with
finished holds kept ``--keep`` seconds (``--keep-finished-seconds``; holds of 5 s, since a
click's idempotency record lives as long as its hold may), makes a live show selling
one SKU and ``--buyers`` viewers, and has each buyer hold one unit and release it again, over
and over, each click with its own idempotency key, until ``--cycles`` cycles are done. It
prints Redis's ``used_memory`` before the first cycle (the same-run baseline), every tenth of
the run, and once more after the sweeper has forgotten the last finished holds: the figure
stays flat once the first ``--keep`` seconds have filled the window of finished holds.

It also prints what one finished cycle costs (the hold and its click's record) and what keeping
them 24 h, as before, would have cost at the same pace.

    python scripts/bench_memory.py --cycles 100000 --buyers 32 --keep 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import redis.asyncio as aioredis
import uvloop
from _crowd import serving

from livesale import keys
from livesale.embedded_redis import socket_path

SKU = "CHURN"


def mib(n: float) -> str:
    return f"{n / (1024 * 1024):7.2f} MiB"


async def buyers(url: str, key: str, n: int) -> tuple[str, list[str]]:
    """A live show selling :data:`SKU` (one unit per buyer) and ``n`` viewer tokens."""
    merchant = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=merchant) as client:
        product = {"sku": SKU, "title": "Churn", "price": {"amount": 990, "currency": "EUR"}}
        (await client.post("/api/products", json={**product, "stock": n})).raise_for_status()
        show = (await client.post("/api/shows", json={"title": "Soak", "host_name": "S"})).json()
        await client.put(f"/api/shows/{show['id']}/lineup", json=[{"sku": SKU}])
        (await client.post(f"/api/shows/{show['id']}/start")).raise_for_status()
        tokens = [
            (await client.post("/api/viewers", json={"nickname": f"b{i}"})).json()["token"]
            for i in range(n)
        ]
    return show["id"], tokens


class Soak:
    """Shares the cycle count between the buyers and prints the memory every tenth."""

    def __init__(self, redis: aioredis.Redis, cycles: int) -> None:
        self.redis = redis
        self.cycles = cycles
        self.started = 0
        self.done = 0
        self.began = time.perf_counter()
        self.ended: float | None = None
        self.next_report = cycles // 10
        self.samples: list[int] = []

    async def used(self) -> int:
        return int((await self.redis.info("memory"))["used_memory"])

    async def report(self, label: str) -> int:
        used = await self.used()
        kept = await self.redis.hlen(keys.holds(SKU))
        elapsed = (self.ended or time.perf_counter()) - self.began
        rate = self.done / elapsed if elapsed else 0.0
        print(
            f"{label:>14}: {mib(used)}  holds kept {kept:6d}  keys {await self.redis.dbsize():5d}"
            f"  ({self.done} cycles, {rate:6.0f}/s)"
        )
        return used

    async def buyer(self, url: str, show: str, token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=auth) as client:
            while self.started < self.cycles:
                n = self.started = self.started + 1
                made = await client.post(
                    f"/api/shows/{show}/holds",
                    json={"sku": SKU, "qty": 1, "idempotency_key": f"c{n}"},
                )
                if made.status_code != 201:
                    raise SystemExit(f"hold failed: {made.status_code} {made.text}")
                gone = await client.delete(f"/api/holds/{made.json()['hold_id']}")
                if gone.status_code != 200:
                    raise SystemExit(f"release failed: {gone.status_code} {gone.text}")
                self.done += 1
                if self.done >= self.next_report:
                    self.next_report += self.cycles // 10
                    self.samples.append(await self.report(f"{self.done} cycles"))


async def run(url: str, key: str, data: Path, cycles: int, n: int, keep: int) -> None:
    redis = aioredis.Redis(unix_socket_path=str(socket_path(data)))
    try:
        show, tokens = await buyers(url, key, n)
        soak = Soak(redis, cycles)
        await asyncio.sleep(1)
        baseline = await soak.report("baseline")
        soak.began = time.perf_counter()
        await asyncio.gather(*(soak.buyer(url, show, t) for t in tokens))
        soak.ended = time.perf_counter()
        wall = soak.ended - soak.began
        peak = await soak.report("last cycle")
        kept = await redis.hlen(keys.holds(SKU))
        await asyncio.sleep(keep + 5)  # the last finished holds forgotten, their records expired
        after = await soak.report(f"{keep + 5} s later")
        plateau = soak.samples[len(soak.samples) // 2 :]
        print(
            f"{cycles} cycles in {wall:.0f} s ({cycles / wall:.0f}/s) by {n} buyers,"
            f" finished holds kept {keep} s, on {os.cpu_count()} cores"
        )
        print(
            f"second half of the run: {mib(min(plateau))} to {mib(max(plateau))}"
            f" (spread {mib(max(plateau) - min(plateau)).strip()}); baseline {mib(baseline)},"
            f" after {mib(after)}"
        )
        per_hold = (peak - after) / kept if kept else 0.0
        print(
            f"one finished cycle costs about {per_hold:.0f} B; kept 24 h at {cycles / wall:.0f}"
            f" cycles/s they would take {mib(per_hold * cycles / wall * 86400).strip()}"
        )
    finally:
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--buyers", type=int, default=32)
    parser.add_argument("--keep", type=int, default=20, help="seconds finished holds are kept")
    args = parser.parse_args()
    with serving("--keep-finished-seconds", str(args.keep), "--hold-seconds", "5") as served:
        url, key, data = served
        uvloop.run(run(url, key, data, args.cycles, args.buyers, args.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
