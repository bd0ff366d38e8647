"""The prose of the system: decode → route → windows (→ close → evaluate → act).

Kafka and replayed files feed records here, a partition's slice at a time. Each record
becomes a typed event or a rejection; events land in their model's event-time window;
rejections wait for the dead letters. Nothing here does I/O: the effects stay pending until
the checkpoint stores them together with the offsets they came from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from monitor.checkpoint import Ledger, PendingEffects
from monitor.ingest.events import (
    EventParser,
    Kind,
    LabelEvent,
    PredictionEvent,
    RawRecord,
    Rejected,
)
from monitor.joining import pending_prediction
from monitor.reference.warmup import Warmup, warmup_row
from monitor.settings import Settings
from monitor.windows.manager import WindowManager
from monitor.windows.ranges import duration_ms, window_start


class Pipeline:
    """Turns records into pending effects; the run loop and replay drive it."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float],
        windows: WindowManager,
        warmup: Warmup | None = None,
    ) -> None:
        self._settings = settings
        self._parser = EventParser(settings, clock)
        self.windows = windows
        self._warmup = warmup
        self._warmup_models = warmup.models if warmup is not None else frozenset()
        self._timing_ms: dict[str, tuple[int, int]] = {}
        self._segments_of: dict[str, list[str]] = {}
        self.pending = PendingEffects()

    def ingest(
        self,
        kind: Kind,
        topic: str,
        partition: int,
        records: Sequence[RawRecord],
        ledger: Ledger,
    ) -> int:
        """Route one partition's ``records``; returns how many were new (not redelivered)."""
        tp = (topic, partition)
        fresh = [r for r in records if ledger.accepts(tp, r.offset)]
        if not fresh:
            return 0
        latest_ms = self._parser.latest_usable_ms()
        counts, rejected = self.pending.counts, self.pending.rejected
        joining = self.pending.labels
        max_ms = ledger.max_event_ms(tp)
        by_window: dict[tuple[str, str, int, int], list[PredictionEvent]] = {}
        scores: dict[str, tuple[list[float], list[tuple[str, int]]]] = {}
        warmup_candidates: list[PredictionEvent] = []
        for record in fresh:
            event = self._parser.parse(record, kind, topic, partition, latest_ms)
            if isinstance(event, Rejected):
                rejected.append(event)
                continue
            size, lateness = self._timing(event.model)
            start = window_start(event.ts_ms, size)
            if isinstance(event, LabelEvent):  # labels do not move watermarks
                counts.add_label((event.model, event.version or "default", start, start + size))
                joining.labels.append((tp, event))
                continue
            key = (event.model, event.version, start, start + size)
            if event.id is not None:  # late or not, it may get a label: its window keeps it
                segments = self._segments(event.model)
                waiting = pending_prediction(event, (start, start + size), segments)
                if waiting is not None:
                    joining.predictions.append((tp, waiting))
            # Late: below this partition's own watermark at arrival (DESIGN.md §4), so a
            # replay of the partition decides exactly as the first run did.
            if max_ms is not None and event.ts_ms < max_ms - lateness:
                counts.add_late(key)
                continue
            counts.add_event(key, event.ts_ms)
            by_window.setdefault(key, []).append(event)
            if event.model in self._warmup_models:
                warmup_candidates.append(event)
            score = event.score
            if type(score) in (float, int) and math.isfinite(score):
                values, where = scores.setdefault(event.model, ([], []))
                values.append(score)
                where.append((event.version, start))
            if max_ms is None or event.ts_ms > max_ms:
                max_ms = event.ts_ms
        for (model, version, start, end), events in by_window.items():
            self.windows.add(tp, model, version, (start, end), events)
        for model, (values, where) in scores.items():
            self.windows.observe_scores(tp, model, values, where)
        if warmup_candidates and self._warmup is not None:
            self._keep_warmup(self._warmup, topic, warmup_candidates)
        self.pending.records += len(fresh)
        ledger.consumed(tp, fresh[-1].offset + 1, max_ms)
        return len(fresh)

    def _keep_warmup(self, warmup: Warmup, topic: str, events: list[PredictionEvent]) -> None:
        """Keep, in arrival order, the events that may still be a version's first N."""
        warming: dict[tuple[str, str], bool] = {}
        for event in events:
            key = (event.model, event.version)
            if key not in warming:
                warming[key] = warmup.warming(*key)
            if not warming[key]:
                continue
            rows = self.pending.warmup.setdefault(key, [])
            if len(rows) < warmup.size(event.model):
                rows.append(warmup_row(event, topic))

    def take_pending(self) -> PendingEffects:
        """Hand the pending effects to a checkpoint and start afresh."""
        pending, self.pending = self.pending, PendingEffects()
        return pending

    def restore_pending(self, pending: PendingEffects) -> None:
        """Put back effects whose checkpoint failed transiently (the next one retries)."""
        pending.counts.merge(self.pending.counts)
        pending.rejected.extend(self.pending.rejected)  # published ones stay a prefix
        for key, rows in self.pending.warmup.items():
            pending.warmup.setdefault(key, []).extend(rows)
        pending.labels.extend(self.pending.labels)
        pending.records += self.pending.records
        self.pending = pending

    def discard_pending(self) -> None:
        """Forget effects that can no longer be stored (fenced): they will be re-consumed.

        Open windows hold them too, so they go as well and are re-read from the database.
        """
        self.pending = PendingEffects()
        self.windows.clear()

    def _segments(self, model: str) -> list[str]:
        segments = self._segments_of.get(model)
        if segments is None:
            segments = self._segments_of[model] = self._settings.model(model).segments
        return segments

    def lateness_ms(self, model: str) -> int:
        return self._timing(model)[1]

    def _timing(self, model: str) -> tuple[int, int]:
        """The model's window size and allowed lateness in milliseconds."""
        timing = self._timing_ms.get(model)
        if timing is None:
            config = self._settings.model(model)
            timing = (duration_ms(config.window), duration_ms(config.allowed_lateness))
            self._timing_ms[model] = timing
        return timing
