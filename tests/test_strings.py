"""The pages' strings tables (``web/js/strings/*.js``) say the same things in English and
Simplified Chinese: the same keys, no empty text, the same ``{placeholders}``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from livesale.config import in_ci

TABLES = sorted((Path(__file__).resolve().parents[1] / "web" / "js" / "strings").glob("*.js"))
LANGUAGES = ("en", "zh-CN")
#: ``Intl.PluralRules`` categories: ``x.one`` and ``x.other`` are the forms of ``x``.
PLURAL = re.compile(r"^(?P<base>.+)\.(zero|one|two|few|many|other)$")
PLACEHOLDER = re.compile(r"\{(\w+)\}")

#: Imports the module named by its file: URL and prints its default export as JSON.
LOAD = (
    "const table = await import(process.argv[1]);"
    "process.stdout.write(JSON.stringify(table.default));"
)


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None:
        if in_ci():
            pytest.fail("node is missing: scripts/test installs it (with npm)")
        pytest.skip("node is not installed (scripts/test installs npm, which brings it)")
    return found


def load(node: str, path: Path) -> dict[str, Any]:
    """The table's default export, as node reads the ES module."""
    done = subprocess.run(
        [node, "--input-type=module", "-e", LOAD, path.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{path.name} does not load: {done.stderr}"
    table: dict[str, Any] = json.loads(done.stdout)
    return table


def base(key: str) -> str | None:
    """``x`` for a plural form ``x.one``/``x.other``, else ``None``."""
    match = PLURAL.match(key)
    return match["base"] if match else None


def counterpart(key: str, other: dict[str, str]) -> str | None:
    """The key of ``other`` that says what ``key`` says: the same key, or for a plural form,
    the other table's ``.other`` form or its plain key (a language without plurals)."""
    if key in other:
        return key
    stem = base(key)
    if stem is None:
        # A plain key is matched by the other table's plural forms of it.
        forms = [k for k in other if base(k) == key]
        return f"{key}.other" if f"{key}.other" in other else (forms[0] if forms else None)
    for candidate in (f"{stem}.other", stem):
        if candidate in other:
            return candidate
    return None


def test_there_are_tables() -> None:
    """The common table is where the pages expect it."""
    assert "common.js" in {path.name for path in TABLES}


@pytest.mark.parametrize("path", TABLES, ids=[path.name for path in TABLES])
def test_both_languages_say_the_same(node: str, path: Path) -> None:
    """Every key has a text in both languages, none empty, with the same placeholders."""
    table = load(node, path)
    assert sorted(table) == sorted(LANGUAGES), f"{path.name}: languages {sorted(table)}"
    en, zh = table["en"], table["zh-CN"]
    problems: list[str] = []
    for language, strings in table.items():
        for key, text in strings.items():
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{language} {key!r} is empty or not a string: {text!r}")
    for mine, theirs, name in ((en, zh, "zh-CN"), (zh, en, "en")):
        for key in mine:
            if counterpart(key, theirs) is None:
                problems.append(f"{key!r} has no {name} text")
    for key, text in en.items():
        other = counterpart(key, zh)
        if other is None:
            continue
        stem = base(key)
        if other != key and stem is not None and key != f"{stem}.other" and f"{stem}.other" in en:
            # English "one" may spell the number out ("One item"); a language without
            # plurals has the placeholders of the "other" form.
            continue
        if isinstance(text, str) and isinstance(zh[other], str):
            ours, translated = set(PLACEHOLDER.findall(text)), set(PLACEHOLDER.findall(zh[other]))
            if ours != translated:
                problems.append(
                    f"{key!r}: en has {sorted(ours)}, zh-CN {other!r} has {sorted(translated)}"
                )
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_plural_forms_match_a_language_without_plurals() -> None:
    """``x.one``/``x.other`` in English are matched by ``x.other`` or ``x`` in Chinese."""
    zh = {"items.other": "{n} 件", "left": "剩 {n} 件"}
    en = {"items.one": "One item", "items.other": "{n} items", "left.one": "{n} left"}
    assert counterpart("items.one", zh) == "items.other"
    assert counterpart("left.one", zh) == "left"
    assert counterpart("left", en) == "left.one"
    assert counterpart("items.other", en) == "items.other"
    assert counterpart("gone.one", zh) is None
