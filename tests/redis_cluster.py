"""A throw-away Redis Cluster of three masters in a temporary directory, for the cluster tests.

The embedded Redis (a bundled 6.2 server) is one node; a cluster needs Redis 7 for sharded
pub/sub, so this one runs Debian's ``redis-server`` (``/usr/bin/redis-server``, never the bundled
binary nor the system's service). Each node has a directory of its own under one temporary
directory, a free port on ``127.0.0.1`` (and that port + 10000 for the cluster bus), no
persistence, and its log in ``server.log``; ``redis-cli --cluster create`` joins them and hands
out all 16384 slots, no replicas. Redis runs as root happily, unlike PostgreSQL.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

SERVER = Path("/usr/bin/redis-server")
CLI = Path("/usr/bin/redis-cli")
HOST = "127.0.0.1"
#: The cluster bus of a node listens on its port + 10000, which must be a port too.
BUS_OFFSET = 10000
MAX_PORT = 55000
SLOTS = 16384
PING_TIMEOUT = 20.0
FORM_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def binary() -> Path | None:
    """Debian's ``redis-server`` if it is installed and at least Redis 7, else ``None``."""
    if not SERVER.exists():
        return None
    try:
        out = subprocess.run(
            [str(SERVER), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"v=(\d+)\.", out)
    return SERVER if found and int(found.group(1)) >= 7 else None


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port(taken: set[int]) -> int:
    """A free port below :data:`MAX_PORT` whose cluster bus port is free too."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port >= MAX_PORT or {port, port + BUS_OFFSET} & taken:
            continue
        if _free(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free pair of ports for a Redis Cluster node")


class Node:
    """One cluster node: its port, directory and process."""

    def __init__(self, root: Path, port: int) -> None:
        self.port = port
        self.dir = root / str(port)
        self.dir.mkdir()
        self.log = self.dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5, decode_responses=True)

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Cluster:
    """``masters`` Redis nodes on ``127.0.0.1`` joined into one cluster, without replicas."""

    def __init__(self, server: Path, masters: int = 3) -> None:
        self.server = server
        self.masters = masters
        self.root = Path(tempfile.mkdtemp(prefix="livesale-redis-cluster-"))
        taken: set[int] = set()
        self._nodes: list[Node] = []
        for _ in range(masters):
            port = _free_port(taken)
            taken |= {port, port + BUS_OFFSET}
            self._nodes.append(Node(self.root, port))

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """Every node's ``(host, port)``, in the order they were started."""
        return [(HOST, node.port) for node in self._nodes]

    @property
    def url(self) -> str:
        """The URL the server takes for a cluster: its first node as the startup node."""
        return f"redis+cluster://{HOST}:{self._nodes[0].port}"

    def start(self) -> Cluster:
        """Start every node, join them into a cluster and wait until it serves all slots."""
        try:
            for node in self._nodes:
                self._spawn(node)
            for node in self._nodes:
                self._wait_for_ping(node)
            self._create()
            self._wait_for_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, node: Node) -> None:
        args = [
            str(self.server),
            "--port", str(node.port),
            "--bind", HOST,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000",
            "--appendonly", "no",
            "--save", "",
            "--dir", str(node.dir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(node.log),
            "--enable-debug-command", "local",
        ]  # fmt: skip
        node.process = subprocess.Popen(
            args, cwd=node.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _wait_for_ping(self, node: Node) -> None:
        deadline = time.monotonic() + PING_TIMEOUT
        client = node.client()
        try:
            while True:
                if not node.alive:
                    raise RuntimeError(f"redis-server on port {node.port} exited:\n{node.tail()}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {node.port} did not answer PING within "
                        f"{PING_TIMEOUT:.0f} s:\n{node.tail()}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _create(self) -> None:
        result = subprocess.run(
            [
                str(CLI),
                "--cluster",
                "create",
                *(f"{HOST}:{node.port}" for node in self._nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode:
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}"
            )

    def _wait_for_ok(self) -> None:
        """Until every node sees the whole cluster: state ok, all slots, every node known."""
        deadline = time.monotonic() + FORM_TIMEOUT
        clients = [node.client() for node in self._nodes]
        try:
            while True:
                infos: list[dict[str, str]] = []
                for client in clients:
                    try:
                        info = client.cluster("INFO")  # a dict, parsed by redis-py
                        infos.append({str(k): str(v) for k, v in info.items()})
                    except redis.RedisError as exc:
                        infos.append({"error": str(exc)})
                if all(_formed(info, self.masters) for info in infos):
                    return
                if time.monotonic() > deadline:
                    report = "\n".join(
                        f"--- port {node.port}:\n{info}\n{node.tail(10)}"
                        for node, info in zip(self._nodes, infos, strict=True)
                    )
                    raise RuntimeError(
                        f"the Redis Cluster did not form within {FORM_TIMEOUT:.0f} s:\n{report}"
                    )
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (its slots go unserved: there are no replicas)."""
        process = self._nodes[index].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def flush(self) -> None:
        """FLUSHALL on every master still running, so each test starts empty."""
        for node in self._nodes:
            if node.alive:
                client = node.client()
                try:
                    client.flushall()
                finally:
                    client.close()

    def stop(self) -> None:
        """SIGTERM every node, SIGKILL what is left after 10 s, remove the directory."""
        try:
            running = [node.process for node in self._nodes if node.alive]
            for process in running:
                assert process is not None
                process.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT
            for process in running:
                assert process is not None
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _formed(info: dict[str, str], masters: int) -> bool:
    return (
        info.get("cluster_state") == "ok"
        and info.get("cluster_slots_assigned") == str(SLOTS)
        and info.get("cluster_known_nodes") == str(masters)
    )
