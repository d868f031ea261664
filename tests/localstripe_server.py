"""Run localstripe, the stateful Stripe emulator, on 127.0.0.1 for the tests.

``python -m tests.localstripe_server STORE`` binds 127.0.0.1 on a free port, prints the port on
its first line of output, and serves until killed. localstripe's own entry point listens on
every interface and keeps its store in one file shared by every run on the machine; this one
listens on loopback only and keeps the store in ``STORE``.
"""

from __future__ import annotations

import pickle
import socket
import sys
from pathlib import Path

from aiohttp import web
from localstripe import resources
from localstripe.server import app


def main() -> None:
    store = Path(sys.argv[1])

    def dump_to_disk(self: resources.Store) -> None:
        with open(store, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.dump_to_disk = dump_to_disk  # type: ignore[method-assign]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
