#!/usr/bin/env python
"""Room fan-out benchmark: how fast a host's ``feature`` reaches N viewers.

    python scripts/bench_fanout.py --viewers 5000

Starts ``livesale serve`` (embedded Redis, fresh data directory) and, as the baseline, a minimal
server that relays the host's message with ``websockets.broadcast``. For each, a separate client
process opens N viewer WebSockets plus the host's, then the host features items in a loop; each
delivery's latency is the time from the host's send to the viewer's receipt (one clock: both
ends live in the client process). Prints p50/p99 across all deliveries, server memory per
connection (RSS growth / N) and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def raise_nofile() -> None:
    """Allow enough sockets for N connections on both ends (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# The client process ------------------------------------------------------------------------


async def client_main(args: argparse.Namespace) -> None:
    import websockets

    async def opener(url: str) -> Any:
        for attempt in range(5):
            try:
                return await websockets.connect(
                    url, max_size=None, max_queue=None, compression=None, open_timeout=30
                )
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2)

    sem = asyncio.Semaphore(100)

    async def open_one(url: str) -> Any:
        async with sem:
            return await opener(url)

    rss_before = rss_kib(args.server_pid)
    viewers = await asyncio.gather(*(open_one(args.viewer_url) for _ in range(args.viewers)))
    host = await opener(args.host_url)
    got: dict[str, list[float]] = {}

    async def reader(ws: Any) -> None:
        async for frame in ws:
            now = time.perf_counter()
            if frame.startswith('{"type":"featured"'):
                sku = json.loads(frame)["sku"]
                got.setdefault(sku, []).append(now)

    tasks = [asyncio.create_task(reader(ws)) for ws in viewers]
    await asyncio.sleep(2)  # snapshots delivered, presence settled
    latencies: list[float] = []
    for n in range(args.rounds + 3):
        sku = f"{args.sku_prefix}{n % args.skus}#{n}" if args.baseline else None
        label = sku or f"{args.sku_prefix}{n % args.skus}"
        got.pop(label, None)
        t0 = time.perf_counter()
        await host.send(json.dumps({"type": "feature", "sku": label}))
        deadline = t0 + 10
        while len(got.get(label, ())) < args.viewers and time.perf_counter() < deadline:
            await asyncio.sleep(0.002)
        arrivals = got.get(label, [])
        if n >= 3:  # warm-up rounds are not counted
            latencies.extend(t - t0 for t in arrivals)
            latencies.extend([10.0] * (args.viewers - len(arrivals)))  # lost = 10 s
        await asyncio.sleep(args.interval)
    rss_after = rss_kib(args.server_pid)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in [*viewers, host]), return_exceptions=True)
    print(
        json.dumps(
            {
                "p50_ms": percentile(latencies, 0.50) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "max_ms": max(latencies) * 1000,
                "deliveries": len(latencies),
                "kib_per_conn": (rss_after - rss_before) / (args.viewers + 1),
            }
        )
    )


# The baseline server -----------------------------------------------------------------------


async def baseline_main(port: int) -> None:
    from websockets.asyncio.server import broadcast, serve

    clients: set[Any] = set()

    async def handler(ws: Any) -> None:
        clients.add(ws)
        try:
            async for message in ws:
                sku = json.loads(message)["sku"]
                frame = json.dumps(
                    {"type": "featured", "sku": sku, "seq": 0}, separators=(",", ":")
                )
                broadcast(clients, frame)
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=4096, backlog=4096):
        await asyncio.Future()


# The orchestrator --------------------------------------------------------------------------


def run_client(
    args: argparse.Namespace, pid: int, viewer_url: str, host_url: str, **kw: Any
) -> Any:
    cmd = [
        sys.executable,
        __file__,
        "--client",
        "--viewers",
        str(args.viewers),
        "--rounds",
        str(args.rounds),
        "--interval",
        str(args.interval),
        "--server-pid",
        str(pid),
        "--viewer-url",
        viewer_url,
        "--host-url",
        host_url,
        "--skus",
        str(kw.get("skus", 4)),
        "--sku-prefix",
        kw.get("prefix", "BENCH-"),
    ]
    if kw.get("baseline"):
        cmd.append("--baseline")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"client failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def bench_livesale(args: argparse.Namespace) -> Any:
    from livesale.client import CLI_KEY_FILE

    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "livesale", "serve", "--port", str(port), "--data-dir", data],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", proc)
            key = (Path(data) / CLI_KEY_FILE).read_text().strip()
            with httpx.Client(base_url=base, timeout=30) as http:
                http.headers["Authorization"] = f"Bearer {key}"
                for n in range(4):
                    product = {
                        "sku": f"BENCH-{n}",
                        "title": f"Item {n}",
                        "price": {"amount": 1000, "currency": "EUR"},
                        "stock": 100,
                    }
                    http.post("/api/products", json=product).raise_for_status()
                show = http.post("/api/shows", json={"title": "Bench", "host_name": "B"}).json()
                lineup = [{"sku": f"BENCH-{n}"} for n in range(4)]
                http.put(f"/api/shows/{show['id']}/lineup", json=lineup).raise_for_status()
                http.post(f"/api/shows/{show['id']}/start").raise_for_status()
                token = http.post("/api/viewers", json={"nickname": "bench"}).json()["token"]
            ws = f"ws://127.0.0.1:{port}/ws/shows/{show['id']}?token="
            return run_client(args, proc.pid, ws + token, ws + show["host_token"])
        finally:
            proc.terminate()
            proc.wait(30)


def bench_baseline(args: argparse.Namespace) -> Any:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--baseline-server", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        url = f"ws://127.0.0.1:{port}/"
        return run_client(args, proc.pid, url, url, baseline=True)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--viewer-url", help=argparse.SUPPRESS)
    parser.add_argument("--host-url", help=argparse.SUPPRESS)
    parser.add_argument("--skus", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--sku-prefix", default="BENCH-", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_nofile()
    run: Any = asyncio.run
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        pass
    if args.baseline_server:
        run(baseline_main(args.baseline_server))
        return
    if args.client:
        run(client_main(args))
        return
    print(f"room fan-out: {args.viewers} viewers, {args.rounds} features, one client process")
    ours = bench_livesale(args)
    base = bench_baseline(args)
    for name, r in (("livesale", ours), ("websockets.broadcast", base)):
        print(
            f"  {name:22} p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   "
            f"max {r['max_ms']:7.1f} ms   {r['kib_per_conn']:5.1f} KiB/conn   "
            f"({r['deliveries']} deliveries)"
        )
    print(
        f"  ratio livesale/baseline: p50 {ours['p50_ms'] / base['p50_ms']:.2f}x   "
        f"p99 {ours['p99_ms'] / base['p99_ms']:.2f}x   "
        f"memory {ours['kib_per_conn'] / max(base['kib_per_conn'], 0.1):.2f}x"
    )


if __name__ == "__main__":
    main()
