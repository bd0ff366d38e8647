"""One checkpoint: a batch's effects and the offsets it consumed, in ONE transaction.

The database is the source of truth for consumer offsets. ``Ledger`` tracks, per partition,
the offset stored in the database and the position consumed since; ``Checkpointer.commit``
writes the pending effects together with a compare-and-set move of every partition from the
one to the other. Either everything lands or nothing does, so a crash at any point replays
exactly the unstored records, and a member fenced out by a rebalance rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy import Connection, Engine

from monitor.ingest.events import PredictionEvent, Rejected
from monitor.joining import Joiner, PendingLabelWork
from monitor.reference.warmup import Warmup
from monitor.stats.detectors import ScoreChangeDetector
from monitor.store import repository
from monitor.store import windows as stored_windows
from monitor.store.db import transaction
from monitor.store.repository import Position, TopicPartition, WindowCountDelta
from monitor.store.warmup import WarmupRow
from monitor.store.windows import WindowId
from monitor.windows.counts import WindowCounts, WindowKey
from monitor.windows.manager import OpenWindow, PartialKey, WindowManager
from monitor.windows.ranges import to_datetime
from monitor.windows.state import WindowState

log = logging.getLogger(__name__)


class _HasOffset(Protocol):
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=_HasOffset)


@dataclass(slots=True)
class PendingEffects:
    """Everything consumed since the last checkpoint, not yet in the database."""

    counts: WindowCounts = field(default_factory=WindowCounts)
    rejected: list[Rejected] = field(default_factory=list)
    records: int = 0
    rejected_published: int = 0  # how many of ``rejected`` the dead-letter topic already has
    warmup: dict[tuple[str, str], list[WarmupRow]] = field(default_factory=dict)
    labels: PendingLabelWork = field(default_factory=PendingLabelWork)
    staged: dict[tuple[TopicPartition, WindowKey], list[PredictionEvent]] = field(
        default_factory=dict
    )
    """Predictions with an id, not late, by partition and window in arrival order: counted
    at the checkpoint."""
    staged_late: list[tuple[WindowKey, PredictionEvent]] = field(default_factory=list)
    """Late predictions with an id: counted late at the checkpoint unless resent."""

    def __bool__(self) -> bool:
        return self.records > 0

    def restage(self, newer: PendingEffects) -> None:
        """Put ``newer``'s staged predictions after this one's (arrival order per window)."""
        for where, events in newer.staged.items():
            mine = self.staged.get(where)
            if mine is None:
                self.staged[where] = events
            else:
                mine += events
        self.staged_late += newer.staged_late

    def settlement(
        self, windows: WindowManager | None, resent: set[int], *, in_place: bool = True
    ) -> Settlement:
        """Count the staged predictions and add them to their windows, except resends.

        A prediction with an id counts only once the checkpoint knows its id was not already
        waiting for a label: a producer's retry of it (same id, another offset) is a
        duplicate, and only that (DESIGN.md §5). Resends are rare: without any, each window's
        events go to it as they were staged. ``in_place`` False adds them to copies of the
        open windows instead, for `settle` to put in place (or to be dropped).
        """
        counts = WindowCounts()
        changed: dict[PartialKey, OpenWindow] = {}
        if windows is not None and in_place:
            changed = windows.open
        for key, event in self.staged_late:
            if id(event) not in resent:
                counts.late[key] += 1
        for (tp, key), events in self.staged.items():
            if resent:
                events = [e for e in events if id(e) not in resent]
                if not events:
                    continue
            counts.add_events(key, len(events), max(e.ts_ms for e in events))
            if windows is not None:
                windows.add_to(changed, tp, key[0], key[1], (key[2], key[3]), events)
        return Settlement(counts, changed)

    def settle(self, settlement: Settlement, windows: WindowManager | None) -> None:
        """Take in a `settlement` of the staged predictions: they are staged no more."""
        self.counts.merge(settlement.counts)
        if windows is not None and settlement.windows is not windows.open:
            windows.install(settlement.windows)
        self.staged = {}
        self.staged_late = []


@dataclass(frozen=True, slots=True)
class Settlement:
    """What settling the staged predictions adds: counts, and the windows it changed."""

    counts: WindowCounts
    windows: dict[PartialKey, OpenWindow]


@dataclass(slots=True)
class Ledger:
    """Per partition: the stored position (None: nothing stored) and the consumed one.

    ``resets`` holds, until stored, the offset each partition expected when its broker log
    turned out to have restarted below it (see ``restarted``).
    """

    stored: dict[TopicPartition, Position | None] = field(default_factory=dict)
    position: dict[TopicPartition, Position] = field(default_factory=dict)
    resets: dict[TopicPartition, int] = field(default_factory=dict)

    def start(self, tp: TopicPartition, stored: Position | None) -> None:
        """Own ``tp`` from its stored position on; nothing of it is pending."""
        self.stored[tp] = stored
        self.resets.pop(tp, None)
        if stored is None:
            self.position.pop(tp, None)
        else:
            self.position[tp] = stored

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.stored.pop(tp, None)
            self.position.pop(tp, None)
            self.resets.pop(tp, None)

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self.stored

    def unconsumed(self, tp: TopicPartition, records: Sequence[R]) -> Sequence[R]:
        """``records`` of ``tp`` (in offset order, as a partition gives them) without those
        already consumed (redelivered after a seek); usually all of them, found from the
        first alone."""
        current = self.position.get(tp)
        if current is None or not records or records[0].offset >= current.offset:
            return records
        return [r for r in records if r.offset >= current.offset]

    def restarted(self, tp: TopicPartition, first_offset: int) -> int | None:
        """Follow a broker log that restarted below ``tp``'s position; the offset expected.

        The consumer never returns a record below the offset it was sought to, unless the
        broker answered "out of range" and the consumer reset to the new log (DESIGN.md §4:
        a broker that came back without its data). The run loop calls this with the first
        record of a poll for partitions sought before that poll; None: no restart. The
        partition's watermark stays: what the new log delivers below it is late.
        """
        current = self.position.get(tp)
        if current is None or first_offset >= current.offset:
            return None
        self.resets.setdefault(tp, current.offset)
        self.position[tp] = Position(first_offset, current.max_event_ms)
        return current.offset

    def max_event_ms(self, tp: TopicPartition) -> int | None:
        """The newest event time ``tp`` has delivered so far (stored or since)."""
        current = self.position.get(tp)
        return None if current is None else current.max_event_ms

    def consumed(self, tp: TopicPartition, next_offset: int, max_event_ms: int | None) -> None:
        self.position[tp] = Position(next_offset, max_event_ms)

    def moves(self) -> dict[TopicPartition, tuple[int | None, Position]]:
        """Partitions whose consumed position is ahead of the stored one."""
        moves = {}
        for tp, position in self.position.items():
            stored = self.stored.get(tp)
            if position != stored:
                moves[tp] = (None if stored is None else stored.offset, position)
        return moves

    def stored_offsets(self) -> dict[TopicPartition, int | None]:
        return {tp: None if s is None else s.offset for tp, s in self.stored.items()}

    def rewind(self) -> None:
        """Drop consumed positions back to the stored ones (after a failed checkpoint)."""
        for tp, stored in self.stored.items():
            self.start(tp, stored)


class Checkpointer:
    """Writes pending effects and offset moves of one consumer group atomically."""

    def __init__(
        self,
        engine: Engine,
        group_id: str,
        clock: Callable[[], datetime],
        dead_letter_sink: Callable[[list[Rejected]], None] | None = None,
        warmup: Warmup | None = None,
        joiner: Joiner | None = None,
    ) -> None:
        self._engine = engine
        self._group_id = group_id
        self._clock = clock
        self._dead_letter_sink = dead_letter_sink
        self._warmup = warmup
        self._joiner = joiner

    def load(self, topics: Iterable[str] | None = None) -> dict[TopicPartition, Position]:
        """Stored positions of this group (StoreError when the database is down)."""
        with transaction(self._engine) as conn:
            stored = repository.load_positions(conn, self._group_id, topics)
        return {tp: s.position for tp, s in stored.items()}

    def load_windows(self, tps: Iterable[TopicPartition], windows: WindowManager) -> int:
        """Take back the stored open-window shares of newly owned partitions; how many."""
        tps = list(tps)
        with transaction(self._engine) as conn:
            rows = stored_windows.load_partials(conn, tps)
            detectors = stored_windows.load_detectors(conn, self._group_id, tps)
        for row in rows:
            key = (row.model, row.version, _ms(row.window_start), row.topic, row.partition)
            windows.restore(key, _ms(row.window_end), WindowState.from_bytes(row.state))
        for model, topic, partition, snapshot in detectors:
            detector = ScoreChangeDetector.from_snapshot(snapshot)
            windows.restore_detector((model, topic, partition), detector)
        return len(rows)

    def commit(
        self, pending: PendingEffects, ledger: Ledger, windows: WindowManager | None = None
    ) -> dict[TopicPartition, int]:
        """Store ``pending``, the changed windows and the ledger's moves; the offsets stored.

        Raises FencedError when another member moved a partition (nothing is written), and
        StoreError when the database failed (nothing is written).
        """
        moves = ledger.moves()
        unsaved = windows.unsaved() if windows is not None else []
        detectors = windows is not None and bool(windows.detectors_unsaved)
        staged = pending.staged or pending.staged_late
        if not moves and not pending and not unsaved and not detectors and not staged:
            return {}
        unpublished = pending.rejected[pending.rejected_published :]
        if unpublished and self._dead_letter_sink is not None:
            self._dead_letter_sink(unpublished)  # a retried checkpoint does not resend these
            pending.rejected_published = len(pending.rejected)
        now = self._clock()
        with transaction(self._engine, write=True) as conn:
            repository.advance_offsets(conn, self._group_id, moves, now, ledger.resets)
            joined, settlement = WindowCounts(), None
            if self._joiner is not None and (pending or moves):
                if conn.dialect.name == "postgresql" and pending.staged and windows is not None:
                    joined, settlement = _join_beside_windows(
                        self._joiner, conn, pending, windows, now
                    )
                else:
                    joined = self._joiner.apply(conn, pending.labels, now)
            if settlement is None:  # resends known now
                settlement = pending.settlement(windows, pending.labels.resent)
            pending.settle(settlement, windows)
            unsaved = windows.unsaved() if windows is not None else []
            closed = _save_windows(conn, unsaved, now)
            counts = WindowCounts().merge(pending.counts).merge(_late_after_close(closed))
            counts.merge(joined)
            repository.add_window_counts(conn, _deltas(counts))
            repository.insert_dead_letters(conn, _dead_letter_rows(pending.rejected, now))
            _refresh_count_metrics(conn, counts, now)
            built = self._warmup.absorb(conn, pending.warmup, now) if self._warmup else []
            if windows is not None:
                snapshots = [
                    (*k, windows.detectors[k].snapshot()) for k in windows.detectors_unsaved
                ]
                stored_windows.save_detectors(conn, self._group_id, sorted(snapshots), now)
        for tp, (_, new) in moves.items():
            ledger.stored[tp] = new
            ledger.resets.pop(tp, None)
        _log_rejections(pending.rejected)
        if self._warmup is not None:
            self._warmup.publish(built)
        if windows is not None:
            windows.detectors_unsaved.clear()
            windows.saved(key for key, _ in unsaved)
            windows.drop(key for key, _ in closed)
        return {tp: new.offset for tp, (_, new) in moves.items()}


def _join_beside_windows(
    joiner: Joiner,
    conn: Connection,
    pending: PendingEffects,
    windows: WindowManager,
    now: datetime,
) -> tuple[WindowCounts, Settlement]:
    """The label join and the window adds at once: PostgreSQL only.

    The join, mostly waiting for PostgreSQL to store the predictions, runs in a thread; this
    one meanwhile adds the staged predictions to copies of their windows, as if none were a
    resend. When some were (rare), the copies are dropped and the adds done again without
    them. On SQLite the insert is this process's own work, under the interpreter's lock for
    the most part: the same overlap measured no gain there, so SQLite joins, then adds.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-join") as pool:
        joining = pool.submit(joiner.apply, conn, pending.labels, now)
        guess = pending.settlement(windows, set(), in_place=False)
    joined = joining.result()
    resent = pending.labels.resent
    return joined, guess if not resent else pending.settlement(windows, resent)


