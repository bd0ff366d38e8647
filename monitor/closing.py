"""Closing windows: when every partition's watermark has passed, evaluate exactly once.

A window of a model closes when, for every non-idle partition of its topic, the stored newest
event time minus the model's allowed lateness has passed the window's end (DESIGN.md §4). The
stored values are the checkpointed ones, whichever process owns the partition, so any process
may close any window: the one whose claim insert succeeds merges the partitions' shares,
evaluates them against the reference and stores the metrics, in one transaction.

A partition counts as idle when it has not moved for ``idle_timeout`` (wall clock) while this
process has been consuming for at least as long; so a restart after a long pause does not
close windows before the backlog is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, Engine

from monitor.alerting import AlertEvaluator
from monitor.faults import fault
from monitor.joining import labelled_metrics
from monitor.reference.service import ReferenceCache
from monitor.rules.matching import MetricLike
from monitor.settings import Settings
from monitor.store import alerts as stored_alerts
from monitor.store import labels as stored_labels
from monitor.store import windows as stored
from monitor.store.db import transaction
from monitor.store.repository import StoredPosition, load_positions
from monitor.windows.evaluation import evaluate
from monitor.windows.ranges import duration_ms
from monitor.windows.state import WindowState

log = logging.getLogger(__name__)


class Closer(Protocol):
    """What the run loop needs of a closer: this module's, or one in a helper process."""

    def close_ready(self, *, flush: bool = False) -> int: ...
    def finish(self, *, flush: bool = False) -> int: ...
    def stop(self) -> None: ...


CLOSE_BATCH = 16  # windows per transaction: a commit costs about as much as a small close


