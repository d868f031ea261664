"""The layout holds: no import cycles, no upward imports, domains meet only at their surface."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "livesale"
#: The domain packages, each with its own surface (its ``__init__``).
DOMAINS = ("catalogue", "shows", "room", "orders", "media")
#: The modules that wire the domains together (and the CLI's); nothing else imports them.
APP_NAMES = ("livesale.app", "livesale.server", "livesale.demo", "livesale.pages")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
APP = {
    name
    for name in MODULES
    if name in APP_NAMES
    or name in ("livesale.cli", "livesale.__main__")
    or name.startswith("livesale.cli.")
}


def imports(name: str) -> Iterator[tuple[str, list[str], int]]:
    """``(imported module, names taken from it, line)`` for every livesale import in ``name``,
    wherever it stands (functions and ``TYPE_CHECKING`` blocks included)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "livesale":
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}:{node.lineno}: relative import"
            base = node.module or ""
            if base.split(".")[0] != "livesale":
                continue
            taken: list[str] = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    yield sub, [], node.lineno
                else:
                    taken.append(alias.name)
            if taken:
                yield base, taken, node.lineno


def graph() -> dict[str, set[str]]:
    return {name: {target for target, _, _ in imports(name)} for name in MODULES}


def domain_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in DOMAINS else None


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_import_resolves() -> None:
    """Every livesale import names a module of the package (the walk below sees them all)."""
    for name in MODULES:
        for target, _, line in imports(name):
            assert target in MODULES, f"{name}:{line} imports {target}, which does not exist"


def test_no_import_cycles() -> None:
    """No two modules of livesale import each other, directly or round about."""
    assert find_cycles(graph()) == []


def test_finds_a_cycle() -> None:
    """The cycle check itself sees a cycle (so the test above can fail)."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lower_layers_import_no_domain() -> None:
    """Base modules (http, errors, keys, db, ids, config, transport, services, events, the
    vendor adapters, ...) never import a domain package or the app's wiring."""
    for name in MODULES:
        if domain_of(name) is not None or name in APP:
            continue
        for target, _, line in imports(name):
            assert domain_of(target) is None, f"{name}:{line} imports the domain {target}"
            assert target not in APP, f"{name}:{line} imports the app module {target}"


def test_domains_meet_only_at_their_surface() -> None:
    """A domain imports another only as ``livesale.<domain>``, and only names of its
    ``__all__``; never the app's wiring."""
    for name in MODULES:
        own = domain_of(name)
        if own is None:
            continue
        for target, taken, line in imports(name):
            assert target not in APP, f"{name}:{line} imports the app module {target}"
            other = domain_of(target)
            if other is None or other == own:
                continue
            hint = f"{name}:{line} reaches into {target}; import from livesale.{other} instead"
            assert target == f"livesale.{other}", hint
            surface = set(importlib.import_module(target).__all__)
            missing = [t for t in taken if t not in surface]
            assert not missing, f"{name}:{line} takes {missing}, not in livesale.{other}.__all__"


def test_domains_import_in_one_direction() -> None:
    """The domains form a hierarchy (catalogue < shows < orders < room; shows < media)."""
    edges: dict[str, set[str]] = {d: set() for d in DOMAINS}
    for name, targets in graph().items():
        own = domain_of(name)
        if own is not None:
            edges[own].update(t for t in map(domain_of, targets) if t is not None and t != own)
    assert find_cycles(edges) == []


def test_a_domain_never_imports_its_own_surface() -> None:
    """Inside a domain, modules import their siblings, never the package's own ``__init__``
    (which re-exports them)."""
    for name in MODULES:
        own = domain_of(name)
        if own is None or name == f"livesale.{own}":
            continue
        for target, _, line in imports(name):
            assert target != f"livesale.{own}", f"{name}:{line} imports its own package"


@pytest.mark.parametrize("domain", DOMAINS)
def test_surface_names_exist(domain: str) -> None:
    """Every name a domain's ``__all__`` promises is there."""
    module = importlib.import_module(f"livesale.{domain}")
    for name in module.__all__:
        assert hasattr(module, name), f"livesale.{domain}.{name}"
