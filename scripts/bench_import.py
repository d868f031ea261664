#!/usr/bin/env python3
"""Import benchmark: what a large product import costs, and what a checkout waits for it.

Starts ``livesale serve`` (the embedded Redis, ``--payments test``) on a fresh data directory,
imports a catalogue of N products with stock, then imports it again with new stock counts
(``--rounds`` times) while one buyer after another checks out a held unit of a live show.
It prints how long each import took, and the checkout latency (p50/p99/max) during the
imports against the same-run baseline: the same checkouts with no import running. Both
writes share SQLite's one writer, so the difference is what the import holds it for.

    python scripts/bench_import.py --rows 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import httpx
from _crowd import holds, serving
from _stats import summary

SHIPPING = {"name": "Bench Buyer", "address": "1 Loop Road", "email": "bench@example.com"}
PAYMENT = {"provider": "test", "token": "tok_visa"}


def catalogue(n: int, stock: int) -> list[dict[str, Any]]:
    return [
        {
            "sku": f"IMP-{i:06d}",
            "title": f"Imported product {i}",
            "description": "A product of a large catalogue, imported in one request.",
            "price": {"amount": 990, "currency": "EUR"},
            "stock": stock,
        }
        for i in range(n)
    ]


async def checkouts(
    client: httpx.AsyncClient, held: list[Any], until: asyncio.Event
) -> list[float]:
    """Check the holds out one after another until ``until`` is set; their latencies."""
    latencies = []
    while held and not until.is_set():
        hold_id, auth = held.pop()
        started = time.perf_counter()
        answer = await client.post(
            f"/api/holds/{hold_id}/checkout",
            json={"payment": PAYMENT, "shipping": SHIPPING},
            headers=auth,
        )
        latencies.append(time.perf_counter() - started)
        if answer.status_code != 201:
            raise SystemExit(f"checkout failed: {answer.status_code} {answer.text}")
    return latencies


async def run(url: str, key: str, rows: int, rounds: int) -> None:
    merchant = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        started = time.perf_counter()
        made = await client.post("/api/products/import", json=catalogue(rows, 5), headers=merchant)
        made.raise_for_status()
        print(f"first import of {rows} products: {time.perf_counter() - started:.3f} s")
        held = await holds(client, key, "CHK", 400)

        alone = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(3.0, alone.set)
        baseline = await checkouts(client, held, alone)
        timer.cancel()

        during: list[float] = []
        took = []
        for n in range(rounds):
            done = asyncio.Event()

            async def imported(stock: int, done: asyncio.Event) -> None:
                began = time.perf_counter()
                answer = await client.post(
                    "/api/products/import", json=catalogue(rows, stock), headers=merchant
                )
                took.append(time.perf_counter() - began)
                answer.raise_for_status()
                done.set()

            task = asyncio.create_task(imported(6 + n, done))
            await asyncio.sleep(0.01)  # the import's body is on its way
            during += await checkouts(client, held, done)
            await task
        print(
            f"import of {rows} products with new stock: "
            + summary(took, scale=1, unit="s", digits=3, largest=True)
        )
        print("checkout during the imports: " + summary(during, scale=1000, largest=True))
        print("baseline, no import running: " + summary(baseline, scale=1000, largest=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with serving("--payments", "test") as (url, key, _):
        print(f"{args.rows} rows an import, {args.rounds} rounds, on {os.cpu_count()} cores")
        asyncio.run(run(url, key, args.rows, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