LOGGED_REJECTIONS = 10  # per checkpoint; the dead letters keep every one


def _log_rejections(rejected: list[Rejected]) -> None:
    """One warning per stored dead letter (the first few), with where it came from."""
    for r in rejected[:LOGGED_REJECTIONS]:
        where = {"model": r.model, "topic": r.topic, "partition": r.partition, "offset": r.offset}
        log.warning("event rejected: %s", r.reason, extra=where)
    if len(rejected) > LOGGED_REJECTIONS:
        more = len(rejected) - LOGGED_REJECTIONS
        log.warning("%d more events rejected in this checkpoint (see the dead letters)", more)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _window_id(key: PartialKey) -> WindowId:
    return (key[0], key[1], to_datetime(key[2]))


def _save_windows(
    conn: Connection, unsaved: list[tuple[PartialKey, OpenWindow]], now: datetime
) -> list[tuple[PartialKey, OpenWindow]]:
    """Store the changed window shares; returns those whose window closed meanwhile.

    A window that closed while this partition was idle takes nothing more: what the
    partition delivered for it since is late (DESIGN.md §4).
    """
    ids = sorted({_window_id(key) for key, _ in unsaved})
    for window in ids:
        stored_windows.lock_window(conn, window, shared=True)
    closed_ids = stored_windows.closed_among(conn, ids)
    closed = [(k, w) for k, w in unsaved if _window_id(k) in closed_ids]
    rows = [
        stored_windows.PartialRow(
            model=key[0],
            version=key[1],
            window_start=to_datetime(key[2]),
            window_end=to_datetime(window.end_ms),
            topic=key[3],
            partition=key[4],
            reference_revision=window.state.revision,
            events=window.state.events,
            state=window.state.to_bytes(),
        )
        for key, window in unsaved
        if _window_id(key) not in closed_ids
    ]
    stored_windows.save_partials(conn, rows, now)
    return closed


