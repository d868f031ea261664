"""The merchant's view of a show's recording: its size on disk, and deleting it (API and
``livesale show recording``) over a real server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from livesale.config import Settings
from tests.conftest import LiveServer
from tests.media.test_recording import recorded_show
from tests.test_cli import Cli


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return replace(settings, media_dir=tmp_path / "media")


def test_the_merchant_sees_and_deletes_a_recording(
    server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``GET`` gives segments, bytes and length; ``DELETE`` is refused while live, then takes
    the files and the replay with them; both need the merchant's key."""
    cli = Cli(server, capsys)
    with server.client(headers=server.merchant) as merchant, server.client() as anyone:
        show = merchant.post("/api/shows", json={"title": "Kept", "host_name": "Mia"}).json()
        show_id = show["id"]
        assert merchant.get(f"/api/shows/{show_id}/recording").status_code == 404
        assert merchant.post(f"/api/shows/{show_id}/start").status_code == 200
        recorded_show(server.settings, show_id, 6.0)
        refused = merchant.delete(f"/api/shows/{show_id}/recording")
        assert refused.status_code == 409, refused.text
        assert merchant.post(f"/api/shows/{show_id}/end").status_code == 200

        info = merchant.get(f"/api/shows/{show_id}/recording")
        assert info.status_code == 200, info.text
        data = info.json()
        assert data["ended"] is True and data["segments"] >= 2
        assert 5.0 <= data["duration_s"] <= 7.0
        directory = server.settings.recordings_dir / show_id
        assert data["bytes"] == sum(f.stat().st_size for f in directory.iterdir())
        assert anyone.get(f"/api/shows/{show_id}/recording").status_code == 401
        assert anyone.delete(f"/api/shows/{show_id}/recording").status_code == 401
        assert anyone.get(f"/api/shows/{show_id}/replay").status_code == 200

        code, out, err = cli("show", "recording", show_id)
        assert code == 0, err
        assert f"Recording of show {show_id}: {data['segments']} segments" in out
        code, out, err = cli("show", "recording", show_id, "--delete")
        assert code == 0, err
        assert f"Deleted the recording of show {show_id}" in out
        assert not directory.exists()
        assert anyone.get(f"/api/shows/{show_id}/replay").status_code == 404
        assert anyone.get(f"/hls/{show_id}/vod.m3u8").status_code == 404
        code, _, err = cli("show", "recording", show_id, "--delete")
        assert code != 0 and "no recording" in err
        assert merchant.get("/api/shows/sh_nothing/recording").status_code == 404
