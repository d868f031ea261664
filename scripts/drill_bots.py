#!/usr/bin/env python3
"""Drill: a hostile crowd against a flash sale.

Starts ``livesale serve`` with its production defaults on a fresh data directory, puts one
item with ``--stock`` units on a live show's line-up (one per buyer, as a flash sale sets it),
then:

* one bot, from one address (127.0.0.2), mints as many viewer tokens as it can of
  ``--bot-tokens`` tries;
* ``--buyers`` real buyers sign up, each from its own loopback address (127.0.0.10, .11, ...:
  all of 127.0.0.0/8 is loopback on Linux);
* everyone clicks Buy at the same moment: the bot once per token it got, each buyer once.

It prints how many tokens the bot got, how many units the bot and the buyers hold, and the
stock counters, and exits 1 unless every buyer got their unit, the bot got no more than one
address may hold (the per-buyer limit times ``--address-cap-multiple``'s default), and
``available + held + sold = on_hand``. The same-run baseline is the bot alone with the
per-address limits off (``--address-cap-multiple 0`` and open rate limits): what it would
have taken without them.

    python scripts/drill_bots.py --buyers 50 --bot-tokens 300 --stock 100
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from _crowd import OPEN_LIMITS, serve

from livesale.client import CLI_KEY_FILE
from livesale.config import Settings

BOT = "127.0.0.2"
SKU = "DROP-1"


def client(url: str, address: str, connections: int = 10) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    transport = httpx.AsyncHTTPTransport(local_address=address, limits=limits)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=60)


async def setup(url: str, key: str, stock: int) -> str:
    async with httpx.AsyncClient(
        base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as merchant:
        product = {"sku": SKU, "title": "Limited drop", "price": {"amount": 990, "currency": "EUR"}}
        (await merchant.post("/api/products", json={**product, "stock": stock})).raise_for_status()
        made = await merchant.post("/api/shows", json={"title": "Drop", "host_name": "Mia"})
        show = str(made.json()["id"])
        lineup = [{"sku": SKU, "limit_per_buyer": 1}]
        (await merchant.put(f"/api/shows/{show}/lineup", json=lineup)).raise_for_status()
        (await merchant.post(f"/api/shows/{show}/start")).raise_for_status()
    return show


async def sign_up(http: httpx.AsyncClient, nickname: str) -> str | None:
    answer = await http.post("/api/viewers", json={"nickname": nickname})
    return str(answer.json()["token"]) if answer.status_code == 201 else None


async def buy(http: httpx.AsyncClient, show: str, token: str) -> bool:
    answer = await http.post(
        f"/api/shows/{show}/holds",
        json={"sku": SKU, "qty": 1, "idempotency_key": "buy"},
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer.status_code == 201


async def crowd(url: str, key: str, stock: int, buyers: int, bot_tries: int) -> dict[str, Any]:
    show = await setup(url, key, stock)
    bot = client(url, BOT, connections=50)
    people = [client(url, f"127.0.0.{10 + i}", connections=1) for i in range(buyers)]
    try:
        minted = await asyncio.gather(*(sign_up(bot, f"bot{i}") for i in range(bot_tries)))
        bot_tokens = [t for t in minted if t]
        tokens = await asyncio.gather(*(sign_up(p, f"buyer{i}") for i, p in enumerate(people)))
        assert all(tokens), "a real buyer could not sign up"
        clicks = [buy(bot, show, t) for t in bot_tokens]
        clicks += [buy(p, show, t) for p, t in zip(people, tokens, strict=True) if t]
        got = await asyncio.gather(*clicks)
        level = (await bot.get(f"/api/stock/{SKU}")).json()
    finally:
        await bot.aclose()
        for p in people:
            await p.aclose()
    return {
        "bot_tokens": len(bot_tokens),
        "bot_units": sum(got[: len(bot_tokens)]),
        "buyer_units": sum(got[len(bot_tokens) :]),
        "level": level,
    }


def run(data: Path, stock: int, buyers: int, bot_tries: int, *extra: str) -> dict[str, Any]:
    proc, url = serve(data, "--payments", "manual", *extra)
    try:
        key = (data / CLI_KEY_FILE).read_text().strip()
        return asyncio.run(crowd(url, key, stock, buyers, bot_tries))
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=50)
    parser.add_argument("--bot-tokens", type=int, default=300)
    parser.add_argument("--stock", type=int, default=100)
    args = parser.parse_args()
    cap = 1 * Settings().address_cap_multiple  # the line-up's limit is 1
    with tempfile.TemporaryDirectory() as tmp:
        base = run(Path(tmp) / "baseline", args.stock, 0, args.bot_tokens, *OPEN_LIMITS)
        result = run(Path(tmp) / "drill", args.stock, args.buyers, args.bot_tokens)
    level = result["level"]
    print(f"{args.stock} units, {args.buyers} buyers on their own addresses, one bot on {BOT}")
    print(
        f"baseline, no per-address limits: the bot minted {base['bot_tokens']} tokens"
        f" and held {base['bot_units']} units"
    )
    print(
        f"drill: the bot minted {result['bot_tokens']} of {args.bot_tokens} tokens and held"
        f" {result['bot_units']} units (cap {cap}); buyers held {result['buyer_units']}"
        f" of {args.buyers}"
    )
    print(
        f"stock: on_hand {level['on_hand']}, available {level['available']},"
        f" held {level['held']}, sold {level['sold']}"
    )
    balanced = level["available"] + level["held"] + level["sold"] == level["on_hand"]
    ok = result["buyer_units"] == args.buyers and result["bot_units"] <= cap and balanced
    print("every buyer got their unit, the bot no more than its cap" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
