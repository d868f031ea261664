"""Benchmark: the pass-through relay against aiortc's MediaRelay (decode + re-encode per viewer).

    python scripts/bench_relay.py --viewers 10

One publisher sends the moving test pattern (640x480, 30 fps, ~1.2 Mbit/s VP8, a keyframe every
2 s) to a relay process pinned to one CPU. The pattern carries sensor-like grain, so that the
encoder really spends the bitrate, as on a camera's picture (the bare pattern needs less than
half of it); the script prints the bitrate the relay forwarded to each viewer.

N viewers watch: N - 1 of them, spread over separate processes, count the frames they receive
(RTP packets carrying the marker bit, after SRTP) without decoding them or running aiortc's
receive path, so that two cores can host 40 of them; the last one is a *latency probe* that
receives like a browser (a frame is complete on its marker bit), decodes every frame and reads
back the capture time the publisher painted into the picture, so capture-to-decode latency
(encode, both hops through the relay, decode) is measured end to end.

The relay's CPU is measured as CPU seconds of its process over the measurement window
(``getrusage``), not wall time. Then the same load runs through aiortc's ``MediaRelay`` (decode +
re-encode per viewer) as the baseline, and two ratios are printed: CPU per viewer, and CPU per
frame actually delivered. Once the baseline saturates its core it delivers fewer frames than
asked, so its CPU per viewer understates its cost; the per-delivered-frame ratio is the fairer
comparison.

After the window, ``--late-joins`` viewers join the running show one after the other, each
decoding with aiortc's own receive path as the media tests' viewer does, and the script prints
each one's time from its answer to its first decoded frame (ICE, DTLS and the keyframe it must
wait for: the relay forwards its picture-loss request to the publisher). With
``--keyframe-every 0`` the publisher makes keyframes only when asked, as in the tests, so the
figure shows the request path alone. On the pass-through relay, the last late joiner then stays
while the host leaves and, once the show has paused, publishes again: the script prints the
time from the host's return to that viewer's next decoded frame, on the same connection. The
baseline cannot follow a new publisher, so it has the late-joiner figure only. Percentiles are
those of ``_stats.py``, shared by the benchmarks.

With ``--record`` the publisher sends H.264 and Opus instead, and the pass-through relay runs
twice in the same run, with recording off and on (each show written as fragmented-MP4 HLS to a
temporary directory, muxed in the relay process's writer thread): the difference between the
two is what recording costs, in share of the relay's one core. The baseline is not run then.
``--record-codec vp8`` has the publisher send VP8 instead, which the recording encodes again as
H.264 (``livesale.media.transcode``): the difference is then what that transcode costs.
The recording run also watches the live HLS, beside the WebRTC probe and on the same wall clock
(``--role hls``, on the other core, serving the relay's recording with livesale's own HLS
routes): a poller reloads ``index.m3u8`` every 100 ms, as a low-latency player would, and
fetches each segment as soon as it is listed; a segment's *availability* is the time of the
reload that listed it minus the capture time of its first and of its last frame, read from the
stamps the publisher painted into them. Its ``#EXT-X-PROGRAM-DATE-TIME`` is compared with the
first frame's capture too. And hls.js, as the watch page sets it up (``web/js/hls.js``), plays
the live playlist in headless Chromium: every frame it presents is timed from its capture
(``--no-player`` leaves it out; Chromium shares the other core with the publisher, so on a
two-core machine it can make the publisher late and the WebRTC figures of that run worse).

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
from datetime import datetime
from pathlib import Path
from typing import Any

from _stats import mean, percentile, summary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RELAY_CPU = 0
#: The publisher's video codec and whether it sends audio (``--record``: H.264 and Opus).
CODEC = "vp8"
AUDIO = False
VIEWERS_PER_PROCESS = 10
WIDTH, HEIGHT, FPS, BITRATE = 640, 480, 30, 1_200_000
#: The pass-through hub marks a show paused when its publisher has been silent this long.
PAUSE_AFTER = 2.0


def in_loopback_namespace() -> bool:
    return {name for _, name in socket.if_nameindex()} == {"lo"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the relay process -----------------------------------------------------------------------


def run_relay(mode: str, port: int, record_dir: str | None) -> None:
    """Serve ``POST /publish``, ``POST /play`` (SDP in, SDP out) and ``GET /cpu``."""
    import uvicorn
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from livesale.media.hub import HubTimings, MediaHub
    from livesale.media.ice import IceConfig, rtc_configuration, use_host_addresses
    from livesale.media.recording import Recordings
    from livesale.server import tune_gc

    os.sched_setaffinity(0, {RELAY_CPU})
    ice = IceConfig(hosts=("127.0.0.1",))
    state: dict[str, Any] = {"pcs": set(), "track": None, "relay": MediaRelay()}
    # The counting viewers bypass their receivers, so they send no receiver reports: keep the
    # hub from closing them as silent during the run.
    recordings = Recordings(Path(record_dir), keep_days=0) if record_dir else None
    hub = MediaHub(
        ice,
        timings=HubTimings(silence_timeout=3600.0, pause_after=PAUSE_AFTER),
        recordings=recordings,
    )

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
        return {
            "forwarded": hub.stats.video_frames_forwarded,
            "bytes": hub.stats.bytes_forwarded,
            "publishing": hub.stats.publishers
            if mode == "passthrough"
            else int(bool(state["track"])),
        }

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        use_host_addresses(["127.0.0.1"])
        if mode == "passthrough":
            await hub.start()
        tune_gc()  # as ``livesale serve`` does once it has started
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


async def run_publisher(port: int, seconds: float, keyframe_every: float) -> None:
    import httpx

    from livesale.media.ice import use_host_addresses
    from tests.media.peers import Publisher

    use_host_addresses(["127.0.0.1"])
    publisher = Publisher(
        CODEC,
        audio=AUDIO,
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        bitrate=BITRATE,
        keyframe_every=keyframe_every or None,
        stamp=True,
        grain=True,
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

    use_host_addresses(["127.0.0.1"])
    counts = [0] * count
    pcs = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for index in range(count):
            pc = RTCPeerConnection(rtc_configuration(IceConfig()))
            transceiver = pc.addTransceiver("video", direction="recvonly")

            async def counted(data: bytes, arrival_time_ms: int, index: int = index) -> None:
                # Decrypted RTP: the marker bit ends a frame (RFC 3550 §5.1, RFC 7741 §4.1).
                if data[1] & 0x80:
                    counts[index] += 1

            # Count whole frames as they leave SRTP; aiortc's receive path is skipped.
            transceiver.receiver.transport._handle_rtp_data = counted
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


async def run_probe(port: int, start_at: float, end_at: float) -> None:
    """One viewer that decodes every frame and reads its capture time back; prints JSON."""
    import av
    import httpx
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from livesale.media._aiortc import install_assembler
    from livesale.media.ice import IceConfig, rtc_configuration, use_host_addresses
    from livesale.media.jitter import VideoAssembler
    from tests.media.peers import BLOCK, read_stamp, wall_ms

    use_host_addresses(["127.0.0.1"])
    decoder = av.CodecContext.create("libvpx" if CODEC == "vp8" else "h264", "r")
    modulo = 1 << (WIDTH // BLOCK)
    latencies: list[int] = []
    result = {"frames": 0, "undecodable": 0}
    window = [False]

    def decode(data: bytes, rtp_timestamp: int, ssrc: int) -> None:
        try:
            frames = decoder.decode(av.Packet(data))
        except av.error.FFmpegError:
            if window[0]:
                result["undecodable"] += 1
            return
        now = wall_ms()
        for frame in frames:
            if window[0]:
                result["frames"] += 1
                latencies.append((now - read_stamp(frame)) % modulo)

    pc = RTCPeerConnection(rtc_configuration(IceConfig()))
    transceiver = pc.addTransceiver("video", direction="recvonly")
    # Release each frame on its marker bit, as browsers do, and decode it right away.
    install_assembler(transceiver.receiver, VideoAssembler(decode, lambda: None))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        await pc.setLocalDescription(await pc.createOffer())
        response = await client.post("/play", content=pc.localDescription.sdp)
        response.raise_for_status()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    window[0] = True
    await asyncio.sleep(max(0.0, end_at - time.time()))
    window[0] = False
    found = {"frames": [result["frames"]], "undecodable": result["undecodable"]}
    print(json.dumps({**found, "latencies": latencies}), flush=True)
    await pc.close()


async def run_late(port: int, joins: int, reconnect: bool, keyframe_every: float) -> None:
    """Late joiners, then a host that drops and comes back; prints JSON (seconds).

    Each of ``joins`` viewers joins the running show, one after the other, and decodes with
    aiortc's own receive path, as the media tests' viewer does; its time runs from the answer
    to its first decoded frame (ICE, DTLS, the keyframe it has to wait for). With
    ``reconnect``, one of them stays while this process publishes in place of the publisher,
    leaves, and after the show has paused publishes again: the figure is the time from the
    host's return to that viewer's next decoded frame, over the same connection.
    """
    import httpx

    from livesale.media.ice import use_host_addresses
    from tests.media.peers import Publisher, Viewer

    use_host_addresses(["127.0.0.1"])
    first_frames: list[float] = []
    resumes: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

        async def post(path: str, offer: str) -> str:
            response = await client.post(path, content=offer)
            response.raise_for_status()
            return response.text

        async def until(check: Any, what: str, timeout: float = 120) -> None:
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline:
                    raise SystemExit(f"late viewer: {what} not seen within {timeout} s")
                await asyncio.sleep(0.005)  # the figures' resolution

        viewers: list[Viewer] = []
        for _ in range(joins):
            viewer = Viewer(audio=False)
            viewers.append(viewer)
            await viewer.start(lambda offer: post("/play", offer))
            await until(lambda v=viewer: v.first_frame_at is not None, "a first frame")
            assert viewer.answered_at is not None and viewer.first_frame_at is not None
            first_frames.append(viewer.first_frame_at - viewer.answered_at)
            await asyncio.sleep(1)
        if reconnect and viewers:
            stays = viewers[-1]

            def host() -> Publisher:
                return Publisher(
                    CODEC, audio=AUDIO, width=WIDTH, height=HEIGHT, fps=FPS, bitrate=BITRATE,
                    keyframe_every=keyframe_every or None, stamp=True, grain=True,
                )  # fmt: skip

            replacing = host()  # takes over from the publisher process
            await replacing.start(lambda offer: post("/publish", offer))
            before = stays.frames
            await until(lambda: stays.frames > before + 10, "the replacing host's frames")
            await replacing.close()  # the host's tab goes away ...
            await asyncio.sleep(PAUSE_AFTER + 1.5)  # ... long enough for the show to pause
            before = stays.frames
            returned = time.monotonic()
            back = host()
            await back.start(lambda offer: post("/publish", offer))
            await until(lambda: stays.frames > before, "a frame after the host's return")
            resumes.append(time.monotonic() - returned)
            await back.close()
        for viewer in viewers:
            await viewer.close()
    print(json.dumps({"first_frame": first_frames, "resume": resumes}), flush=True)


# -- the HLS watcher process -----------------------------------------------------------------

SHOW = "bench"
#: The watch page's player setup, whose hold-back behind the live edge the player figure has.
HLS_JS = ROOT / "web" / "js" / "hls.js"
#: How often the watcher reloads the live playlist, as a low-latency player would.
POLL_EVERY = 0.1
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
#: The watch page's own ``playHls`` (web/js/hls.js) in a bare page; every presented frame's
#: capture time is read back from the stamp the publisher painted into its top block row
#: (``tests/media/peers.py``: one bit per 16-pixel block, white for 1), on the machine's wall
#: clock, as the WebRTC probe does.
PLAYER_PAGE = """<!doctype html>
<meta charset="utf-8">
<video id="video" muted playsinline></video>
<canvas id="stamp" width="WIDTH" height="16" hidden></canvas>
<script type="module">
import { playHls } from "/static/js/hls.js";
// hls.js, the watch page's player wherever the browser has no HLS of its own (Safari has).
const canPlayType = HTMLMediaElement.prototype.canPlayType;
HTMLMediaElement.prototype.canPlayType = function (type) {
  return type === "application/vnd.apple.mpegurl" ? "" : canPlayType.call(this, type);
};
const video = document.getElementById("video");
const canvas = document.getElementById("stamp").getContext("2d", { willReadFrequently: true });
const MODULO = 2 ** COLUMNS;
const bench = { delays: [], counting: false, waiting: 0, fatal: null };
window.bench = bench;
function captured() {
  canvas.drawImage(video, 0, 0, WIDTH, 16, 0, 0, WIDTH, 16);
  const pixels = canvas.getImageData(0, 0, WIDTH, 16).data;
  let value = 0;
  for (let column = 0; column < COLUMNS; column++) {
    let total = 0;
    for (const y of [6, 10]) {
      for (let x = column * 16 + 6; x < column * 16 + 10; x++) total += pixels[(y * WIDTH + x) * 4];
    }
    value = value * 2 + (total / 8 > 128 ? 1 : 0);
  }
  return value;
}
function presented() {
  if (bench.counting) bench.delays.push((((Date.now() - captured()) % MODULO) + MODULO) % MODULO);
  video.requestVideoFrameCallback(presented);
}
video.requestVideoFrameCallback(presented);
video.addEventListener("waiting", () => { if (bench.counting) bench.waiting += 1; });
await playHls(video, "/hls/SHOW/index.m3u8", { onFatal: (why) => { bench.fatal = why; } });
</script>
"""


def hold_back() -> float:
    """The ``liveSyncDuration`` the watch page gives hls.js (seconds behind the live edge)."""
    import re

    found = re.search(r"liveSyncDuration:\s*([\d.]+)", HLS_JS.read_text())
    if found is None:
        raise SystemExit(f"{HLS_JS.relative_to(ROOT)} sets no liveSyncDuration")
    return float(found.group(1))


def signed(value: int, modulo: int) -> int:
    """``value`` modulo ``modulo``, in -modulo/2 .. modulo/2."""
    return (value + modulo // 2) % modulo - modulo // 2


async def run_hls(record_dir: str, start_at: float, end_at: float, player: bool) -> None:
    """Serve the recording with livesale's own HLS routes, watch it, print JSON (ms).

    A poller reloads ``index.m3u8`` every :data:`POLL_EVERY` seconds and fetches each segment
    as soon as it is listed; a segment's *availability delay* is the time of the reload that
    listed it minus the capture time of its first (and of its last) frame, read from the
    stamps the publisher painted into them. With ``player``, hls.js in headless Chromium plays
    the live playlist through the watch page's ``playHls`` and reports, for every frame it
    presents, the time since that frame's capture.
    """
    import io
    from types import SimpleNamespace

    import av
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from livesale.config import Settings
    from livesale.media import hls
    from livesale.media.recording import DATE_TAG
    from tests.media.peers import BLOCK, read_stamp

    columns = WIDTH // BLOCK
    modulo = 1 << columns
    page = (
        PLAYER_PAGE.replace("WIDTH", str(WIDTH))
        .replace("COLUMNS", str(columns))
        .replace("SHOW", SHOW)
    )

    async def player_page(request: Any) -> HTMLResponse:
        return HTMLResponse(page)

    app = Starlette(
        routes=[
            *hls.routes,
            Mount("/static", StaticFiles(directory=ROOT / "web")),
            Route("/player", player_page),
        ]
    )
    # The HLS routes read one setting: where the recordings are.
    settings = Settings(data_dir=Path(record_dir) / "data", media_dir=Path(record_dir))
    app.state.services = SimpleNamespace(settings=settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    listed: dict[str, dict[str, Any]] = {}
    inits: dict[str, bytes] = {}

    async def poll(client: httpx.AsyncClient) -> None:
        missing_before = False  # a playlist already there lists segments made before we looked
        first = True
        while time.time() < end_at:
            polled = time.time()
            response = await client.get(f"/hls/{SHOW}/index.m3u8")
            if response.status_code != 200:
                missing_before = True
            else:
                at = time.time()
                init, date = "", None
                for line in response.text.splitlines():
                    if line.startswith('#EXT-X-MAP:URI="'):
                        init = line[len('#EXT-X-MAP:URI="') : -1]
                    elif line.startswith(DATE_TAG):
                        date = line[len(DATE_TAG) :]
                    elif line and not line.startswith("#"):
                        if line not in listed:
                            if init not in inits:
                                inits[init] = (await client.get(f"/hls/{SHOW}/{init}")).content
                            data = (await client.get(f"/hls/{SHOW}/{line}")).content
                            listed[line] = {
                                "listed": at,
                                "date": date,
                                "init": init,
                                "data": data,
                                "counted": (missing_before or not first)
                                and start_at <= at <= end_at,
                            }
                        date = None
                first = False
            await asyncio.sleep(max(0.0, polled + POLL_EVERY - time.time()))

    played: dict[str, Any] = {}

    async def play() -> None:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tab = await browser.new_page()
            await tab.goto(f"{base}/player")
            await asyncio.sleep(max(0.0, start_at - time.time()))
            await tab.evaluate("window.bench.counting = true")
            await asyncio.sleep(max(0.0, end_at - time.time()))
            played.update(await tab.evaluate("window.bench.counting = false, window.bench"))
            await browser.close()

    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await asyncio.gather(poll(client), *([play()] if player else []))
    finally:
        server.should_exit = True
        await serving
    first_frame: list[int] = []
    last_frame: list[int] = []
    dated: list[int] = []
    for found in listed.values():
        if not found["counted"]:
            continue
        with av.open(io.BytesIO(inits[found["init"]] + found["data"])) as container:
            frames = list(container.decode(video=0))
        at = round(found["listed"] * 1000)
        first_frame.append(signed(at - read_stamp(frames[0]), modulo))
        last_frame.append(signed(at - read_stamp(frames[-1]), modulo))
        if found["date"] is not None:
            date = round(datetime.fromisoformat(found["date"]).timestamp() * 1000)
            dated.append(signed(date - read_stamp(frames[0]), modulo))
    print(
        json.dumps(
            {
                "first_frame": first_frame,
                "last_frame": last_frame,
                "date_after_capture": dated,
                "player": [signed(d, modulo) for d in played.get("delays", [])],
                "player_waiting": played.get("waiting", 0),
                "player_fatal": played.get("fatal"),
            }
        ),
        flush=True,
    )


# -- the controller --------------------------------------------------------------------------


def measure(
    mode: str,
    viewers: int,
    warmup: float,
    window: float,
    late_joins: int,
    keyframe_every: float,
    record_dir: str | None = None,
    player: bool = False,
) -> dict[str, Any]:
    import httpx

    port = free_port()
    me = [sys.executable, str(Path(__file__).resolve()), "--codec", CODEC]
    if AUDIO:
        me.append("--audio")
    recording = ["--record-dir", record_dir] if record_dir else []
    relay = subprocess.Popen(
        [*me, "--role", "relay", "--mode", mode, "--port", str(port), *recording]
    )
    others: list[subprocess.Popen[str]] = []
    watcher: subprocess.Popen[str] | None = None
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
        keyframes = ["--keyframe-every", str(keyframe_every)]
        others.append(
            subprocess.Popen(
                [*me, "--role", "publisher", "--port", str(port),
                 "--seconds", str(total + 120 + 10 * late_joins), *keyframes],
                text=True,
            )
        )  # fmt: skip
        # Viewers join once the publisher's track is there (its process may take a while to
        # start on a busy machine), then the warm-up runs.
        while not httpx.get(f"http://127.0.0.1:{port}/cpu", timeout=10).json()["publishing"]:
            if time.monotonic() > deadline + 60:
                raise SystemExit("the publisher never connected to the relay")
            time.sleep(0.1)
        time.sleep(1)
        start_at = time.time() + warmup + viewers * 0.15
        end_at = start_at + window
        times = ["--start-at", str(start_at), "--end-at", str(end_at)]
        if record_dir:
            # Watches the HLS from the start, so that it sees each segment the moment it is
            # listed (the window's segments are the ones counted).
            watcher = subprocess.Popen(
                [*me, "--role", "hls", "--record-dir", record_dir, *times,
                 *(["--player"] if player else [])],
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        others.append(
            subprocess.Popen(
                [*me, "--role", "probe", "--port", str(port), *times],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        counting = viewers - 1
        processes = math.ceil(counting / VIEWERS_PER_PROCESS)
        for p in range(processes):
            share = counting // processes + (1 if p < counting % processes else 0)
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
        latencies: list[int] = []
        undecodable = 0
        for proc in others[1:]:
            out, _ = proc.communicate(timeout=120)
            found = json.loads(out.strip().splitlines()[-1])
            frames += found["frames"]
            latencies += found.get("latencies", [])
            undecodable += found.get("undecodable", 0)
        watched: dict[str, Any] = {}
        if watcher is not None:
            out, _ = watcher.communicate(timeout=180)
            if watcher.returncode == 0:
                watched = json.loads(out.strip().splitlines()[-1])
            else:
                print(f"  {mode}: the HLS watcher failed (exit {watcher.returncode})", flush=True)
        late: dict[str, list[float]] = {"first_frame": [], "resume": []}
        if late_joins:
            # After the window, so that the joins do not disturb the CPU figures; the publisher
            # process keeps sending until they are done (its ``--seconds`` has room for them; it
            # is stopped with the others below).
            reconnect = ["--reconnect"] if mode == "passthrough" else []
            done = subprocess.run(
                [*me, "--role", "late", "--port", str(port), "--count", str(late_joins),
                 *keyframes, *reconnect],
                stdout=subprocess.PIPE,
                text=True,
                timeout=180 + 10 * late_joins,
            )  # fmt: skip
            if done.returncode == 0:
                late = json.loads(done.stdout.strip().splitlines()[-1])
            else:
                print(f"  {mode}: the late joiners failed (exit {done.returncode})", flush=True)
    finally:
        everyone = [*others, *([watcher] if watcher else []), relay]
        for proc in everyone:
            if proc.poll() is None:
                proc.terminate()
        for proc in everyone:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    cpu = last["cpu"] - first["cpu"]
    wall = last["wall"] - first["wall"]
    # The publisher's bitrate, as forwarded (the pass-through relay counts what it forwards).
    sent = last["bytes"] - first["bytes"]
    bitrate = sent * 8 / wall / viewers if sent else math.nan
    fps = [f / window for f in frames]
    delivered = sum(frames) * wall / window
    return {
        "mode": mode,
        "viewers": viewers,
        "cpu_share": cpu / wall,
        "cpu_per_viewer": cpu / wall / viewers,
        "cpu_per_frame": cpu / delivered if delivered else math.inf,
        "fps_mean": mean(fps) if fps else 0.0,
        "fps_min": min(fps) if fps else 0.0,
        "connected": len(frames),
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "latencies": latencies,
        "hls": watched,
        "latency_samples": len(latencies),
        "undecodable": undecodable,
        "bitrate": bitrate,
        "late_first_frame": late["first_frame"],
        "resume": late["resume"],
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"  {result['mode']:<12} {result['viewers']:>3} viewers: relay CPU "
        f"{result['cpu_share'] * 100:5.1f} % of one core, "
        f"{result['cpu_per_viewer'] * 100:5.2f} % per viewer; "
        f"frames/s per viewer mean {result['fps_mean']:4.1f}, min {result['fps_min']:4.1f}; "
        f"{result['connected']} viewers counted",
        flush=True,
    )
    print(
        f"  {'':<12} capture-to-decode p50 {result['latency_p50']:.0f} ms, "
        f"p95 {result['latency_p95']:.0f} ms ({result['latency_samples']} frames, "
        f"{result['undecodable']} undecodable); relay CPU per delivered frame "
        f"{result['cpu_per_frame'] * 1e6:.0f} µs",
        flush=True,
    )
    if not math.isnan(result["bitrate"]):
        print(
            f"  {'':<12} video forwarded to each viewer: {result['bitrate'] / 1e6:.2f} Mbit/s",
            flush=True,
        )
    if result["late_first_frame"]:
        joins = result["late_first_frame"]
        print(
            f"  {'':<12} late joiner, answer to first decoded frame: "
            f"{summary(joins, pcts=(50,), scale=1000, digits=0, largest=True)} "
            f"({len(joins)} joins)",
            flush=True,
        )
    if result["resume"]:
        print(
            f"  {'':<12} host back after a pause, to the viewer's next decoded frame: "
            f"{result['resume'][0] * 1000:.0f} ms (same connection, no renegotiation)",
            flush=True,
        )


def report_hls(result: dict[str, Any]) -> None:
    """The HLS delays of a recording run, beside the same run's WebRTC one (one wall clock)."""
    watched = result["hls"]
    if not watched:
        return

    def line(what: str, values: list[float], note: str = "") -> None:
        figures = summary(values, pcts=(50, 95), digits=0) if values else "no samples"
        print(f"  {'':<12} {what:<58} {figures}{note}", flush=True)

    print(f"  {'':<12} delay from capture, on the machine's wall clock:", flush=True)
    line("WebRTC, to the probe's decoded frame", result["latencies"])
    segments = len(watched["first_frame"])
    polled = f" ({segments} segments, playlist reloaded every {POLL_EVERY * 1000:.0f} ms)"
    line("HLS available (listed), from a segment's first frame", watched["first_frame"], polled)
    line("HLS available (listed), from a segment's last frame", watched["last_frame"])
    held = hold_back()
    line(
        f"HLS player's floor: last frame's + liveSyncDuration {held:g} s",
        [d + held * 1000 for d in watched["last_frame"]],
    )
    if watched["player"] or watched["player_fatal"]:
        note = f" ({len(watched['player'])} frames, {watched['player_waiting']} stalls)"
        if watched["player_fatal"]:
            note += f"; playback failed: {watched['player_fatal']}"
        line("HLS player, hls.js in Chromium, to a presented frame", watched["player"], note)
    line(
        "(#EXT-X-PROGRAM-DATE-TIME minus the first frame's capture)",
        watched["date_after_capture"],
    )


