"""HLS of every recorded show, plain files any HTTP cache or CDN can carry.

* ``GET /hls/{show_id}/index.m3u8``: the live playlist (the newest half minute of segments
  while the show is on, and ``#EXT-X-ENDLIST`` once it has ended), cached for a second;
* ``GET /hls/{show_id}/vod.m3u8``: the whole show, once it has ended (``404`` before);
* ``GET /hls/{show_id}/init-N.mp4`` and ``seg-N.m4s``: never change once written, so cached
  for a year as ``immutable`` (RFC 8246).

Only names the recorder writes (:data:`livesale.media.recording.FILE_NAME`) under a show id
that can be one (:data:`~livesale.media.recording.SHOW_ID`) are served: anything else, a
traversal attempt included, is a ``404`` problem. Every answer, problems too, carries
``Access-Control-Allow-Origin: *`` (players on other origins; :class:`livesale.media.routes.Cors`).
"""

from __future__ import annotations

import os
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from livesale import errors, http
from livesale import services as svc
from livesale.media.recording import (
    CHAPTERS,
    FILE_NAME,
    LIVE,
    SHOW_ID,
    VOD,
    read_marks,
    read_playlist,
)
from livesale.shows import SHOWS

PLAYLIST = "application/vnd.apple.mpegurl"
#: Segments and init segments never change once written.
IMMUTABLE = "public, max-age=31536000, immutable"
#: The live playlist changes every segment; a player polls it about once per target duration.
LIVE_CACHE = "public, max-age=1"
#: The VOD playlist of an ended show does not change (until the recording is deleted).
VOD_CACHE = "public, max-age=3600"
_TYPES = {".m3u8": PLAYLIST, ".mp4": "video/mp4", ".m4s": "video/iso.segment"}


def _not_found(detail: str) -> Response:
    """A ``404`` problem a cache keeps for as long as a live playlist: players poll the live
    playlist before the first segment is written, and a CDN in front answers those polls."""
    response = http.problem_response(errors.NotFound(detail))
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = LIVE_CACHE
    return response


@http.endpoint(
    "A recorded show's HLS: index.m3u8 (live), vod.m3u8 (after the end), init and segments",
    response_media_type=PLAYLIST,
)
async def hls_file(request: Request) -> Response:
    """One file of a show's recording, with its content type and caching."""
    show_id = request.path_params["show_id"]
    name = request.path_params["name"]
    if not SHOW_ID.fullmatch(show_id) or not FILE_NAME.fullmatch(name):
        return _not_found("no such recording file")
    path = svc.of(request).settings.recordings_dir / show_id / name
    try:
        stat = os.stat(path)
    except OSError:
        if name == VOD:
            return _not_found(f"show {show_id} has no replay (not recorded, or not ended yet)")
        return _not_found(f"show {show_id} has no recording file {name}")
    ext = os.path.splitext(name)[1]
    cache = LIVE_CACHE if name == LIVE else VOD_CACHE if name == VOD else IMMUTABLE
    headers = {"Cache-Control": cache, "Access-Control-Allow-Origin": "*"}
    if name in (LIVE, VOD):
        # The recorder replaces a playlist whole (a rename) while players read it: read it in
        # one go, so that the answer is the old playlist or the new one, never the new one's
        # bytes under the old one's Content-Length (a file response stats, then reads).
        try:
            data = await run_in_threadpool(path.read_bytes)
        except OSError:
            return _not_found(f"show {show_id} has no recording file {name}")
        return Response(data, media_type=PLAYLIST, headers=headers)  # HEAD: uvicorn sends no body
    return FileResponse(
        path,
        stat_result=stat,
        media_type=_TYPES[ext],
        headers=headers,
    )


class Chapter(msgspec.Struct, frozen=True):
    """One featured interval of the replay: where the host explained ``sku``."""

    sku: str
    title: str
    start_s: float
    end_s: float


class Replay(msgspec.Struct, frozen=True):
    playlist: str
    duration_s: float
    chapters: list[Chapter]


def chapters(marks: list[dict[str, Any]], duration: float, titles: dict[str, str]) -> list[Chapter]:
    """Each featured interval in time order: from its mark to the next mark (an unfeature or
    another item) or the end; zero-length ones (two features at once) left out."""
    ordered = sorted(marks, key=lambda m: float(m["at_s"]))
    found: list[Chapter] = []
    for n, mark in enumerate(ordered):
        sku = mark["sku"]
        if not isinstance(sku, str):
            continue
        start = min(float(mark["at_s"]), duration)
        end = float(ordered[n + 1]["at_s"]) if n + 1 < len(ordered) else duration
        end = min(end, duration)
        if end > start:
            found.append(Chapter(sku, titles.get(sku, sku), round(start, 3), round(end, 3)))
    return found


@http.endpoint(
    "A show's replay: its VOD playlist, length and chapters by product",
    response=Replay,
    errors=(404,),
)
async def replay(request: Request) -> Response:
    """An ended, recorded show's replay: ``404`` for an unknown show, or one with none."""
    show_id = request.path_params["show_id"]
    shows = svc.of(request).get(SHOWS)
    lineup = await shows.lineup(show_id)
    directory = svc.of(request).settings.recordings_dir / show_id
    try:
        segments = read_playlist((directory / VOD).read_text())
    except (OSError, ValueError) as exc:
        raise errors.NotFound(
            f"show {show_id} has no replay (not recorded, or not ended yet)"
        ) from exc
    try:
        marks = read_marks((directory / CHAPTERS).read_bytes())
    except FileNotFoundError:
        marks = []
    except (OSError, ValueError) as exc:
        raise errors.StoreError(f"the replay's chapters cannot be read: {exc}") from exc
    duration = round(sum(s.duration for s in segments), 3)
    titles = {item.sku: item.title for item in lineup.items}
    return http.json_response(
        Replay(
            playlist=f"/hls/{show_id}/{VOD}",
            duration_s=duration,
            chapters=chapters(marks, duration, titles),
        )
    )


async def hls_missing(request: Request) -> Response:
    """Any other path under ``/hls/``: a ``404`` problem."""
    return _not_found("no such recording file")


routes: list[BaseRoute] = [
    Route("/api/shows/{show_id}/replay", replay, methods=["GET"]),
    Route("/hls/{show_id}/{name}", hls_file, methods=["GET", "HEAD"]),
    Route("/hls/{rest:path}", hls_missing, methods=["GET", "HEAD"], include_in_schema=False),
]
