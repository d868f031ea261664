"""Fixtures for the media tests, and the loopback-only network namespace they run in.

A test marked ``netns`` runs inside a fresh network namespace holding only ``lo``: when pytest
is not already in one, the test re-executes itself as
``unshare -n sh -c 'ip link set lo up && exec python -m pytest <test>'`` and reports the
outcome of that run. No WebRTC packet can reach any address but 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.runner import CallInfo
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from livesale.media.hub import HubTimings, MediaHub
from livesale.media.ice import IceConfig, restore_host_addresses, use_host_addresses

ROOT = Path(__file__).resolve().parents[2]
REEXEC_ENV = "LIVESALE_TEST_NETNS"
#: Seconds the re-executed pytest may take to start (imports, collection) on a busy machine,
#: on top of the test's own timeout.
NAMESPACE_STARTUP = 90.0


def in_loopback_namespace() -> bool:
    """True when the only network interface this process sees is ``lo``."""
    return {name for _, name in socket.if_nameindex()} == {"lo"}


def _run_in_namespace(item: pytest.Item) -> None:
    if os.environ.get(REEXEC_ENV):
        raise RuntimeError("re-executed test still sees interfaces other than lo")
    timeout = float(item.config.getini("timeout") or 120)
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        timeout = float(marker.args[0])
    command = [
        "unshare",
        "-n",
        "sh",
        "-c",
        'ip link set lo up && exec "$0" -m pytest -p no:cacheprovider -q --no-header -rs "$@"',
        sys.executable,
        item.nodeid,
    ]
    env = {**os.environ, REEXEC_ENV: "1"}
    try:
        done = subprocess.run(
            command,
            cwd=item.config.rootpath,
            env=env,
            capture_output=True,
            text=True,
            # The run inside has the same per-test timeout, and its own start-up on top: give
            # it room to report a hang itself (pytest-timeout's stacks, the test's output).
            timeout=timeout + NAMESPACE_STARTUP,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else ""
        raise AssertionError(f"test in network namespace timed out:\n{output[-6000:]}") from exc
    if done.returncode != 0:
        raise AssertionError(
            f"test in network namespace failed (exit {done.returncode}):\n"
            f"{done.stdout[-12000:]}\n{done.stderr[-4000:]}"
        )
    # A skip inside the namespace is a skip here too, never a silent pass.
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    if skipped:
        pytest.skip(skipped[0].split(": ", 1)[-1])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run ``netns`` tests inside ``unshare -n`` unless already in a loopback-only namespace."""
    if item.get_closest_marker("netns") is None or in_loopback_namespace():
        return None
    hook = item.ihook
    # pytest-timeout has armed this item's timer already; the run in the namespace keeps the
    # same timeout itself, and ``_run_in_namespace`` bounds the whole re-execution.
    cancel_timer = getattr(item.config.hook, "pytest_timeout_cancel_timer", None)
    if cancel_timer is not None:
        cancel_timer(item=item)
    hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for when in ("setup", "call", "teardown"):
        call: CallInfo[None] = CallInfo.from_call(
            (lambda: _run_in_namespace(item)) if when == "call" else (lambda: None),
            when=when,  # type: ignore[arg-type]
        )
        report = hook.pytest_runtest_makereport(item=item, call=call)
        hook.pytest_runtest_logreport(report=report)
    # Tear down what earlier in-process tests set up and the next test does not need, as
    # pytest's own protocol would.
    item.session._setupstate.teardown_exact(nextitem)
    hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    """Every peer in this process offers 127.0.0.1 as its only ICE host candidate."""
    assert in_loopback_namespace(), "WebRTC tests must run in a loopback-only namespace"
    use_host_addresses(["127.0.0.1"])
    yield
    restore_host_addresses()


@pytest.fixture
def encoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """aiortc's VP8, H.264 and Opus encoders raise if called: the relay must not transcode.

    The test peers encode with PyAV directly, so only the relay's senders could reach these.
    """
    calls: list[str] = []

    def refuse(name: str) -> Any:
        def encode(self: object, frame: object, force_keyframe: bool = False) -> Any:
            calls.append(name)
            raise AssertionError(f"{name}.encode called: the relay transcoded")

        return encode

    for cls in (Vp8Encoder, H264Encoder, OpusEncoder):
        monkeypatch.setattr(cls, "encode", refuse(cls.__name__))
    return calls


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@pytest.fixture
def decode_failures() -> Iterator[list[str]]:
    """Warnings of aiortc's receivers in this process (a frame the decoder could not use)."""
    failures: list[str] = []
    handler = _Collect(failures)
    logger = logging.getLogger("aiortc.rtcrtpreceiver")
    logger.addHandler(handler)
    yield failures
    logger.removeHandler(handler)


@pytest.fixture
async def hub(loopback_ice: None) -> AsyncIterator[MediaHub]:
    """A started media hub offering 127.0.0.1 only; closed (and checked) after the test.

    Its deadlines are generous: on a busy machine a connection may take seconds to set up and
    a peer's packets may pause for seconds, which must not close a session mid-test."""
    media = MediaHub(
        IceConfig(hosts=("127.0.0.1",)),
        timings=HubTimings(connect_timeout=60.0, silence_timeout=60.0, pause_after=5.0),
    )
    await media.start()
    yield media
    await media.aclose()
    assert media.peer_connections == 0
    assert media.tasks == 0
