"""The HTTP protocol's own behaviour on a real socket: one segment per small response."""

from __future__ import annotations

import socket
import struct

from tests.conftest import LiveServer

#: Offset of ``tcpi_data_segs_in`` (u32) in Linux's ``struct tcp_info`` (since Linux 4.6).
DATA_SEGS_IN = 152


def data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, DATA_SEGS_IN)[0])


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_head_and_body_leave_in_one_segment(server: LiveServer) -> None:
    """uvicorn writes a response's head and body separately; livesale sends them together, so a
    small answer (a buy click's) costs one send and reaches the buyer as one TCP segment."""
    with socket.create_connection(("127.0.0.1", server.settings.port)) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(5):  # keep-alive: every response of the connection, not only the first
            before = data_segments_in(sock)
            sock.sendall(request)
            response = read_response(sock)
            assert response.startswith(b"HTTP/1.1 200 ")
            assert response.endswith(b'{"status":"ok"}')
            assert data_segments_in(sock) - before == 1


def test_expect_100_continue_still_gets_its_interim_answer(server: LiveServer) -> None:
    """The interim ``100 Continue`` is not held back with the response head: a client waiting
    for it before sending the body gets it at once."""
    with socket.create_connection(("127.0.0.1", server.settings.port)) as sock:
        sock.settimeout(5)
        body = b'{"nickname": "ada"}'
        sock.sendall(
            b"POST /api/viewers HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        response = read_response(sock)
        assert response.startswith(b"HTTP/1.1 201 ")
        assert b'"token"' in response
