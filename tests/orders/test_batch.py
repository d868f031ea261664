"""The script batcher: its own RESP packing, replies in order, errors per call."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from livesale.errors import StoreError
from livesale.orders.batch import ScriptBatcher, pack_evalsha
from livesale.scripts import Scripts


def test_pack_evalsha_matches_redis_py() -> None:
    """The batch goes on the wire exactly as redis-py would pack the same EVALSHA."""
    keys = ["ls:{FLASH-1}:stock", "ls:{FLASH-1}:holds"]
    args = ["ho_abc.FLASH-1", 1, 300000, "ünïcode", 2.5, b"raw"]
    expected = b"".join(Connection().pack_command("EVALSHA", "a" * 40, len(keys), *keys, *args))
    assert pack_evalsha("a" * 40, keys, args) == expected


def test_pack_evalsha_refuses_unknown_types() -> None:
    """Anything that is not str, bytes, int or float is refused, not sent as its repr."""
    with pytest.raises(TypeError):
        pack_evalsha("a" * 40, [], [None])


async def test_concurrent_calls_get_their_own_replies(redis_url: str) -> None:
    """Many calls in one batch each get their own answer, an error reply only its caller."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        scripts = Scripts(client)
        await scripts.load()
        batcher = ScriptBatcher(client, scripts)
        keys = ["k1", "k2", "k3", "k4", "k5", "k6"]
        # A call missing its keys makes Redis answer that call, and only that one, with an error.
        calls = [batcher.call("release", keys, [f"ho_{n}.X", ""]) for n in range(300)]
        calls.insert(150, batcher.call("release", ["k1"], ["ho_x.X", ""]))
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results.pop(150), StoreError)
        assert all(not isinstance(r, BaseException) and r[0] == b"gone" for r in results)
        await client.script_flush()
        # NOSCRIPT after a flush: the batcher loads the script again and still answers.
        again = await batcher.call("release", keys, ["ho_1.X", ""])
        assert again[0] == b"gone"
        await batcher.aclose()
    finally:
        await client.aclose()
