"""A real local HTTP server that records what it receives: the webhook and chat sink of tests.

``Receiver`` listens on a free loopback port in a background thread. Every request is kept as
a `Received` (method, path, headers, raw body) in arrival order; the response status is
decided per request by ``respond`` (default 200), so a test can answer 503 for a while, 409 to
a repeat, or 429 with ``Retry-After``. ``stop()`` closes the socket (connections are then
refused, as for a target that is down) and ``start()`` listens again on the same port.

Standard library only (``http.server``), so the thing under test meets a real server.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import orjson

__all__ = ["Received", "Receiver", "Response"]


@dataclass(frozen=True)
class Received:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Response:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


Responder = Callable[[Received], Response | int]


class _QuietServer(ThreadingHTTPServer):
    """A client that hung up before its answer (a read-timeout test) is no error here."""

    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Receiver:
    """A recording HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, respond: Responder | None = None, port: int = 0) -> None:
        self.respond: Responder = respond or (lambda _: 200)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with receiver._lock:
                    receiver.received.append(request)
                answer = receiver.respond(request)
                response = Response(answer) if isinstance(answer, int) else answer
                self.send_response(response.status)
                for name, value in response.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: new connections are refused until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def requests(self, path_prefix: str = "") -> list[Received]:
        """A snapshot of the requests received so far (optionally under a path prefix)."""
        with self._lock:
            return [r for r in self.received if r.path.startswith(path_prefix)]

    def wait_for(self, count: int, timeout: float = 30.0, path_prefix: str = "") -> list[Received]:
        """Block until at least ``count`` requests arrived; returns them (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests(path_prefix)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.requests(path_prefix))} of {count} requests in {timeout}s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
