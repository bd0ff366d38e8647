"""A helper process of the daemon: ``python -m <module> <fd>``, talking over a socket pair.

The Kafka fetcher (`monitor.ingest.fetcher`) and the window closer (`monitor.closing_process`)
run beside the daemon so that their CPU is not the pipeline's. Each gets one end of a socket
pair, its start message first; Python objects cross pickled. Its stderr is where the daemon
logs. A helper ends when its socket closes: the daemon closed it, or died.
"""

from __future__ import annotations

import pickle
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

from monitor.errors import MonitorError
from monitor.logs import current_stream_fd


class HelperProcess:
    """The daemon's side of one helper: its process and its end of the socket pair."""

    def __init__(self, module: str, start: Any) -> None:
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", module, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stderr=current_stream_fd(),  # its log lines go where the daemon's go
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        try:
            self._conn.send(start)
        except BaseException:
            self.end(0.0)
            raise

    def send(self, message: Any) -> None:
        self._conn.send(message)

    def ready(self, timeout_s: float = 0.0) -> bool:
        """Whether an answer waits (within ``timeout_s``)."""
        return self._conn.poll(timeout_s)

    def receive(self) -> Any:
        return self._conn.recv()

    def end(self, timeout_s: float) -> int | None:
        """Close the socket (the helper ends), wait up to ``timeout_s``, then kill it; its
        exit code."""
        self._conn.close()
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def ignore_signals() -> None:
    """In a helper: SIGINT and SIGTERM are the daemon's, which stops its loop, then us."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def picklable(exc: BaseException, kind: type[MonitorError]) -> BaseException:
    """``exc`` if it can cross to the daemon, else a ``kind`` that says what it was."""
    try:
        pickle.dumps(exc)
    except Exception:  # any exception a library raised must cross
        return kind(f"{type(exc).__name__}: {exc}")
    return exc
