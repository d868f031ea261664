"""Running the server: credentials never reach the logs."""

from __future__ import annotations

import logging

import pytest

from livesale.server import quiet_logs


def test_tokens_are_redacted_from_uvicorn_logs(caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn's WebSocket log lines carry the query string; the token in it is redacted."""
    quiet_logs()
    logger = logging.getLogger("uvicorn.error")
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logger.info(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/ws/shows/sh_1?token=host_SECRET"
        )
        logger.info("GET /x?a=1&token=v1.abc.def&b=2")
    text = caplog.text
    assert "host_SECRET" not in text and "v1.abc.def" not in text
    assert "token=<redacted>" in text and "&b=2" in text
