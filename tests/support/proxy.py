"""A TCP proxy a test can cut, to take a real server away from ``monitor`` and give it back.

Stopping PostgreSQL (or Kafka) to simulate an outage would break every other test sharing the
server, and firewall rules need root. Putting this proxy between the daemon and the server
makes the outage private to one test: ``cut()`` drops every open connection and turns new
ones away at once (connection refused/reset, not a hang, so the client sees a failure within
milliseconds instead of waiting out a timeout), ``restore()`` forwards again. ``hold()`` is the
other kind of outage: connections stay open but no byte moves either way (a client waits, as
on a stalled server) until ``release()`` delivers what was sent meanwhile.

Standard library only: a thread accepts, one thread per connection forwards both directions.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

__all__ = ["TcpProxy"]

CHUNK_BYTES = 64 * 1024
WAKE_S = 0.2  # how often idle threads look at the stop flag; shutdown() wakes them sooner
CONNECT_TIMEOUT_S = 5.0
JOIN_TIMEOUT_S = 5.0


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a crashed server or a dropped link looks to a client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream twin; closing either side closes both."""

    client: socket.socket
    upstream: socket.socket
    thread: threading.Thread | None = field(default=None)

    def shut(self) -> None:
        """Wake the forwarding thread from another thread: shutdown() is safe there, close() not."""
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` until cut or stopped.

    ``port`` is chosen by the kernel (bind to port 0), so parallel tests never collide.
    """

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((host, 0))
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._cut = False
        self._stopped = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self.accepted = 0  # connections forwarded
        self.refused = 0  # connections turned away while cut
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"proxy-accept-{self.port}", daemon=True
        )
        self._acceptor.start()

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until ``restore()``.

        Returns only once the dropped connections are closed, so the caller knows the outage
        has begun when this returns.
        """
        with self._lock:
            self._cut = True
            links = list(self._links)
        self._close(links)

    def restore(self) -> None:
        """Forward new connections again (dropped ones stay dropped, as after a real outage)."""
        with self._lock:
            self._cut = False

    def hold(self) -> None:
        """Stop moving bytes, both ways, on every connection (new ones are accepted and held
        too): a client's request waits, unanswered, until ``release()``."""
        self._flowing.clear()

    def release(self) -> None:
        """Move bytes again; what was sent during the hold is delivered, in order."""
        self._flowing.set()

    def stop(self) -> None:
        """Stop accepting, drop every connection and release the port; idempotent."""
        self._stopped.set()
        self._flowing.set()
        with self._lock:
            self._cut = True
            links = list(self._links)
        self._close(links)
        self._acceptor.join(JOIN_TIMEOUT_S)
        self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _close(self, links: list[_Link]) -> None:
        for link in links:
            link.shut()
        for link in links:
            if link.thread is not None and link.thread is not threading.current_thread():
                link.thread.join(JOIN_TIMEOUT_S)

    def _accept_loop(self) -> None:
        # A selector with a timeout rather than a blocking accept(): closing a listening
        # socket does not reliably wake a thread blocked in accept() on every platform.
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stopped.is_set():
                if not selector.select(WAKE_S):
                    continue
                try:
                    client, _ = self._listener.accept()
                except OSError:
                    continue
                self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        if self._cut:
            self._turn_away(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_S)
        except OSError:
            _reset(client)  # target down: the client sees what it would see without a proxy
            return
        client.settimeout(None)
        upstream.settimeout(None)
        link = _Link(client, upstream)
        with self._lock:
            # Checked again under the lock: a cut() that ran while we connected upstream must
            # not miss this link, and must not let it through either.
            if self._cut:
                admitted = False
            else:
                admitted = True
                self._links.add(link)
                self.accepted += 1
                link.thread = threading.Thread(
                    target=self._forward, args=(link,), name=f"proxy-link-{self.port}", daemon=True
                )
                link.thread.start()
        if not admitted:
            upstream.close()
            self._turn_away(client)

    def _turn_away(self, client: socket.socket) -> None:
        with self._lock:
            self.refused += 1
        _reset(client)

    def _forward(self, link: _Link) -> None:
        """Copy bytes both ways until either side closes or the link is shut."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(link.client, selectors.EVENT_READ, (link.client, link.upstream))
                selector.register(link.upstream, selectors.EVENT_READ, (link.upstream, link.client))
                while not self._stopped.is_set():
                    if not self._flowing.wait(WAKE_S):
                        continue  # held: the bytes wait in the kernel's socket buffers
                    for key, _ in selector.select(WAKE_S):
                        source, sink = key.data
                        data = source.recv(CHUNK_BYTES)
                        if not data:
                            return
                        sink.sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._links.discard(link)
            # RST, not FIN: the client must see a broken connection, not a polite goodbye
            # it might take for the server ending the session on purpose.
            _reset(link.client)
            _reset(link.upstream)