def _late_after_close(closed: list[tuple[PartialKey, OpenWindow]]) -> WindowCounts:
    """Counted as events when they arrived, late now that their window turned out closed."""
    moved = WindowCounts()
    for key, window in closed:
        count_key = (key[0], key[1], key[2], window.end_ms)
        moved.events[count_key] -= window.unsaved
        moved.late[count_key] += window.unsaved
    return moved


def _refresh_count_metrics(conn: Connection, counts: WindowCounts, now: datetime) -> None:
    """Keep the count metrics (late, duplicates, unlabelled, orphans) of closed windows equal
    to their counts: late events and labels keep coming after the close."""
    touched = {
        (m, v, to_datetime(s)): to_datetime(e)
        for counter in (counts.late, counts.duplicates, counts.unlabelled, counts.orphans)
        for (m, v, s, e), n in counter.items()
        if n
    }
    rows = []
    for window in sorted(stored_windows.closed_among(conn, touched)):
        counters = stored_windows.window_counters(conn, window)
        rows += stored_windows.count_metric_rows(window, touched[window], counters)
    stored_windows.save_metrics(conn, rows, now)


def _deltas(counts: WindowCounts) -> list[WindowCountDelta]:
    return [
        WindowCountDelta(
            model=model,
            version=version,
            window_start=to_datetime(start),
            window_end=to_datetime(end),
            events=counts.events.get(key, 0),
            labels=counts.labels.get(key, 0),
            late_events=counts.late.get(key, 0),
            duplicates=counts.duplicates.get(key, 0),
            unlabelled=counts.unlabelled.get(key, 0),
            orphan_labels=counts.orphans.get(key, 0),
            last_event_time=(
                to_datetime(counts.last_event_ms[key]) if key in counts.last_event_ms else None
            ),
        )
        for key in counts.sorted_keys()
        for model, version, start, end in (key,)
    ]


def _dead_letter_rows(rejected: list[Rejected], now: datetime) -> list[dict[str, object]]:
    return [
        {
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "size": r.size,
            "reason": r.reason,
            "model": r.model,
            "version": r.version,
            "payload": r.payload,
            "received_at": now,
        }
        for r in rejected
    ]
