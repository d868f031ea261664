"""A throw-away nginx in front of livesale, configured with ``deploy/nginx/livesale.conf`` as an
operator installs it: its placeholders filled in as ``envsubst`` fills them, and its ``server``
line repeated once per livesale node, as ``deploy/README.md`` says for several nodes. Everything
nginx writes stays in its prefix directory; its access log says, for each request, its status,
its cache status and the node that answered."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from livesale.config import in_ci
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx" / "livesale.conf"
#: Deadline for nginx to listen: it only catches a hang.
DEADLINE = 180.0
#: The deployed file's one ``server`` line of the upstream block.
SERVER_LINE = "    server ${LIVESALE_UPSTREAM}"

#: The test's nginx.conf around the deployed file: everything nginx writes stays in its prefix,
#: its log says for each request whether it went to livesale.
MAIN_CONF = """\
{user}
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format cdn '$request_method $request_uri $status $upstream_cache_status $upstream_addr';
    access_log {prefix}/access.log cdn;
    log_subrequest on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/livesale.conf;
}}
"""


def nginx_path() -> str:
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"  # not on a non-root PATH
    if found is None:
        if in_ci():
            pytest.fail("nginx is missing (scripts/test installs Debian's nginx as root)")
        pytest.skip("nginx is missing: install Debian's nginx (scripts/test does as root)")
    return found


def render(values: dict[str, str], nodes: list[str]) -> str:
    """``deploy/nginx/livesale.conf`` with its ``${LIVESALE_...}`` placeholders filled in, as
    ``envsubst`` fills them for an operator, and its ``server`` line once per node of
    ``nodes`` (``host:port``)."""
    text = CONF.read_text()
    line = next(x for x in text.splitlines() if x.startswith(SERVER_LINE))
    text = text.replace(line, "\n".join(line.replace("${LIVESALE_UPSTREAM}", n) for n in nodes))
    values = {**values, "LIVESALE_UPSTREAM": nodes[0]}  # what envsubst puts in the comments
    for name, value in values.items():
        text = text.replace(f"${{{name}}}", value)
    assert "${LIVESALE_" not in text, "a placeholder of livesale.conf is not filled in"
    return text


@dataclass
class Nginx:
    """A throw-away nginx (``-p prefix -g 'daemon off;'``) in front of the livesale nodes
    ``upstreams`` (``host:port`` each)."""

    binary: str
    prefix: Path
    upstreams: list[str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> Nginx:
        """Listen on ``port`` of 127.0.0.1 (0: a free one)."""
        self.port = port or free_port()
        self.prefix.mkdir(parents=True)
        (self.prefix / "livesale.conf").write_text(
            render(
                {
                    "LIVESALE_LISTEN": f"127.0.0.1:{self.port}",
                    "LIVESALE_SERVER_NAME": "127.0.0.1",
                    "LIVESALE_CACHE_DIR": str(self.prefix / "cache"),
                },
                self.upstreams,
            )
        )
        # As root, nginx's workers would run as nobody, who cannot enter pytest's private
        # temporary directory to write the cache: they stay root in this throw-away instance.
        user = "user root;" if os.geteuid() == 0 else ""
        conf = self.prefix / "nginx.conf"
        conf.write_text(MAIN_CONF.format(user=user, prefix=self.prefix))
        with open(self.prefix / "stderr.log", "wb") as stderr:
            self.proc = subprocess.Popen(
                [self.binary, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + DEADLINE
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}:\n{self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx is not listening:\n{self.errors()}") from None
                time.sleep(0.05)

    def errors(self) -> str:
        return "".join(
            (self.prefix / name).read_text(errors="replace")
            for name in ("stderr.log", "error.log")
            if (self.prefix / name).exists()
        )

    def log(self) -> list[list[str]]:
        """nginx's access log: method, URI, status, cache status, upstream address."""
        return [line.split() for line in (self.prefix / "access.log").read_text().splitlines()]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def balancing(ports: list[int], prefix: Path) -> Iterator[Nginx]:
    """nginx in front of the livesale nodes on ``ports`` of 127.0.0.1, stopped afterwards."""
    proxy = Nginx(nginx_path(), prefix, [f"127.0.0.1:{port}" for port in ports])
    try:
        yield proxy.start()
    finally:
        proxy.stop()
