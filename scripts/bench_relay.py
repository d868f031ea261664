"""Benchmark: the pass-through relay against aiortc's MediaRelay (decode + re-encode per viewer).

    python scripts/bench_relay.py --viewers 10

One publisher sends the moving test pattern (640x480, 30 fps, ~1.2 Mbit/s VP8, a keyframe every
2 s) to a relay process pinned to one CPU; N viewers, spread over separate processes, count the
frames they receive without decoding them. The relay's CPU is measured as CPU seconds of its
process over the measurement window (``getrusage``), not wall time. Then the same load runs
through aiortc's ``MediaRelay`` as the baseline, and the ratio is printed.

Every peer talks over 127.0.0.1 only: the script re-executes itself inside a loopback-only
network namespace (``unshare -n``) when it is not already in one, so it needs root.
The test pattern publisher is shared with the media tests (``tests/media/peers.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RELAY_CPU = 0
VIEWERS_PER_PROCESS = 10
WIDTH, HEIGHT, FPS, BITRATE = 640, 480, 30, 1_200_000


def in_loopback_namespace() -> bool:
    return {name for _, name in socket.if_nameindex()} == {"lo"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the relay process -----------------------------------------------------------------------


def run_relay(mode: str, port: int) -> None:
    """Serve ``POST /publish``, ``POST /play`` (SDP in, SDP out) and ``GET /cpu``."""
    import uvicorn
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from livesale.media.hub import MediaHub
    from livesale.media.ice import IceConfig, rtc_configuration, use_host_addresses

    os.sched_setaffinity(0, {RELAY_CPU})
    ice = IceConfig(hosts=("127.0.0.1",))
    state: dict[str, Any] = {"pcs": set(), "track": None, "relay": MediaRelay()}
    hub = MediaHub(ice)

    async def answer(pc: RTCPeerConnection, offer: str) -> str:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def publish(request: Request) -> Response:
        offer = (await request.body()).decode()
        if mode == "passthrough":
            return Response((await hub.publish("bench", offer)).answer)
        pc = RTCPeerConnection(rtc_configuration(ice))
        state["pcs"].add(pc)

        @pc.on("track")
        def on_track(track: Any) -> None:
            state["track"] = track

        return Response(await answer(pc, offer))

    async def play(request: Request) -> Response:
        offer = (await request.body()).decode()
        if mode == "passthrough":
            return Response((await hub.play("bench", offer)).answer)
        pc = RTCPeerConnection(rtc_configuration(ice))
        state["pcs"].add(pc)
        pc.addTrack(state["relay"].subscribe(state["track"]))
        return Response(await answer(pc, offer))

    async def cpu(request: Request) -> Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return JSONResponse(
            {"cpu": usage.ru_utime + usage.ru_stime, "wall": time.monotonic(), **stats()}
        )

    def stats() -> dict[str, int]:
        return {"forwarded": hub.stats.video_frames_forwarded}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        use_host_addresses(["127.0.0.1"])
        if mode == "passthrough":
            await hub.start()
        yield
        if mode == "passthrough":
            await hub.aclose()
        for pc in state["pcs"]:
            await pc.close()

    app = Starlette(
        routes=[
            Route("/publish", publish, methods=["POST"]),
            Route("/play", play, methods=["POST"]),
            Route("/cpu", cpu, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the publisher process -------------------------------------------------------------------


async def run_publisher(port: int, seconds: float) -> None:
    import httpx

    from livesale.media.ice import use_host_addresses
    from tests.media.peers import Publisher

    use_host_addresses(["127.0.0.1"])
    publisher = Publisher(
        "vp8", audio=False, width=WIDTH, height=HEIGHT, fps=FPS, bitrate=BITRATE, keyframe_every=2
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

        async def signal(offer: str) -> str:
            response = await client.post("/publish", content=offer)
            response.raise_for_status()
            return response.text

        await publisher.start(signal)
    await asyncio.sleep(seconds)
    await publisher.close()


# -- a viewer process ------------------------------------------------------------------------


async def run_viewers(port: int, count: int, start_at: float, end_at: float) -> None:
    """Connect ``count`` viewers, count frames between the two wall-clock instants, print JSON."""
    import httpx
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from livesale.media.ice import IceConfig, rtc_configuration, use_host_addresses
    from livesale.media.internals import install_assembler
    from livesale.media.jitter import VideoAssembler

    use_host_addresses(["127.0.0.1"])
    counts = [0] * count
    pcs = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for index in range(count):
            pc = RTCPeerConnection(rtc_configuration(IceConfig()))
            transceiver = pc.addTransceiver("video", direction="recvonly")

            def counted(data: bytes, ts: int, ssrc: int, index: int = index) -> None:
                counts[index] += 1

            # Count whole frames where the receiver would decode them; nothing is decoded.
            install_assembler(transceiver.receiver, VideoAssembler(counted, lambda: None))
            await pc.setLocalDescription(await pc.createOffer())
            response = await client.post("/play", content=pc.localDescription.sdp)
            response.raise_for_status()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
            pcs.append(pc)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    before = list(counts)
    await asyncio.sleep(max(0.0, end_at - time.time()))
    after = list(counts)
    print(json.dumps({"frames": [b - a for a, b in zip(before, after, strict=True)]}), flush=True)
    for pc in pcs:
        await pc.close()


# -- the controller --------------------------------------------------------------------------


def measure(mode: str, viewers: int, warmup: float, window: float) -> dict[str, Any]:
    import httpx

    port = free_port()
    me = [sys.executable, str(Path(__file__).resolve())]
    relay = subprocess.Popen([*me, "--role", "relay", "--mode", mode, "--port", str(port)])
    others: list[subprocess.Popen[str]] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/cpu", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        total = warmup + window + 5 + viewers * 0.3
        others.append(
            subprocess.Popen(
                [*me, "--role", "publisher", "--port", str(port), "--seconds", str(total + 10)],
                text=True,
            )
        )
        time.sleep(2)
        start_at = time.time() + warmup + viewers * 0.15
        end_at = start_at + window
        processes = math.ceil(viewers / VIEWERS_PER_PROCESS)
        for p in range(processes):
            share = viewers // processes + (1 if p < viewers % processes else 0)
            others.append(
                subprocess.Popen(
                    [*me, "--role", "viewers", "--port", str(port), "--count", str(share),
                     "--start-at", str(start_at), "--end-at", str(end_at)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )  # fmt: skip
        time.sleep(max(0.0, start_at - time.time()))
        first = httpx.get(f"http://127.0.0.1:{port}/cpu", timeout=10).json()
        time.sleep(max(0.0, end_at - time.time()))
        last = httpx.get(f"http://127.0.0.1:{port}/cpu", timeout=10).json()
        frames: list[int] = []
        for proc in others[1:]:
            out, _ = proc.communicate(timeout=120)
            frames += json.loads(out.strip().splitlines()[-1])["frames"]
    finally:
        for proc in [*others, relay]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*others, relay]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    cpu = last["cpu"] - first["cpu"]
    wall = last["wall"] - first["wall"]
    fps = [f / window for f in frames]
    return {
        "mode": mode,
        "viewers": viewers,
        "cpu_share": cpu / wall,
        "cpu_per_viewer": cpu / wall / viewers,
        "fps_mean": sum(fps) / len(fps) if fps else 0.0,
        "fps_min": min(fps) if fps else 0.0,
        "connected": len(frames),
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"  {result['mode']:<12} {result['viewers']:>3} viewers: relay CPU "
        f"{result['cpu_share'] * 100:5.1f} % of one core, "
        f"{result['cpu_per_viewer'] * 100:5.2f} % per viewer; "
        f"frames/s per viewer mean {result['fps_mean']:4.1f}, min {result['fps_min']:4.1f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--role", choices=["controller", "relay", "publisher", "viewers"])
    parser.add_argument("--mode", choices=["passthrough", "mediarelay"], default="passthrough")
    parser.add_argument("--port", type=int)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--start-at", type=float, default=0)
    parser.add_argument("--end-at", type=float, default=0)
    args = parser.parse_args()

    if args.role == "relay":
        run_relay(args.mode, args.port)
        return 0
    if args.role == "publisher":
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1 - RELAY_CPU})
        asyncio.run(run_publisher(args.port, args.seconds))
        return 0
    if args.role == "viewers":
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1 - RELAY_CPU})
        asyncio.run(run_viewers(args.port, args.count, args.start_at, args.end_at))
        return 0

    if not in_loopback_namespace():
        script = 'ip link set lo up && exec "$0" "$@"'
        command = ["unshare", "-n", "sh", "-c", script, sys.executable, *sys.argv]
        return subprocess.call(command)

    print(
        f"relay benchmark: {args.viewers} viewers, {WIDTH}x{HEIGHT} {FPS} fps "
        f"~{BITRATE / 1e6:.1f} Mbit/s VP8, relay pinned to CPU {RELAY_CPU}, "
        f"{args.window:.0f} s window",
        flush=True,
    )
    passthrough = measure("passthrough", args.viewers, args.warmup, args.window)
    report(passthrough)
    if args.skip_baseline:
        return 0
    baseline = measure("mediarelay", args.viewers, args.warmup, args.window)
    report(baseline)
    ratio = baseline["cpu_per_viewer"] / passthrough["cpu_per_viewer"]
    saturated = baseline["cpu_share"] > 0.9
    print(
        f"  baseline / pass-through CPU per viewer: {ratio:.1f}x"
        + (" (baseline saturated its core: the true ratio is higher)" if saturated else ""),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
