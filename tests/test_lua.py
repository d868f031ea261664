"""The Lua registry: one builder per script, shared preludes, no key built in Lua."""

from __future__ import annotations

import inspect

import pytest

from livesale.errors import StoreError
from livesale.lua import SHAS, SOURCES, ScriptCall, calls, compose

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
    call = calls.release(
        sku="S", show_id="sh_1", hold_id="ho_1.S", viewer_id=None, owner="vw_1", client="10.0.0.1"
    )
    assert call == ScriptCall(
        "release",
        [
            "ls:{S}:stock",
            "ls:{S}:holds",
            "ls:{S}:expiry",
            "ls:{S}:done",
            "ls:{S}:buyers",
            "ls:{show:sh_1}:events",
            "ls:{show:sh_1}:live:vw_1",
            "ls:{show:sh_1}:live:@10.0.0.1",
        ],
        ["ho_1.S", ""],
    )
    dummies = {"str": "x", "int": 1, "bool": True, "bytes": b"{}", "float": 1.0}
    dummies |= {"str | None": "x", "int | None": 1, "Sequence[str]": [], "Mapping[str, int]": {}}
    dummies["tuple[int, float]"] = (1, 1.0)
    dummies |= {"Sequence[tuple[str, int]]": [("S", 1)]}
    for name, builder in BUILDERS.items():
        params = inspect.signature(builder).parameters.values()
        made = builder(**{p.name: dummies[str(p.annotation)] for p in params})
        assert made.name == name
        assert all(isinstance(k, str) and k.startswith("ls:") for k in made.keys), name


def test_hold_scripts_share_one_prelude() -> None:
    """The lines every hold script needs (the shelf's keys, ending a hold) are written once."""
    for name in ("reserve", "confirm", "expire", "release", "release_show"):
        assert SOURCES[name].count("local function end_hold(") == 1, name
        assert SOURCES[name].count("local function now_ms(") == 1, name


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
