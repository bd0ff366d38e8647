"""The test proxy's hold: connections stay open, bytes wait until released, then arrive."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_held_bytes_wait_unanswered_and_arrive_in_order_once_released(echo: int) -> None:
    """During a hold a request gets no answer (no reset either); after the release every byte
    sent meanwhile is delivered, in order, on the same connection."""
    with TcpProxy("127.0.0.1", echo) as proxy:
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as client:
            client.sendall(b"before ")
            assert client.recv(1024) == b"before "
            proxy.hold()
            client.sendall(b"during ")
            client.settimeout(0.6)
            with pytest.raises(TimeoutError):
                client.recv(1024)
            proxy.release()
            client.settimeout(5)
            received = b""
            while len(received) < len(b"during "):
                received += client.recv(1024)
            assert received == b"during "
        assert proxy.refused == 0
