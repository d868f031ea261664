"""axe-core in the browser tests: audit a Playwright page against WCAG 2 A/AA and best practice.

axe-core comes from npm for the tests only (``tests/e2e/axe/package-lock.json``, which
``scripts/test`` installs with ``npm ci``); livesale never serves it.

The pages forbid inline scripts (``script-src 'self'``), so ``page.add_script_tag(content=...)``
would be refused. The source goes in with ``page.evaluate`` instead: Playwright evaluates in the
page's main world over the DevTools protocol, which the page's CSP does not govern. A context with
``bypass_csp=True`` would work too, but it turns the policy off for the whole page, and then
the audit would no longer see the page its buyers get (a style or script the policy refuses
would render in the test and not in the field).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"

#: WCAG 2.0, 2.1 and 2.2 at levels A and AA, and axe's best practices.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa", "best-practice")

#: Impacts an audit must not leave (axe's scale: minor, moderate, serious, critical).
SERIOUS = frozenset({"serious", "critical"})

_RUN = """async ([include, exclude, tags]) => {
    const context = {};
    if (include) context.include = include;
    if (exclude) context.exclude = exclude;
    const results = await window.axe.run(include || exclude ? context : document, {
        runOnly: { type: "tag", values: tags },
        resultTypes: ["violations"],
    });
    return results.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        helpUrl: v.helpUrl,
        description: v.description,
        nodes: v.nodes.map((n) => ({
            target: n.target,
            html: n.html,
            impact: n.impact,
            failureSummary: n.failureSummary,
        })),
    }));
}"""


def installed() -> bool:
    """Whether ``scripts/test`` has installed axe-core."""
    return AXE_JS.is_file()


@cache
def _source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


async def _inject(page: Page) -> None:
    """Load axe into every frame of ``page`` that lacks it (axe audits frames from inside)."""
    source = _source()
    for frame in page.frames:
        if frame.is_detached():
            continue
        if not await frame.evaluate("() => typeof window.axe === 'object'"):
            # A program, not a function: Playwright evaluates it as a script in the frame's
            # main world, where it defines ``window.axe``.
            await frame.evaluate(source)


async def audit(
    page: Page,
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run axe on ``page`` as it is now and return its violations (WCAG 2 A/AA, best practice).

    ``include`` and ``exclude`` are CSS selectors narrowing the audit (the whole document by
    default). Each violation is axe's: ``id``, ``impact``, ``help``, ``helpUrl``,
    ``description`` and ``nodes`` (``target`` selectors, ``html``, ``failureSummary``). The
    caller puts the page in the state to audit first (dialogs open, video playing) and asserts
    on :func:`serious` of the answer, printed with :func:`describe`.
    """
    if not installed():
        raise FileNotFoundError(f"{AXE_JS} is missing: scripts/test installs axe-core")
    await _inject(page)
    violations: list[dict[str, Any]] = await page.evaluate(_RUN, [include, exclude, list(TAGS)])
    return violations


def serious(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The violations of impact ``serious`` or ``critical``."""
    return [v for v in violations if v.get("impact") in SERIOUS]


def describe(violations: list[dict[str, Any]]) -> str:
    """The violations in words a developer can act on: rule, impact, what fails and where."""
    if not violations:
        return "no accessibility violations"
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} — {v['helpUrl']}")
        for node in v["nodes"]:
            target = " ".join(_target(part) for part in node["target"])
            lines.append(f"    {target}: {node['html'][:160]}")
            for reason in (node.get("failureSummary") or "").splitlines():
                lines.append(f"        {reason.strip()}")
    return "\n".join(lines)


def _target(part: Any) -> str:
    # A target is a selector, or a list of them through frames and shadow roots.
    return " >>> ".join(part) if isinstance(part, list) else str(part)
