"""The HLS routes over a real server: content types, caching, CORS, and 404 for anything the
recorder did not write."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from livesale.config import Settings
from livesale.media.recording import _write
from tests.conftest import LiveServer
from tests.media.test_recording import recorded_show
from tests.raw_http import split_head

SHOW = "sh_recorded"


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """Recordings live in a ``--media-dir`` of their own, which holds one recorded show."""
    return Settings(
        data_dir=tmp_path / "data",
        media_dir=tmp_path / "media",
        redis_url=redis_url,
        payments=("test", "manual"),
    )


@pytest.fixture
def recorded(settings: Settings) -> Path:
    """5 s of a show recorded by the recorder into the media directory, ended."""

    recorded_show(settings, SHOW, 5.0)
    return settings.recordings_dir / SHOW


def raw_get(server: LiveServer, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``target`` exactly as written (an HTTP client would normalise ``..`` away)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = split_head(head)
    return status, headers, body


def test_playlists_and_segments_carry_their_types_and_caching(
    recorded: Path, server: LiveServer
) -> None:
    """Playlists are ``application/vnd.apple.mpegurl`` (live: 1 s cache), the init segment
    ``video/mp4`` and segments ``video/iso.segment``, both immutable; CORS on all."""
    with server.client() as http:
        live = http.get(f"/hls/{SHOW}/index.m3u8")
        vod = http.get(f"/hls/{SHOW}/vod.m3u8")
        for response in (live, vod):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
            assert response.headers["access-control-allow-origin"] == "*"
        assert live.headers["cache-control"] == "public, max-age=1"
        assert vod.headers["cache-control"] == "public, max-age=3600"
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod.text
        names = [line for line in vod.text.splitlines() if line and not line.startswith("#")]
        assert names and all(name.startswith("seg-") for name in names)
        init = http.get(f"/hls/{SHOW}/init-1.mp4")
        assert init.headers["content-type"] == "video/mp4"
        assert init.content == (recorded / "init-1.mp4").read_bytes()
        assert init.content[4:8] == b"ftyp"
        for name in names:
            segment = http.get(f"/hls/{SHOW}/{name}")
            assert segment.status_code == 200
            assert segment.headers["content-type"] == "video/iso.segment"
            assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert segment.headers["access-control-allow-origin"] == "*"
            assert segment.content[4:8] == b"moof"
        head = http.head(f"/hls/{SHOW}/{names[0]}")
        assert head.status_code == 200 and head.content == b""


def test_unknown_shows_files_and_traversal_get_404_problems(
    recorded: Path, server: LiveServer, settings: Settings
) -> None:
    """Unknown shows and segments, names the recorder never writes and every traversal
    attempt are ``404`` problems with CORS; nothing outside the recordings is served."""
    (settings.recordings_dir / "secret.txt").write_text("not for anyone")
    with server.client() as http:
        for path in (
            "/hls/sh_nobody/index.m3u8",
            f"/hls/{SHOW}/seg-999.m4s",
            f"/hls/{SHOW}/init-9.mp4",
            f"/hls/{SHOW}/.index.m3u8.part",
            f"/hls/{SHOW}/all.m3u8",
            f"/hls/{SHOW}/secret.txt",
            f"/hls/{SHOW}",
            "/hls/",
        ):
            response = http.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/problem+json", path
            assert response.json()["status"] == 404
            assert response.headers["access-control-allow-origin"] == "*", path
            # A CDN keeps it as briefly as a live playlist (polls before the first segment).
            assert response.headers["cache-control"] == "public, max-age=1", path
        refused = http.post(f"/hls/{SHOW}/index.m3u8")
        assert refused.status_code == 405
        assert refused.headers["access-control-allow-origin"] == "*"
    for target in (
        f"/hls/{SHOW}/../secret.txt",
        f"/hls/{SHOW}/..%2Fsecret.txt",
        f"/hls/{SHOW}/%2e%2e%2fsecret.txt",
        "/hls/../media/secret.txt",
        "/hls/..%2F..%2Fdata%2Flivesale.db/index.m3u8",
        f"/hls/{SHOW}/%2Fetc%2Fpasswd",
    ):
        status, _, body = raw_get(server, target)
        assert status in (400, 404), (target, status)
        assert b"not for anyone" not in body and b"SQLite" not in body, target


def test_a_playlist_rewritten_while_it_is_read_is_served_whole(
    recorded: Path, server: LiveServer
) -> None:
    """The recorder replaces the live playlist (a rename) while players poll it: every answer
    is one version or the other, whole, with its own length; never cut, never overlong."""
    short = (recorded / "index.m3u8").read_bytes()
    long = short + b"#EXT-X-PROGRAM-DATE-TIME:2030-01-01T00:00:00.000Z\n" * 40
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            for version in (long, short):
                _write(recorded / "index.m3u8", version)

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        with server.client() as http:
            for _ in range(300):
                response = http.get(f"/hls/{SHOW}/index.m3u8")
                assert response.status_code == 200
                assert response.content in (short, long)
                assert response.headers["content-length"] == str(len(response.content))
            head = http.head(f"/hls/{SHOW}/index.m3u8")
            assert head.status_code == 200 and head.content == b""
            assert int(head.headers["content-length"]) in (len(short), len(long))
    finally:
        stop.set()
        writer.join()
