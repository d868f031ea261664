"""Other libraries' private parts are named in one adapter each, every one of them in its table."""

from __future__ import annotations

import ast
from pathlib import Path

from livesale import _redis, _uvicorn
from livesale.media import _aiortc

ROOT = Path(__file__).resolve().parent.parent / "livesale"
AIORTC = ROOT / "media" / "_aiortc"
UVICORN = ROOT / "_uvicorn"
REDIS = ROOT / "_redis.py"


def files(under: Path) -> list[Path]:
    return [under] if under.is_file() else sorted(under.rglob("*.py"))


def outside(*adapters: Path) -> list[Path]:
    inside = {p for a in adapters for p in files(a)}
    return [p for p in sorted(ROOT.rglob("*.py")) if p not in inside]


def private_uses(path: Path) -> set[tuple[str, int]]:
    """``(name, line)`` of every ``_name`` attribute of something other than ``self``/``cls``,
    every ``_name`` taken by ``getattr``/``setattr``, and every ``_module`` imported from."""
    found: set[tuple[str, int]] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if not node.attr.startswith("__") and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            ):
                found.add((node.attr, node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) >= 2:
                arg = node.args[1]
                text = str(arg.value) if isinstance(arg, ast.Constant) else ""
                if text.startswith("_") and not text.endswith("__"):
                    found.add((text, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module:
            for part in node.module.split(".")[1:]:
                if part.startswith("_") and node.module.split(".")[0] != "livesale":
                    found.add((part, node.lineno))
    return found


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


AIORTC_NAMES = {p.name for p in _aiortc.PRIVATE_NAMES} | {
    getattr(obj, "__name__", "") for obj, _, _ in _aiortc.EXPECTATIONS
}


def test_aiortc_table_is_complete() -> None:
    """Every private name of aiortc, aioice or pylibsrtp the adapter uses is in its table."""
    for path in files(AIORTC):
        for name, line in private_uses(path):
            assert name in AIORTC_NAMES, f"{path.name}:{line} uses {name}, not in PRIVATE_NAMES"


def test_only_the_adapters_name_private_parts() -> None:
    """No module outside the adapters names a private attribute of another library (the
    project's own private names are its own business) or imports a library's internals."""
    for path in outside(AIORTC, UVICORN, REDIS):
        for name, line in private_uses(path):
            assert name not in AIORTC_NAMES, f"{path}:{line} uses aiortc's {name}"
        for module in imported_modules(path):
            top, *rest = module.split(".")
            assert not (
                top in ("aiortc", "aioice", "pylibsrtp") and any(p.startswith("_") for p in rest)
            ), f"{path} imports {module}"
            assert not module.startswith("uvicorn.protocols"), f"{path} imports {module}"
            assert module != "redis.asyncio.connection", f"{path} imports {module}"


def test_installed_libraries_pass_the_checks() -> None:
    """The installed aiortc, uvicorn and redis-py have every private name the tables list."""
    assert _aiortc.check() == []
    assert _uvicorn.check() == []
    assert _redis.check() == []


def test_checks_name_what_moved() -> None:
    """A table entry the library lacks is reported by name, not skipped."""
    gone = _aiortc.Private(_aiortc.RTCRtpSender, "_send_frames_faster", "a hook that moved")
    assert _aiortc.check([*_aiortc.PRIVATE_NAMES, gone]) == [
        "RTCRtpSender._send_frames_faster is gone (a hook that moved)"
    ]
    unset = _aiortc.Private(_aiortc.RTCRtpSender, "_queue", "never set", set_by="self._queue")
    assert _aiortc.check([unset], []) == ["RTCRtpSender._queue is no longer set (never set)"]
    moved = ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol", "on_frame", "method")
    assert _uvicorn.check((moved,)) == ["uvicorn's HttpToolsProtocol.on_frame() is gone"]
