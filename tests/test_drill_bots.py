"""The hostile-crowd drill on a smaller scale: one bot minting tokens from one address
against real buyers each on their own, all clicking Buy at once (scripts/drill_bots.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "drill_bots.py"


def test_every_buyer_gets_a_unit_and_the_bot_its_cap() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--buyers", "20", "--bot-tokens", "120", "--stock", "40"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # Without the per-address limits the bot takes the whole sale...
    assert "no per-address limits: the bot minted 120 tokens and held 40 units" in out
    # ...with them, it holds at most its cap and every buyer gets theirs.
    drill = re.search(r"the bot minted (\d+) of 120 tokens and held (\d+) units \(cap (\d+)\)", out)
    assert drill is not None, out
    minted, held, cap = map(int, drill.groups())
    assert minted < 120 and held <= cap
    assert "buyers held 20 of 20" in out
    assert "every buyer got their unit" in out
