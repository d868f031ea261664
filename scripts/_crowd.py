"""What the benchmarks and drills share about crowds: they run every "buyer" from one machine,
so a server measuring them turns the per-address limits off (the drill's baseline does too)."""

from __future__ import annotations

from livesale.config import RATE_LIMITS

#: ``livesale serve`` options with no per-address caps and rate limits no crowd here reaches.
OPEN_LIMITS = [
    "--address-cap-multiple",
    "0",
    "--default-limit-per-buyer",
    "0",
    "--max-connections-per-address",
    "1000000",
]
for _action in RATE_LIMITS:
    OPEN_LIMITS += ["--rate-limit", f"{_action}=1000000/1"]
