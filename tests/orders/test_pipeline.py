"""The script batcher: its own RESP packing, replies in order, errors per call."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from livesale import _redis
from livesale.errors import StoreError
from livesale.lua import ScriptCall, Scripts, calls
from livesale.lua.pipeline import ScriptBatcher, pack_evalsha


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


@pytest.mark.parametrize("raw", [True, False], ids=["raw-wire", "public-pipeline"])
async def test_concurrent_calls_get_their_own_replies(redis_url: str, raw: bool) -> None:
    """Many calls in one batch each get their own answer, an error reply only its caller, on
    the raw wire and on the public pipeline it falls back to."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        scripts = Scripts(client)
        await scripts.load()
        batcher = ScriptBatcher(client, scripts, raw=raw)

        def release(n: int) -> ScriptCall:
            return calls.release(sku="X", hold_id=f"ho_{n}.X", viewer_id=None)

        # A call missing its keys makes Redis answer that call, and only that one, with an error.
        pending = [batcher.call(release(n)) for n in range(300)]
        pending.insert(150, batcher.call(ScriptCall("release", ["k1"], ["ho_x.X", ""])))
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert isinstance(results.pop(150), StoreError)
        assert all(not isinstance(r, BaseException) and r[0] == b"gone" for r in results)
        await client.script_flush()
        # NOSCRIPT after a flush: the batcher loads the script again and still answers.
        again = await batcher.call(release(1))
        assert again[0] == b"gone"
        await batcher.aclose()
    finally:
        await client.aclose()


def test_raw_wire_check() -> None:
    """The installed redis-py has every name the raw wire uses; a missing one is named."""
    assert _redis.check() == []
    assert _redis.raw_pipeline_ok()
    moved = (*_redis.PRIVATE_NAMES, (Connection, "send_packed_bytes", "a name that moved"))
    assert _redis.check(moved) == [
        "redis-py's Connection.send_packed_bytes is gone (a name that moved)"
    ]