class WindowCloser:
    """Closes and evaluates the windows the watermarks of one topic have passed."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        source: tuple[str, str],
        references: ReferenceCache,
        clock: Callable[[], datetime],
        partitions: Callable[[], set[int]],
        alerts: AlertEvaluator | None = None,
        started: datetime | None = None,
    ) -> None:
        """``started``: when the daemon began consuming (default now), from which partitions
        may count as idle; a helper process started later passes the daemon's."""
        self._settings = settings
        self._engine = engine
        self._group_id, self._topic = source
        self._references = references
        self._clock = clock
        self._partitions = partitions  # every partition of the topic, stored or not yet
        self._alerts = alerts
        self._started = clock() if started is None else started
        self.closed = 0

    def close_ready(self, *, flush: bool = False) -> int:
        """Close every window that is due (every open one with ``flush``); how many closed."""
        now = self._clock()
        with transaction(self._engine) as conn:
            positions = load_positions(conn, self._group_id, [self._topic])
            candidates = stored.open_windows(conn)
        horizon = self._horizon(positions, now)
        due = []
        for window, end in candidates:
            lateness = duration_ms(self._settings.model(window[0]).allowed_lateness)
            end_ms = int(end.timestamp() * 1000)
            if flush or (horizon is not None and end_ms + lateness <= horizon):
                due.append((window, end))
        due.sort()  # the checkpoints' lock order (PostgreSQL), oldest first per model
        closed = 0
        for first in range(0, len(due), CLOSE_BATCH):
            closed += self._close_batch(due[first : first + CLOSE_BATCH], now)
        return closed

    def finish(self, *, flush: bool = False) -> int:
        """The last close of a run: what is due now (every open window with ``flush``)."""
        return self.close_ready(flush=flush)

    def stop(self) -> None:
        """Nothing to end in this process (`monitor.closing_process` has a helper to end)."""

    def _horizon(
        self, positions: dict[tuple[str, int], StoredPosition], now: datetime
    ) -> float | None:
        """The smallest newest-event time over the partitions still holding windows open."""
        idle_after = self._settings.ingest.idle_timeout
        may_idle = now - self._started >= idle_after
        times: list[int] = []
        for partition in self._partitions() | {p for _, p in positions}:
            stored_position = positions.get((self._topic, partition))
            max_ms = None if stored_position is None else stored_position.position.max_event_ms
            if may_idle and (
                stored_position is None or now - stored_position.updated_at >= idle_after
            ):
                continue  # idle: it does not hold windows open
            if max_ms is None:
                return None  # a partition that has given no event time yet holds everything
            times.append(max_ms)
        if times:
            return float(min(times))
        return float("inf") if may_idle and positions else None

    def _close_batch(self, due: list[tuple[stored.WindowId, datetime]], now: datetime) -> int:
        """Close ``due`` windows in one transaction: one commit instead of one per window.

        They are evaluated first, in a read transaction: on SQLite the write transaction
        holds the only write lock, which the daemon's checkpoints wait for, and evaluation
        is most of a close. The write transaction reads the shares again and evaluates
        afresh any window whose shares changed meanwhile (a partition that had gone idle).
        """
        with transaction(self._engine) as conn:
            windows = [window for window, _ in due]
            evaluated = self._evaluate(stored.window_shares(conn, windows), due)
        with transaction(self._engine, write=True) as conn:
            closed = self._close(conn, due, now, evaluated)
        self.closed += len(closed)
        for (model, version, start), events, metrics in closed:
            log.info(
                "window closed: %s %s %s (%d events, %d metrics)",
                model,
                version,
                start.isoformat(),
                events,
                metrics,
            )
        return len(closed)

    def _close(
        self,
        conn: Connection,
        due: list[tuple[stored.WindowId, datetime]],
        now: datetime,
        evaluated: dict[stored.WindowId, _Evaluated],
    ) -> list[tuple[stored.WindowId, int, int]]:
        """Merge, claim, evaluate and store ``due`` windows (in lock order); those closed:
        not those without a stored share, or another process claimed first. ``evaluated``:
        windows evaluated before, used where their shares are still the stored ones.

        Each step runs one statement for all the windows: the locks of every window (in
        order), then of every claimed window's performance shares, as a checkpoint takes
        them (window locks, then performance locks; `stored_labels.lock_performance`).
        """
        windows = [window for window, _ in due]
        stored.lock_windows(conn, windows)
        shares = stored.window_shares(conn, windows)
        stale = [
            (window, end)
            for window, end in due
            if window in shares
            and (window not in evaluated or evaluated[window].shares != shares[window])
        ]
        evaluated = {**evaluated, **self._evaluate(shares, stale)}
        claims = []
        for window, end in due:
            if window in shares:
                state = evaluated[window].state
                claims.append(stored.Claim(window, end, state.events, state.revision))
        claimed = stored.claim_windows(conn, claims, now)
        ready = [(window, end) for window, end in due if window in claimed]
        if not ready:
            return []
        closing = [window for window, _ in ready]
        stored_labels.lock_performances(conn, closing)
        # A checkpoint adds late events and the like to a window's counts without its window
        # lock, and refreshes the count metrics of the windows it sees closed: one that saw
        # this window open must not change its counts under this close (on PostgreSQL the
        # row lock makes it wait, then see the window closed). A checkpoint takes performance
        # and alert locks (its label join) before it counts, so this close takes them first.
        if self._alerts is not None:
            for model, version in sorted({(w[0], w[1]) for w in closing}):
                stored_alerts.lock_alerts(conn, model, version)
        counters = stored.windows_counters(conn, closing, lock=True)
        performance = stored_labels.windows_performance(conn, closing)
        batch = []
        for window, end in ready:
            state, rows = evaluated[window].state, list(evaluated[window].rows)
            counts = counters[window]
            rows += stored.count_metric_rows(window, end, counts)
            per_slice = {name: piece.events for name, piece in state.slices.items()}
            per_slice[""] = counts["events"] + counts["late_events"]
            shares_of = performance.get(window, [])
            rows += labelled_metrics(window, shares_of, per_slice, self._settings)
            batch.append(stored.WindowMetrics(window, end, rows))
        stored.save_metrics(conn, batch, now)
        stored.delete_windows_partials(conn, closing)
        closed = []
        for metrics in batch:
            if self._alerts is not None:
                self._alerts.on_window(conn, metrics.window, metrics.end, metrics.rows, now)
            fault("during_window_close")
            events = evaluated[metrics.window].state.events
            closed.append((metrics.window, events, len(metrics.rows)))
        return closed

    def _evaluate(
        self,
        shares: dict[stored.WindowId, list[bytes]],
        due: list[tuple[stored.WindowId, datetime]],
    ) -> dict[stored.WindowId, _Evaluated]:
        """Merge each due window's ``shares`` and evaluate it; windows without any are left
        out."""
        found = {}
        for window, end in due:
            states = shares.get(window)
            if not states:
                continue
            model, version, start = window
            state = _merge([WindowState.from_bytes(s) for s in states])
            # Compared with the reference it was laid out by: a window that opened before
            # any (warm-up) or before a rebuild keeps its own, so histograms line up.
            active = None
            if state.revision is not None:
                active = self._references.revision(model, version, state.revision)
            rows = evaluate(
                state,
                None if active is None else active.profile,
                min_samples=self._settings.model(model).min_samples,
                window_seconds=(end - start).total_seconds(),
            )
            found[window] = _Evaluated(states, state, rows)
        return found


@dataclass(frozen=True, slots=True)
class _Evaluated:
    """A window merged from ``shares`` and its evaluation's metric rows."""

    shares: list[bytes]
    state: WindowState
    rows: Sequence[MetricLike]


def _merge(states: list[WindowState]) -> WindowState:
    """One state from every partition's share (the reference revision of the largest share).

    The largest share, just read from its bytes and owned by nobody else, takes in the
    others: copying it first would only repeat it.
    """
    states.sort(key=lambda s: s.events, reverse=True)
    merged = states[0]
    for state in states[1:]:
        merged.merge(state)
    return merged
