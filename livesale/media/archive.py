"""A show's recording as the merchant manages it: how big it is, and deleting it.

* ``GET /api/shows/{id}/recording``: its segments, bytes on disk, length and last write;
* ``DELETE /api/shows/{id}/recording``: the files go (refused while the show is live: the
  recorder is writing). The replay then answers ``404``; the line-up's replay sales are the
  show's own setting (``PATCH /api/shows/{id}``) and are not touched.

Recordings are also deleted by age (``--keep-recordings``), by the recorder's pruning.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from livesale import errors, http
from livesale import services as svc
from livesale.media.recording import ALL, LIVE, SHOW_ID, VOD, read_playlist
from livesale.shows import SHOWS


class RecordingInfo(msgspec.Struct, frozen=True):
    """A show's recording on disk. ``ended``: its VOD playlist is written (the replay)."""

    show_id: str
    ended: bool
    segments: int
    bytes: int
    duration_s: float
    updated_at: float


def _info(show_id: str, directory: Path) -> RecordingInfo:
    """What is on disk for ``show_id``; :class:`NotFound` when nothing is."""
    if not directory.is_dir() or directory.is_symlink():
        raise errors.NotFound(f"show {show_id} has no recording")
    files = [f for f in directory.iterdir() if f.is_file()]
    stats = [f.stat() for f in files]
    ended = (directory / VOD).is_file()
    # The whole list: the VOD once ended, else every segment so far (the live playlist is a
    # window; a recording made before all.m3u8 existed has only its index).
    names = [VOD] if ended else [ALL, LIVE]
    segments = []
    for name in names:
        try:
            segments = read_playlist((directory / name).read_text())
            break
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise errors.StoreError(f"the recording's playlist cannot be read: {exc}") from exc
    return RecordingInfo(
        show_id=show_id,
        ended=ended,
        segments=len(segments),
        bytes=sum(s.st_size for s in stats),
        duration_s=round(sum(s.duration for s in segments), 3),
        updated_at=max((s.st_mtime for s in stats), default=directory.stat().st_mtime),
    )


async def _directory(request: Request) -> tuple[str, Path]:
    """The show's id and recording directory, once the caller is the merchant and the show
    exists."""
    services = svc.of(request)
    await services.keys.merchant(request)
    show_id = request.path_params["show_id"]
    await services.get(SHOWS).get(show_id)  # 404 for an unknown show
    if not SHOW_ID.fullmatch(show_id):
        raise errors.NotFound(f"show {show_id} has no recording")
    return show_id, services.settings.recordings_dir / show_id


@http.endpoint(
    "A show's recording on disk: segments, bytes, length, last write",
    auth="merchant",
    response=RecordingInfo,
    errors=(404,),
)
async def get_recording(request: Request) -> Response:
    show_id, directory = await _directory(request)
    info = await asyncio.to_thread(_info, show_id, directory)
    return http.json_response(info)


@http.endpoint(
    "Delete a show's recording (its replay goes with it); refused while the show is live",
    auth="merchant",
    response=RecordingInfo,
    errors=(404, 409),
)
async def delete_recording(request: Request) -> Response:
    show_id, directory = await _directory(request)
    show = await svc.of(request).get(SHOWS).get(show_id)
    if show.state == "live":
        raise errors.InvalidTransition(
            f"show {show_id} is live and being recorded; end it first", state="live"
        )
    info = await asyncio.to_thread(_info, show_id, directory)
    await asyncio.to_thread(shutil.rmtree, directory)
    return http.json_response(info)


routes: list[BaseRoute] = [
    Route("/api/shows/{show_id}/recording", get_recording, methods=["GET"]),
    Route("/api/shows/{show_id}/recording", delete_recording, methods=["DELETE"]),
]
