"""The room rules: pure (``livesale.room.state``) and in Redis (the Lua scripts) agree on one
table of cases."""

from __future__ import annotations

from typing import Any

import pytest

from livesale.room.state import CHAT_MAX, Refused, RoomState, clean_chat, rank, take_token
from tests.conftest import LiveServer
from tests.room.conftest import SKUS, Connect, ShowSetup, new_viewer

# (actor, message) steps; actor "host" or a viewer name. Outcome per step: "ok" or a code.
CASES: list[list[tuple[str, dict[str, Any], str]]] = [
    [
        ("ann", {"type": "request", "sku": "LIP-1"}, "ok"),
        ("ann", {"type": "request", "sku": "LIP-1"}, "already_voted"),
        ("bob", {"type": "vote", "sku": "LIP-1"}, "ok"),
        ("bob", {"type": "vote", "sku": "EYE-2"}, "not_requested"),
        ("bob", {"type": "request", "sku": "GONE-0"}, "not_in_lineup"),
        ("host", {"type": "feature", "sku": "LIP-1"}, "ok"),
        ("ann", {"type": "vote", "sku": "LIP-1"}, "not_requested"),
        ("host", {"type": "resolve", "sku": "LIP-1"}, "not_requested"),
    ],
    [
        ("ann", {"type": "chat", "text": "1"}, "ok"),
        ("ann", {"type": "chat", "text": "2"}, "ok"),
        ("ann", {"type": "chat", "text": "3"}, "ok"),
        ("ann", {"type": "chat", "text": "4"}, "rate_limited"),
        ("bob", {"type": "chat", "text": "b"}, "ok"),
        ("host", {"type": "slow_mode", "seconds": 60}, "ok"),
        ("bob", {"type": "chat", "text": "again"}, "slow_mode"),
        ("host", {"type": "delete_chat", "id": 999}, "not_found"),
    ],
    [
        ("bob", {"type": "request", "sku": "EYE-2"}, "ok"),
        ("ann", {"type": "request", "sku": "SKIN-3"}, "ok"),
        ("ann", {"type": "vote", "sku": "EYE-2"}, "ok"),
        ("bob", {"type": "vote", "sku": "SKIN-3"}, "ok"),
        ("host", {"type": "resolve", "sku": "EYE-2"}, "ok"),
    ],
]


def apply_pure(state: RoomState, actor: str, msg: dict[str, Any], now_ms: int) -> str:
    try:
        match msg["type"]:
            case "request" | "vote":
                state.request(actor, msg["sku"], vote=msg["type"] == "vote")
            case "feature":
                state.feature(msg["sku"])
            case "resolve":
                state.resolve(msg["sku"])
            case "chat":
                state.say(actor, clean_chat(msg["text"]), now_ms, host=actor == "host")
            case "slow_mode":
                state.set_slow_mode(msg["seconds"])
            case "delete_chat":
                state.delete_chat(msg["id"])
    except Refused as refusal:
        return refusal.code
    return "ok"


@pytest.mark.parametrize("case", range(len(CASES)))
async def test_pure_rules_match_redis(
    case: int, server: LiveServer, show: ShowSetup, connect: Connect
) -> None:
    """Each step has the same outcome in the pure rules and on the server, and so does the queue."""
    pure = RoomState(lineup=list(SKUS))
    clients = {
        "host": await connect(show, show.host_token),
        "ann": await connect(show, new_viewer(server.url, "ann")[1]),
        "bob": await connect(show, new_viewer(server.url, "bob")[1]),
    }
    for actor, msg, expected in CASES[case]:
        assert apply_pure(pure, actor, msg, now_ms=1_000) == expected
        client = clients[actor]
        await client.send(**msg)
        reply = await client.expect(
            "error" if expected != "ok" else _event_of(msg["type"]),
            _said(msg.get("text")),
        )
        assert reply.get("code", "ok") == expected
    await clients["host"].send(type="snapshot")
    snap = await clients["host"].expect("snapshot")
    assert [(r["sku"], r["votes"]) for r in snap["requests"]] == pure.queue()
    assert snap["featured"] == pure.featured and snap["slow_mode"] == pure.slow_mode


def _said(text: str | None) -> Any:
    return lambda m: m["type"] != "chat" or m["text"] == text


def _event_of(kind: str) -> str:
    return {"vote": "requests", "request": "requests", "resolve": "requests"}.get(
        kind, {"feature": "featured"}.get(kind, kind)
    )


def test_clean_chat_trims_and_bounds() -> None:
    """Chat is trimmed and must then be 1–280 characters."""
    assert clean_chat("  hi \n") == "hi"
    assert clean_chat("x" * CHAT_MAX) == "x" * CHAT_MAX
    for bad, code in (("   ", "chat_empty"), ("x" * (CHAT_MAX + 1), "chat_too_long")):
        with pytest.raises(Refused) as refused:
            clean_chat(bad)
        assert refused.value.code == code


def test_rank_by_votes_then_age() -> None:
    """The queue puts more votes first and, on a tie, the older request."""
    assert rank({"a": 1, "b": 3, "c": 3}, {"a": 1, "b": 5, "c": 2}) == [
        ("c", 3),
        ("b", 3),
        ("a", 1),
    ]


def test_token_bucket_burst_then_one_per_second() -> None:
    """Three lines at once, then one more per second."""
    tokens, at = 3.0, 0
    for _ in range(3):
        ok, tokens = take_token(tokens, at, 0)
        assert ok
    assert not take_token(tokens, at, 500)[0]
    assert take_token(tokens, at, 1000)[0]


def test_mute_expires_and_host_is_exempt() -> None:
    """A mute refuses chat until it ends; the host is never muted nor rate limited."""
    state = RoomState(lineup=["A"])
    state.mute("v", 10, now_ms=0)
    with pytest.raises(Refused):
        state.say("v", "hi", now_ms=5_000)
    assert state.say("v", "hi", now_ms=10_001) == 1
    for n in range(10):
        state.say("host", f"{n}", now_ms=10_001, host=True)
    assert len(state.chat) == 11


def test_plants_count_once_per_viewer() -> None:
    """Planting twice counts once; unplanting takes it back."""
    state = RoomState(lineup=["A"])
    assert state.plant("v", "A", True) == 1
    assert state.plant("v", "A", True) == 1
    assert state.plant("w", "A", True) == 2
    assert state.plant("v", "A", False) == 1
