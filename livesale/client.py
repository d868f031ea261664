"""The merchant CLI's HTTP client: finds the server and key, turns problems into one line.

Server and key come from ``--server``/``--api-key``, else ``LIVESALE_SERVER``/``LIVESALE_API_KEY``,
else the local data directory: ``server.json`` written by a running ``livesale serve`` and the
``cli-key`` file it keeps for the machine's own operator (readable by the owner only).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


class ClientError(Exception):
    """A failed call, already worded for a person in one line; ``status`` is the HTTP status
    of a refusal (``None`` when no answer came)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


SERVER_FILE = "server.json"
#: Bytes :meth:`Client.upload` sends at a time.
UPLOAD_PIECE = 64 * 1024
CLI_KEY_FILE = "cli-key"
#: Where the first merchant key goes when ``serve``'s output is not a terminal (a log).
MERCHANT_KEY_FILE = "merchant-key"


def local_server(data_dir: Path) -> str | None:
    try:
        info = json.loads((data_dir / SERVER_FILE).read_text())
        return str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def local_key(data_dir: Path) -> str | None:
    try:
        return (data_dir / CLI_KEY_FILE).read_text().strip() or None
    except OSError:
        return None


@dataclass
class Client:
    server: str
    api_key: str | None
    timeout: float = 30.0

    @classmethod
    def resolve(cls, server: str | None, api_key: str | None, data_dir: Path) -> Client:
        url = server or local_server(data_dir)
        if not url:
            raise ClientError(
                f"no server: pass --server URL, set LIVESALE_SERVER, or start `livesale serve` "
                f"with data directory {data_dir}"
            )
        return cls(url.rstrip("/"), api_key or local_key(data_dir))

    def request(self, method: str, path: str, body: Any = None, *, retries: int = 0) -> Any:
        """Send one request; the decoded JSON answer, or :class:`ClientError`.

        ``retries``: how many more times to send the same request when no answer came back
        (the connection failed, dropped or timed out). The server may have acted on a request
        whose answer was lost, so only a call it performs once however often it arrives (one
        carrying an idempotency key, or a cancel) may pass it."""
        for attempt in range(retries + 1):
            try:
                response = httpx.request(
                    method,
                    self.server + path,
                    json=body,
                    headers=self._auth(),
                    timeout=self.timeout,
                )
                break
            except httpx.HTTPError as exc:
                if attempt < retries and isinstance(exc, httpx.TransportError):
                    continue
                raise self._unreachable(exc) from exc
        return _answer(response)

    def upload(
        self, method: str, path: str, body: bytes, sent: Callable[[int], None] | None = None
    ) -> Any:
        """Send ``body`` (JSON already encoded) in pieces, telling ``sent`` how many bytes are
        on their way after each; the decoded answer, or :class:`ClientError`. Never retried."""

        def pieces() -> Iterator[bytes]:
            for start in range(0, len(body), UPLOAD_PIECE):
                yield body[start : start + UPLOAD_PIECE]
                if sent is not None:
                    sent(min(len(body), start + UPLOAD_PIECE))

        headers = {
            **self._auth(),
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        try:
            response = httpx.request(
                method, self.server + path, content=pieces(), headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return _answer(response)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _unreachable(self, exc: Exception) -> ClientError:
        return ClientError(f"cannot reach the server at {self.server}: {exc}")


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ClientError(_problem_line(response), response.status_code)
    if not response.content:
        return None
    return response.json()


def _problem_line(response: httpx.Response) -> str:
    try:
        problem = response.json()
        detail = problem.get("detail") or problem.get("title") or response.reason_phrase
    except ValueError:
        detail = response.text.strip()[:200] or response.reason_phrase
    hint = ""
    if response.status_code == 401:
        hint = " (pass --api-key or set LIVESALE_API_KEY; `livesale keys create` makes one)"
    return f"{response.status_code} {response.reason_phrase}: {detail}{hint}"
