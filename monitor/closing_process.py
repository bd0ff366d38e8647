"""Closing windows in a helper process: evaluation runs beside the pipeline, not between batches.

A window's close reads every partition's stored share, merges and evaluates them against the
reference, stores some two hundred metric rows and steps the alerts: a few milliseconds per
window, all of it from and to the database, none of it from the daemon's memory. In the
daemon's own process it came after each checkpoint, between two batches; with ten models'
windows it took a quarter of the loop's time. `ClosingProcess` starts
``python -m monitor.closing_process``, which runs a `WindowCloser` on its own connections and
answers the daemon's asks over a socket pair.

- ``close_ready`` asks, and does not wait: it returns the windows the earlier asks closed
  (the run loop wakes the outbox relay for them). While an ask is under way, a new one is
  not sent: the helper reads the stored positions afresh when it gets the next.
- ``finish`` waits for the ask under way, asks once more (``flush``: every open window) and
  waits for that too, so a run that ends has closed what it would have closed inline.
- Two processes writing one SQLite file queue on its busy timeout: a close holds the lock
  while it stores a batch of windows (`monitor.closing.CLOSE_BATCH`), evaluated before it
  took the lock. PostgreSQL's row locks already let several replicas close side by side,
  claims keeping each window's close to one.
- The helper ends when the daemon stops it, or, if the daemon dies, when its socket closes,
  after the close under way (its transaction commits or rolls back whole). If the helper
  dies, the daemon logs it and starts another at its next ask.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from monitor import faults
from monitor.alerting import AlertEvaluator
from monitor.closing import WindowCloser
from monitor.errors import StoreError
from monitor.helper_process import HelperProcess, ignore_signals, picklable
from monitor.logs import current_setup, register_secrets, setup_logging
from monitor.reference.service import ReferenceCache
from monitor.settings import Settings
from monitor.store import db

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 60.0  # a close under way finishes first: at most a few seconds of windows


class ClosingProcess:
    """A `monitor.closing.WindowCloser` in a helper process (see the module docstring)."""

    def __init__(
        self, settings: Settings, source: tuple[str, str], partitions: Callable[[], set[int]]
    ) -> None:
        self._settings, self._source = settings, source
        self._partitions = partitions
        self._started = datetime.now(UTC)  # idleness counts from here, in every helper
        self._asked = False  # an ask under way: its answer not read yet
        self._ended: StoreError | None = None  # a helper that died, told by the next call
        self._helper: HelperProcess | None = self._start()  # imports while the daemon starts

    def close_ready(self, *, flush: bool = False) -> int:
        """Ask the helper to close what is due; the windows earlier asks closed since the last
        call. Raises StoreError when one of them failed or the helper died (the next ask
        retries, in a new helper if need be)."""
        closed, failure = self._answers(wait=False)
        if not self._asked:
            self._ask(flush)
        failure, self._ended = failure or self._ended, None
        if failure is not None:
            raise failure
        return closed

    def finish(self, *, flush: bool = False) -> int:
        """Wait for the ask under way, then close what is due now (every open window with
        ``flush``) and wait for it; the windows closed since the last call."""
        closed, failure = self._answers(wait=True)
        self._ended = None  # a helper that died before: the asks below start another
        self._ask(flush)
        if not self._asked:  # the helper had died: a new one closes the run
            self._ask(flush)
        more, later = self._answers(wait=True)
        later, self._ended = later or self._ended, None
        for error in (failure, later):
            if error is not None:
                raise error
        return closed + more

    def stop(self) -> None:
        """End the helper (after the close under way)."""
        if self._helper is not None:
            self._helper.end(STOP_TIMEOUT_S)
            self._helper = None
            self._asked = False

    def _ask(self, flush: bool) -> None:
        helper = self._helper
        if helper is None:
            helper = self._helper = self._start()
        try:
            helper.send((sorted(self._partitions()), flush))
        except OSError:
            self._lost(helper)
            return
        self._asked = True

    def _start(self) -> HelperProcess:
        start = (self._settings, *self._source, self._started, current_setup())
        return HelperProcess("monitor.closing_process", start)

    def _answers(self, *, wait: bool) -> tuple[int, StoreError | None]:
        """Read the answer of the ask under way, if any (waiting for it with ``wait``)."""
        helper = self._helper
        if helper is None or not self._asked or not (wait or helper.ready()):
            return 0, None
        self._asked = False
        try:
            ok, value = helper.receive()
        except (EOFError, OSError):
            self._lost(helper)
            return 0, None
        if not ok:
            return 0, value if isinstance(value, StoreError) else StoreError(f"{value!r}")
        return value, None

    def _lost(self, helper: HelperProcess) -> None:
        code = helper.end(0.0)
        self._helper, self._asked = None, False
        self._ended = StoreError(f"the window closer process ended (exit code {code})")
        log.error("the window closer process ended (exit code %s); starting another", code)


# --- the helper process --------------------------------------------------------------------


def serve(conn: Connection) -> None:
    """Answer the daemon's asks until it closes the socket."""
    settings, group_id, topic, started, logging_setup = conn.recv()
    if logging_setup is not None:
        level, chosen, secrets = logging_setup
        register_secrets(secrets)
        setup_logging(level, chosen)
    partitions: set[int] = set()
    engine = db.create_db_engine(settings.database.url.get_secret_value())
    closer = WindowCloser(
        settings, engine, (group_id, topic), ReferenceCache(engine),
        lambda: datetime.now(UTC), lambda: partitions, AlertEvaluator(settings), started,
    )  # fmt: skip
    while True:
        try:
            asked, flush = conn.recv()
        except EOFError:  # the daemon stopped us, or died
            return
        partitions = set(asked)
        try:
            answer: tuple[bool, Any] = True, closer.close_ready(flush=flush)
        except Exception as exc:  # the daemon logs it and asks again later
            answer = False, picklable(exc, StoreError)
        try:
            conn.send(answer)
        except OSError:  # the daemon stopped us during this close, or died
            return


def main() -> None:
    ignore_signals()  # the daemon's: it stops its loop, then this helper
    faults.kill_with(os.getppid())  # a fault point here kills the daemon too: a replica dies
    conn = Connection(int(sys.argv[1]))
    code = 0
    try:
        serve(conn)
    except Exception:  # the daemon sees the socket close and starts another
        log.exception("the window closer process failed")
        code = 1
    finally:
        conn.close()
        os._exit(code)  # no interpreter teardown: the daemon waits for this exit


if __name__ == "__main__":  # run as ``-m``: serve from the module by its name
    from monitor.closing_process import main as serve_daemon

    serve_daemon()