def compare_recording(load: tuple[int, float, float, int, float], player: bool) -> int:
    """The pass-through relay with recording off, then on; prints what recording adds."""
    import tempfile

    # hls.js starts once a few segments are listed, 4 s behind the live edge, and Chromium
    # takes a while to start on a busy core: the window opens once it plays (in both runs,
    # so that they stay alike).
    viewers, warmup, *rest = load
    load = (viewers, max(warmup, 12.0), *rest)

    off = measure("passthrough", *load)
    off["mode"] = "no record"
    report(off)
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as directory:
        on = measure("passthrough", *load, record_dir=directory, player=player)
        on["mode"] = "recording"
        report(on)
        report_hls(on)
        files = [p for p in Path(directory).rglob("*") if p.is_file()]
        segments = [p for p in files if p.suffix == ".m4s"]
        written = sum(p.stat().st_size for p in files)
    added = on["cpu_share"] - off["cpu_share"]
    print(
        f"  recording adds {added * 100:.1f} % of a core for one show "
        f"({off['cpu_share'] * 100:.1f} % -> {on['cpu_share'] * 100:.1f} %; "
        f"{len(segments)} segments, {written / 1e6:.1f} MB written)",
        flush=True,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--late-joins",
        type=int,
        default=3,
        help="viewers joining after the window, timed to their first decoded frame (0: none)",
    )
    parser.add_argument(
        "--keyframe-every",
        type=float,
        default=2.0,
        help="seconds between the publisher's periodic keyframes (0: only when asked, by PLI)",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="H.264 and Opus, and the relay's CPU with recording off and on (no baseline)",
    )
    parser.add_argument(
        "--record-codec",
        choices=["h264", "vp8"],
        default="h264",
        help="with --record: the publisher's video (vp8: the recording encodes it again as H.264)",
    )
    parser.add_argument(
        "--no-player",
        action="store_true",
        help="with --record: no hls.js player in Chromium (the HLS figures from polling only)",
    )
    parser.add_argument("--reconnect", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--player", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--codec", choices=["vp8", "h264"], default="vp8", help=argparse.SUPPRESS)
    parser.add_argument("--audio", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--record-dir", help=argparse.SUPPRESS)
    parser.add_argument(
        "--role",
        choices=["controller", "relay", "publisher", "viewers", "probe", "late", "hls"],
    )
    parser.add_argument("--mode", choices=["passthrough", "mediarelay"], default="passthrough")
    parser.add_argument("--port", type=int)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--start-at", type=float, default=0)
    parser.add_argument("--end-at", type=float, default=0)
    args = parser.parse_args()
    global CODEC, AUDIO
    CODEC, AUDIO = (args.record_codec, True) if args.record else (args.codec, args.audio)

    if args.role == "relay":
        run_relay(args.mode, args.port, args.record_dir)
        return 0
    if args.role == "publisher":
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1 - RELAY_CPU})
        asyncio.run(run_publisher(args.port, args.seconds, args.keyframe_every))
        return 0
    if args.role == "viewers":
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1 - RELAY_CPU})
        asyncio.run(run_viewers(args.port, args.count, args.start_at, args.end_at))
        return 0
    if args.role == "probe":
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1 - RELAY_CPU})
        asyncio.run(run_probe(args.port, args.start_at, args.end_at))
        return 0
    if args.role == "hls":
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1 - RELAY_CPU})  # Chromium too: it inherits the mask
        asyncio.run(run_hls(args.record_dir, args.start_at, args.end_at, args.player))
        return 0
    if args.role == "late":
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1 - RELAY_CPU})
        asyncio.run(run_late(args.port, args.count, args.reconnect, args.keyframe_every))
        return 0

    if not in_loopback_namespace():
        script = 'ip link set lo up && exec "$0" "$@"'
        command = ["unshare", "-n", "sh", "-c", script, sys.executable, *sys.argv]
        return subprocess.call(command)

    keyframes = (
        f"a keyframe every {args.keyframe_every:g} s"
        if args.keyframe_every
        else "keyframes on PLI only"
    )
    media = f"{CODEC.upper().replace('H264', 'H.264')} + Opus" if args.record else "VP8"
    print(
        f"relay benchmark: {args.viewers} viewers, {WIDTH}x{HEIGHT} {FPS} fps "
        f"~{BITRATE / 1e6:.1f} Mbit/s {media} ({keyframes}), relay pinned to CPU {RELAY_CPU}, "
        f"{args.window:.0f} s window, then {args.late_joins} late joiners",
        flush=True,
    )
    load = (args.viewers, args.warmup, args.window, args.late_joins, args.keyframe_every)
    if args.record:
        return compare_recording(load, not args.no_player)
    passthrough = measure("passthrough", *load)
    report(passthrough)
    if args.skip_baseline:
        return 0
    baseline = measure("mediarelay", *load)
    report(baseline)
    ratio = baseline["cpu_per_viewer"] / passthrough["cpu_per_viewer"]
    per_frame = baseline["cpu_per_frame"] / passthrough["cpu_per_frame"]
    saturated = baseline["cpu_share"] > 0.9
    print(
        f"  baseline / pass-through CPU per viewer: {ratio:.1f}x"
        + (" (baseline saturated its core: understated)" if saturated else ""),
        flush=True,
    )
    print(
        f"  baseline / pass-through CPU per delivered frame: {per_frame:.1f}x"
        " (the fairer ratio: it counts only frames that reached a viewer)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
