#!/usr/bin/env python3
"""Checkout benchmark: what paying costs, by provider.

Starts localstripe (the Stripe emulator the tests use) and ``livesale serve`` with
``--payments stripe,test`` on a fresh data directory, makes a live show and N buyers each
holding one unit, then checks every hold out: first all at once (N concurrent checkouts), then
one after another. It does this with the ``test`` provider (no outside call: livesale's own
cost) and with ``stripe`` (a card token per buyer, four Stripe API calls per checkout:
read the token, create the PaymentIntent, read it, confirm it), and prints checkouts per
second and p50/p99 latency of each.

The same-run baseline is those four Stripe calls made directly with the ``stripe`` package,
one checkout's worth after another, so the figure for ``stripe`` reads as Stripe's own time
plus livesale's.

Every order is written to the store of record before the provider is called and again at each
step, so ``--store both`` (the default) runs it all on SQLite and then on PostgreSQL
(``--database-url``, or a throw-away cluster with PostgreSQL's durable defaults).

    python scripts/bench_checkout.py --buyers 200 [--store sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import stripe
from _crowd import OPEN_LIMITS, STORES, holds, serve, stores
from _stats import summary

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.localstripe import SECRET_KEY, LocalStripe  # noqa: E402 - root on the path just now

SHIPPING = {"name": "Bench Buyer", "address": "1 Loop Road", "email": "bench@example.com"}


def merchant_key(data: Path) -> str:
    from livesale.client import CLI_KEY_FILE

    return (data / CLI_KEY_FILE).read_text().strip()


async def checkout(
    client: httpx.AsyncClient, hold_id: str, auth: dict[str, str], payment: dict[str, str]
) -> float:
    started = time.perf_counter()
    answer = await client.post(
        f"/api/holds/{hold_id}/checkout",
        json={"payment": payment, "shipping": SHIPPING},
        headers=auth,
    )
    elapsed = time.perf_counter() - started
    if answer.status_code != 201:
        raise SystemExit(f"checkout failed: {answer.status_code} {answer.text}")
    return elapsed


async def run(provider: str, url: str, key: str, emulator: LocalStripe, n: int) -> None:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for mode in ("concurrent", "sequential"):
            held = await holds(client, key, f"{provider.upper()}-{mode[:3].upper()}", n)
            payments = [
                {
                    "provider": provider,
                    "token": emulator.token() if provider == "stripe" else "tok_visa",
                }
                for _ in held
            ]
            started = time.perf_counter()
            if mode == "concurrent":
                latencies = await asyncio.gather(
                    *(checkout(client, h, a, p) for (h, a), p in zip(held, payments, strict=True))
                )
            else:
                latencies = [
                    await checkout(client, h, a, p)
                    for (h, a), p in zip(held, payments, strict=True)
                ]
            wall = time.perf_counter() - started
            print(
                f"{provider:>6} {mode:>10}: {n / wall:7.1f} checkouts/s  "
                + summary(latencies, scale=1000, largest=True)
            )


async def baseline(emulator: LocalStripe, n: int) -> None:
    """One checkout's Stripe calls, made directly: the floor under livesale's card checkout."""
    http = stripe.HTTPXClient()
    client = stripe.StripeClient(
        SECRET_KEY,
        base_addresses={"api": emulator.url},
        http_client=http,
        stripe_version="2024-06-20",
    )
    tokens = [emulator.token() for _ in range(n)]
    latencies = []
    started = time.perf_counter()
    for token in tokens:
        began = time.perf_counter()
        card = (await client.v1.tokens.retrieve_async(token)).to_dict()["card"]["id"]
        params: Any = {
            "amount": 1990,
            "currency": "eur",
            "capture_method": "manual",
            "payment_method": card,
            "payment_method_types": ["card"],
        }
        intent = await client.v1.payment_intents.create_async(params=params)
        await client.v1.payment_intents.retrieve_async(intent.id)
        await client.v1.payment_intents.confirm_async(intent.id)
        latencies.append(time.perf_counter() - began)
    wall = time.perf_counter() - started
    await http.close_async()  # type: ignore[no-untyped-call]
    print(
        f"baseline: the same Stripe calls, direct: {n / wall:7.1f} checkouts/s  "
        + summary(latencies, scale=1000, largest=True)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--store", choices=STORES, default="both", help="store of record")
    parser.add_argument(
        "--database-url", default="", help="an empty PostgreSQL database (default: throw-away)"
    )
    args = parser.parse_args()
    print(f"{args.buyers} buyers, one unit each, on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp, stores(args.store, args.database_url) as chosen:
        emulator = LocalStripe(Path(tmp) / "stripe.pickle").start()
        try:
            for name, database_url in chosen:
                data = Path(tmp) / f"data-{name}"
                on_store = ["--database-url", database_url] if database_url else []
                proc, url = serve(data, *emulator.serve_args("test"), *OPEN_LIMITS, *on_store)
                try:
                    print(f"--- store: {name}")
                    key = merchant_key(data)
                    asyncio.run(run("test", url, key, emulator, args.buyers))
                    asyncio.run(run("stripe", url, key, emulator, args.buyers))
                finally:
                    proc.terminate()
                    proc.wait(30)
            asyncio.run(baseline(emulator, args.buyers))
        finally:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
