"""HTTP/1.1 on a raw socket, for what an HTTP client library hides: pipelining, HEAD answers,
half-sent requests and the server closing first."""

from __future__ import annotations

import socket


def split_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status code and headers (names lower-cased) of a response head."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers


class Reader:
    """Reads whole responses off one connection, keeping what arrived past the last one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"the server closed the connection; unread: {self.buffer[:200]!r}")
        self.buffer += data

    def response(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        """The next response's status, headers and body (none for HEAD, RFC 9110 §9.3.2)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, headers = split_head(head)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._fill()
                size_line, _, self.buffer = self.buffer.partition(b"\r\n")
                size = int(size_line, 16)
                while len(self.buffer) < size + 2:
                    self._fill()
                body += self.buffer[:size]
                self.buffer = self.buffer[size + 2 :]
                if size == 0:
                    return status, headers, body
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self) -> bool:
        """True once the server has closed the connection (after what it sent is read)."""
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            return True


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    """One request's bytes (``Host`` added)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def connect(port: int, source: str = "127.0.0.1", timeout: float = 30) -> socket.socket:
    """A connection to the test server from ``source`` (any address in 127.0.0.0/8)."""
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    )
    return sock
