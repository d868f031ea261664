#!/usr/bin/env python
"""Slow-loris drill: does a crowd dribbling requests from one address slow everyone else down?

    python scripts/drill_slowloris.py [--loris 400] [--requests 200]

Starts ``livesale serve`` (embedded Redis, fresh data directory), then times ``GET /healthz``
on new connections from 127.0.0.3: first alone (the same-run baseline), then while ``--loris``
connections from 127.0.0.2 dribble one byte a second, half of them into their headers and half
into a body. Prints p50/p99 of both runs, how many loris connections were refused at once (429,
past ``--max-connections-per-address``) and how many the server had cut off by the end (the
header and body deadlines). Linux only: 127.0.0.0/8 is all loopback there.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

from _stats import summary

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
SLOW_BODY = b"POST /api/viewers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n{"


def serve(port: int, data: str, body_timeout: float) -> subprocess.Popen[bytes]:
    argv = ["serve", "--port", str(port), "--data-dir", data, "--body-timeout", str(body_timeout)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "livesale", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            timed_get(port)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def timed_get(port: int, source: str = "127.0.0.3") -> float:
    """Seconds from connecting to the end of one answer."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), 30, source_address=(source, 0)) as sock:
        sock.sendall(REQUEST)
        while sock.recv(65536):
            pass
    return time.perf_counter() - started


def timings(port: int, count: int) -> list[float]:
    return [timed_get(port) for _ in range(count)]


def loris(port: int, count: int, stop: threading.Event, tally: dict[str, int]) -> None:
    """Open ``count`` dribbling connections and keep them dribbling until ``stop``."""
    socks = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), 30, source_address=("127.0.0.2", 0))
        sock.sendall(SLOW_HEAD if i % 2 else SLOW_BODY)
        socks.append(sock)
    while socks and not stop.wait(1.0):
        for sock in list(socks):
            try:
                if select.select([sock], [], [], 0)[0]:
                    data = sock.recv(65536)
                    if data.startswith(b"HTTP/1.1 429"):
                        tally["refused"] += 1
                    if not data:
                        raise ConnectionResetError
                sock.send(b"x")
            except OSError:
                tally["cut"] += 1
                socks.remove(sock)
                sock.close()
    for sock in socks:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loris", type=int, default=400, help="dribbling connections")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per run")
    parser.add_argument("--body-timeout", type=float, default=10.0)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        proc = serve(port, data, args.body_timeout)
        try:
            baseline = timings(port, args.requests)
            stop, tally = threading.Event(), {"refused": 0, "cut": 0}
            crowd = threading.Thread(target=loris, args=(port, args.loris, stop, tally))
            crowd.start()
            time.sleep(2.0)  # the crowd is connected and dribbling
            attacked = timings(port, args.requests)
            time.sleep(max(args.body_timeout, 5.0) + 2.0)  # past both deadlines
            stop.set()
            crowd.join()
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"baseline       {summary(baseline, scale=1000, largest=True)}")
    print(f"under {args.loris} loris {summary(attacked, scale=1000, largest=True)}")
    print(f"loris refused at once (429): {tally['refused']}, cut off by the server: {tally['cut']}")
    print(f"server file descriptors at the end: {fds}")


if __name__ == "__main__":
    main()
