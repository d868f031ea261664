"""The Lua registry: one builder per script, shared preludes, no key built in Lua."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from redis.crc import key_slot

from livesale.errors import StoreError
from livesale.lua import (
    SHARDED,
    SHARDED_SHAS,
    SHAS,
    SINGLE_REDIS,
    SOURCES,
    ScriptCall,
    calls,
    compose,
)

BUILDERS = {
    name: fn
    for name, fn in vars(calls).items()
    if inspect.isfunction(fn) and fn.__module__ == calls.__name__ and not name.startswith("_")
}


def test_one_builder_per_script() -> None:
    """Every script has exactly one call builder, named after it, and no builder lacks a
    script."""
    assert set(BUILDERS) == set(SOURCES)
    assert set(SHAS) == set(SOURCES)


def test_builders_name_their_script() -> None:
    """Each builder's call runs the script it is named after."""
    call = calls.release(sku="S", hold_id="ho_1.S", viewer_id=None)
    assert call == ScriptCall(
        "release",
        [
            "ls:{S}:stock",
            "ls:{S}:holds",
            "ls:{S}:expiry",
            "ls:{S}:done",
            "ls:{S}:buyers",
            "ls:{S}:events",
        ],
        ["ho_1.S", ""],
    )
    dummies = {"str": "x", "int": 1, "bool": True, "bytes": b"{}", "float": 1.0}
    dummies |= {"str | None": "x", "int | None": 1, "Sequence[str]": [], "Mapping[str, int]": {}}
    dummies["Mapping[str, str]"] = {"S": "990|EUR|0"}
    dummies["tuple[int, float]"] = (1, 1.0)
    dummies |= {"Sequence[tuple[str, int]]": [("S", 1)]}
    for name, builder in BUILDERS.items():
        params = inspect.signature(builder).parameters.values()
        made = builder(**{p.name: dummies[str(p.annotation)] for p in params})
        assert made.name == name
        assert all(isinstance(k, str) and k.startswith("ls:") for k in made.keys), name


def test_every_call_is_of_one_hash_slot() -> None:
    """A Redis Cluster runs a script only if all its keys are in one hash slot: every
    builder's keys are, whatever SKU, show, viewer or address it is given (the channels a
    script publishes on are among its keys, so they are in its slot too). The scripts for a
    single Redis only are the exception, and a cluster has none of them."""
    values = [("BALM", "sh_1", "vw_1", "10.0.0.1"), ("LIP-02", "sh_9", "vw_7", "::1")]
    assert SINGLE_REDIS == {"click"}
    assert not SINGLE_REDIS & set(SHARDED)
    assert set(SHARDED) | SINGLE_REDIS == set(SOURCES)
    for name, builder in BUILDERS.items():
        if name in SINGLE_REDIS:
            continue
        params = inspect.signature(builder).parameters.values()
        for sku, show, viewer, address in values:
            strings = {"sku": sku, "show_id": show, "viewer_id": viewer, "client": address}
            dummies = {"str": "x", "int": 1, "bool": True, "bytes": b"{}", "float": 1.0}
            dummies |= {"str | None": viewer, "int | None": 1, "Sequence[str]": ["ho_1"]}
            dummies |= {"Mapping[str, int]": {f"{show}|{viewer}": 1}, "tuple[int, float]": (1, 1.0)}
            dummies["Mapping[str, str]"] = {sku: "990|EUR|0"}
            made = builder(
                **{p.name: strings.get(p.name, dummies[str(p.annotation)]) for p in params}
            )
            slots = {key_slot(k.encode()) for k in made.keys}
            assert len(slots) == 1, (name, made.keys)


def test_cluster_scripts_publish_by_shard() -> None:
    """On a cluster every script publishes with SPUBLISH, and only there."""
    for name, source in SOURCES.items():
        assert "SPUBLISH" not in source, name
        if name in SINGLE_REDIS:
            continue
        assert "'PUBLISH'" not in SHARDED[name], name
        assert SHARDED[name].count("'SPUBLISH'") == source.count("'PUBLISH'"), name
    assert SHARDED_SHAS != SHAS


def test_hold_scripts_share_one_prelude() -> None:
    """The lines every hold script needs (the shelf's keys, ending a hold) are written once."""
    for name in ("reserve", "confirm", "expire", "release", "release_show", "click"):
        assert SOURCES[name].count("local function end_hold(") == 1, name
        assert SOURCES[name].count("local function now_ms(") == 1, name


def test_a_click_in_one_call_is_its_two_steps() -> None:
    """The one-call click runs the very lines of the two steps (a prelude each, written once),
    with the keys of both steps and the sweepers' index."""
    for name, function in (
        ("admit", "admit_check"),
        ("admit", "admit_claim"),
        ("reserve", "take_stock"),
    ):
        assert SOURCES[name].count(f"local function {function}(") == 1, name
        assert SOURCES["click"].count(f"local function {function}(") == 1, name
    click: dict[str, Any] = dict(hold_id="ho_1.S", show_id="sh_1", viewer_id="vw_1", sku="S")
    click |= dict(qty=2, idem_key="k", client="10.0.0.1")
    made = calls.click(**click, hold_ms=1000, idem_seconds=60, reap_batch=10, index_ms=61_000)
    first = calls.admit(**click, hold_ms=1000, idem_seconds=60)
    second = calls.reserve(**click, expires_ms=0, reap_batch=10)
    assert made.keys == [*second.keys, *first.keys, "ls:hold-index"]
    assert made.args == [*first.args, "sh_1", "k", 10, 0, 61_000]


def test_scripts_build_no_keys() -> None:
    """No script spells a key: they all come in KEYS, built by livesale.keys."""
    for name, source in SOURCES.items():
        assert "ls:" not in source, name


def test_preludes_compose_in_order() -> None:
    """A script gets its preludes' text first, in the order it names them; preludes alone
    are not scripts, and an unknown prelude is refused."""
    files = {"_a": "local A = 1", "_b": "local B = 2", "s": "--! prelude _b _a\nreturn A + B"}
    assert compose(files) == {"s": "local B = 2\nlocal A = 1\nreturn A + B"}
    assert compose({"plain": "return 1"}) == {"plain": "return 1"}
    with pytest.raises(StoreError, match="_missing"):
        compose({"s": "--! prelude _missing\nreturn 1"})
