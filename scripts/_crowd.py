"""What the benchmarks and drills share about crowds: they run every "buyer" from one machine,
so a server measuring them turns the per-address limits off (the drill's baseline does too)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from livesale.config import RATE_LIMITS

#: ``livesale serve`` options with no per-address caps and rate limits no crowd here reaches.
OPEN_LIMITS = [
    "--address-cap-multiple",
    "0",
    "--default-limit-per-buyer",
    "0",
    "--max-connections-per-address",
    "1000000",
    "--crowd-per-address",
    "1000000",
]
for _action in RATE_LIMITS:
    OPEN_LIMITS += ["--rate-limit", f"{_action}=1000000/1"]


def serve(data: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """``livesale serve`` on a free loopback port with ``options``; the process and its URL,
    once it answers ``/healthz``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "livesale", "serve", "--port", str(port), "--data-dir", str(data)]
        + ["--log-level", "warning", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.1)
