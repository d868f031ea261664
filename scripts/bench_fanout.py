#!/usr/bin/env python
"""Room fan-out benchmark: how fast a host's ``feature`` reaches N viewers.

    python scripts/bench_fanout.py --viewers 5000 [--clients 4]

Starts ``livesale serve`` (embedded Redis, fresh data directory) and, as the baseline, a minimal
server that relays the host's message with ``websockets.broadcast``. For each, the N viewer
WebSockets are spread over ``--clients`` separate client processes, each with its own event loop,
so the clients are not the bottleneck; the host's socket lives in this process, which features
items in a loop and waits for every viewer to get each one before the next round.

Each viewer is a minimal WebSocket client on a plain asyncio transport (no task, queue or
general-purpose parser per connection), so the client processes leave the CPU to the servers
under test; both servers get the very same clients. A delivery's latency is the time from
the host's send to the moment the viewer's process read the frame off its socket, both taken
from the wall clock (``time.time()``, one clock for every process on one machine). Prints p50/p99
across all deliveries (the percentile of ``_stats.py``, shared by the benchmarks), server memory
per connection (RSS growth / connections), server CPU per delivery, and the ratio to the
baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
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
from _crowd import OPEN_LIMITS
from _stats import percentile, summary

#: A delivery that never arrived counts as this many seconds.
LOST_SECONDS = 10.0


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# A client process: its share of the viewers -------------------------------------------------


WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FEATURED = b'{"type":"featured"'


class Tally:
    """Says ``done R`` on stdout once each of ``viewers`` has its R-th ``featured`` frame."""

    def __init__(self, viewers: int) -> None:
        self.viewers = viewers
        self.complete: list[int] = []

    def arrived(self, nth: int) -> None:
        if nth == len(self.complete):
            self.complete.append(0)
        self.complete[nth] += 1
        if self.complete[nth] == self.viewers:
            print(f"done {nth}", flush=True)


class Viewer(asyncio.Protocol):
    """One viewer socket, as lean as a client can be, so that the client processes cost little
    next to the server: the opening handshake (RFC 6455 §4.1, the accept key checked), then a
    loop over unmasked server frames (§5.2) that notes each ``featured`` frame's arrival,
    answers pings with masked pongs (§5.5.3) and stops at a close frame."""

    def __init__(self, url: str, tally: Tally, opened: asyncio.Future[None]) -> None:
        rest = url.split("://", 1)[1]
        authority, _, path = rest.partition("/")
        key = base64.b64encode(os.urandom(16))
        self.request = (
            b"GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (path.encode(), authority.encode(), key)
        )
        self.accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        self.arrivals: list[float] = []
        self.tally = tally
        self.opened = opened
        self.buffer = b""
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buffer + data if self.buffer else data
        if not self.opened.done():
            head, sep, buf = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = head
                return
            if not head.startswith(b"HTTP/1.1 101 ") or self.accept not in head:
                self.opened.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                self.transport.abort()
                return
            self.opened.set_result(None)
        i, end = 0, len(buf)
        while end - i >= 2:
            opcode, size = buf[i] & 0x0F, buf[i + 1]
            start = i + 2
            if size == 126:
                start += 2
                size = int.from_bytes(buf[i + 2 : i + 4], "big")
            elif size == 127:
                start += 8
                size = int.from_bytes(buf[i + 2 : i + 10], "big")
            if end - start < size:
                break
            if opcode == 0x1:
                if buf.startswith(FEATURED, start):
                    self.arrivals.append(now)
                    self.tally.arrived(len(self.arrivals) - 1)
            elif opcode == 0x9:
                mask = os.urandom(4)
                masked = bytes(b ^ mask[n % 4] for n, b in enumerate(buf[start : start + size]))
                self.transport.write(bytes((0x8A, 0x80 | size)) + mask + masked)
            elif opcode == 0x8:
                self.transport.abort()
                return
            i = start + size
        self.buffer = buf[i:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))


async def client_main(args: argparse.Namespace) -> None:
    """Open this process's viewers, say ``ready``; say ``done R`` once each of them has its
    R-th ``featured`` frame; on ``finish`` (stdin), print every arrival time as JSON."""
    loop = asyncio.get_running_loop()
    host, port = "127.0.0.1", int(args.viewer_url.split(":")[2].split("/")[0])
    sem = asyncio.Semaphore(50)
    tally = Tally(args.viewers)
    viewers: list[Viewer] = []

    async def open_one() -> None:
        async with sem:
            for attempt in range(5):
                opened: asyncio.Future[None] = loop.create_future()
                try:
                    _, viewer = await loop.create_connection(
                        lambda o=opened: Viewer(args.viewer_url, tally, o), host, port
                    )
                    await asyncio.wait_for(opened, 30)
                    viewers.append(viewer)
                    return
                except Exception:  # refused, reset or a failed handshake: retry
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)

    await asyncio.gather(*(open_one() for _ in range(args.viewers)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_at_ready = usage.ru_utime + usage.ru_stime
    print("ready", flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    await stdin.readline()  # "finish"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_at_ready
    print(json.dumps({"cpu": cpu, "arrivals": [v.arrivals for v in viewers]}), flush=True)
    for v in viewers:
        if v.transport is not None:
            v.transport.abort()


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
                    {"type": "featured", "seq": 0, "sku": sku, "at": 0}, separators=(",", ":")
                )
                broadcast(clients, frame)
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=4096, backlog=4096):
        await asyncio.Future()


# The orchestrator --------------------------------------------------------------------------


async def drive(args: argparse.Namespace, pid: int, viewer_url: str, host_url: str) -> Any:
    """Spread the viewers over the client processes, feature items, gather every arrival."""
    import websockets

    shares = [args.viewers // args.clients] * args.clients
    for i in range(args.viewers % args.clients):
        shares[i] += 1
    rss_before = rss_kib(pid)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            "--viewers",
            str(share),
            "--viewer-url",
            viewer_url,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            limit=1 << 26,  # the arrivals come back as one JSON line
        )
        for share in shares
        if share
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 300)
            if line.strip() != b"ready":
                raise SystemExit(f"a client process failed: {line!r}")
        host = await websockets.connect(host_url, compression=None, max_size=None)
        await asyncio.sleep(2)  # snapshots delivered, presence settled
        done = [0] * len(procs)

        async def follow(i: int) -> None:
            stdout = procs[i].stdout
            assert stdout is not None
            while True:
                line = await stdout.readline()
                if not line.startswith(b"done "):
                    return
                done[i] = int(line.split()[1]) + 1

        followers = [asyncio.create_task(follow(i)) for i in range(len(procs))]
        sent: list[float] = []
        cpu_before = cpu_seconds(pid)
        for n in range(args.rounds + args.warmup):
            sku = f"{args.sku_prefix}{n % args.skus}"
            sent.append(time.time())
            await host.send(json.dumps({"type": "feature", "sku": sku}))
            deadline = time.monotonic() + LOST_SECONDS
            while min(done) <= n and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            await asyncio.sleep(args.interval)
        cpu = cpu_seconds(pid) - cpu_before
        rss_after = rss_kib(pid)
        for task in followers:
            task.cancel()
        arrivals: list[list[float]] = []
        client_cpu = 0.0
        for proc in procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"finish\n")
            await proc.stdin.drain()
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                if line.startswith(b"{"):
                    report = json.loads(line)
                    arrivals.extend(report["arrivals"])
                    client_cpu += report["cpu"]
                    break
                if not line:
                    raise SystemExit("a client process ended without its arrivals")
        await host.close()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    latencies: list[float] = []
    for n in range(args.warmup, len(sent)):  # warm-up rounds are not counted
        rnd = [times[n] - sent[n] if n < len(times) else LOST_SECONDS for times in arrivals]
        latencies.extend(rnd)
        if args.verbose:
            print(
                f"    round {n}: {summary(rnd, pcts=(50,), scale=1000, largest=True)}",
                file=sys.stderr,
            )
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "deliveries": len(latencies),
        "lost": sum(1 for times in arrivals for n in range(len(times), len(sent))),
        "kib_per_conn": (rss_after - rss_before) / (args.viewers + 1),
        "cpu_us_per_delivery": cpu / (len(sent) * args.viewers) * 1e6,
        "client_cpu_us_per_delivery": client_cpu / (len(sent) * args.viewers) * 1e6,
    }


def run_drive(args: argparse.Namespace, pid: int, viewer_url: str, host_url: str) -> Any:
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    return runner(drive(args, pid, viewer_url, host_url))


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        print(f"  (server {proc.pid} ignored SIGTERM for 30 s; killed)", file=sys.stderr)
        proc.kill()
        proc.wait()


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
        log = open(args.server_log, "ab") if args.server_log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "livesale", "serve", "--port", str(port), "--data-dir", data]
            + OPEN_LIMITS,
            stdout=log,
            stderr=log,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", proc)
            key = (Path(data) / CLI_KEY_FILE).read_text().strip()
            with httpx.Client(base_url=base, timeout=30) as http:
                http.headers["Authorization"] = f"Bearer {key}"
                for n in range(args.skus):
                    product = {
                        "sku": f"{args.sku_prefix}{n}",
                        "title": f"Item {n}",
                        "price": {"amount": 1000, "currency": "EUR"},
                        "stock": 100,
                    }
                    http.post("/api/products", json=product).raise_for_status()
                show = http.post("/api/shows", json={"title": "Bench", "host_name": "B"}).json()
                lineup = [{"sku": f"{args.sku_prefix}{n}"} for n in range(args.skus)]
                http.put(f"/api/shows/{show['id']}/lineup", json=lineup).raise_for_status()
                http.post(f"/api/shows/{show['id']}/start").raise_for_status()
                token = http.post("/api/viewers", json={"nickname": "bench"}).json()["token"]
            ws = f"ws://127.0.0.1:{port}/ws/shows/{show['id']}?token="
            return run_drive(args, proc.pid, ws + token, ws + show["host_token"])
        finally:
            stop(proc)


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
        return run_drive(args, proc.pid, url, url)
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument("--verbose", action="store_true", help="print every round's figures")
    parser.add_argument("--server-log", help="append livesale's output to this file")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--viewer-url", help=argparse.SUPPRESS)
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
    load = os.getloadavg()
    print(
        f"room fan-out: {args.viewers} viewers over {args.clients} client processes, "
        f"{args.rounds} features (+{args.warmup} warm-up); "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    ours = bench_livesale(args)
    base = bench_baseline(args)
    for name, r in (("livesale", ours), ("websockets.broadcast", base)):
        print(
            f"  {name:22} p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   "
            f"max {r['max_ms']:7.1f} ms   {r['kib_per_conn']:5.1f} KiB/conn   "
            f"CPU/delivery: server {r['cpu_us_per_delivery']:4.1f} us, "
            f"clients {r['client_cpu_us_per_delivery']:4.1f} us   "
            f"({r['deliveries']} deliveries, {r['lost']} lost)"
        )
    print(
        f"  ratio livesale/baseline: p50 {ours['p50_ms'] / base['p50_ms']:.2f}x   "
        f"p99 {ours['p99_ms'] / base['p99_ms']:.2f}x   "
        f"memory {ours['kib_per_conn'] / max(base['kib_per_conn'], 0.1):.2f}x"
    )
    load = os.getloadavg()
    print(f"  load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
