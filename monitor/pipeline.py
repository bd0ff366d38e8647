"""The prose of the system: decode → route → windows (→ close → evaluate → act).

Kafka and replayed files feed records here, a partition's slice at a time. Each record
becomes a typed event or a rejection; events land in their model's event-time window;
rejections wait for the dead letters. Nothing here does I/O: the effects stay pending until
the checkpoint stores them together with the offsets they came from. A prediction with an id
is staged instead: the checkpoint, which stores it for its label, learns whether the id was
already waiting (a producer's resend) and only then counts it and adds it to its window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.checkpoint import Ledger, PendingEffects
from monitor.ingest.events import (
    EventParser,
    Kind,
    LabelEvent,
    PredictionEvent,
    RawRecord,
    Rejected,
)
from monitor.reference.warmup import Warmup, warmup_row
from monitor.settings import Settings
from monitor.windows.manager import WindowManager
from monitor.windows.ranges import duration_ms


@dataclass(frozen=True, slots=True)
class ModelRouting:
    """What routing needs of a model's config, looked up once per model, not per event."""

    size_ms: int  # window size
    lateness_ms: int
    warming: bool  # a version of it may be warming up its reference


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
        self._routing: dict[str, ModelRouting] = {}
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
        fresh = ledger.unconsumed(tp, records)
        if not fresh:
            return 0
        latest_ms = self._parser.latest_usable_ms()
        pending = self.pending
        rejected, joining, staged = pending.rejected, pending.labels, pending.staged
        max_ms = ledger.max_event_ms(tp)
        by_window: dict[tuple[str, str, int, int], list[PredictionEvent]] = {}
        late: Counter[tuple[str, str, int, int]] = Counter()
        labels: Counter[tuple[str, str, int, int]] = Counter()
        scores: dict[str, tuple[list[float], list[tuple[str, int]]]] = {}
        warmup_candidates: list[PredictionEvent] = []
        for event in self._parser.parse_batch(fresh, kind, topic, partition, latest_ms):
            if isinstance(event, Rejected):
                rejected.append(event)
                continue
            model = event.model
            routing = self._routing.get(model) or self._routing_for(model)
            start = event.ts_ms - event.ts_ms % routing.size_ms
            if isinstance(event, LabelEvent):  # labels do not move watermarks
                labels[(model, event.version or "default", start, start + routing.size_ms)] += 1
                joining.labels.append((tp, event))
                continue
            key = (model, event.version, start, start + routing.size_ms)
            # Late: below this partition's own watermark at arrival (DESIGN.md §4), so a
            # replay of the partition decides exactly as the first run did.
            is_late = max_ms is not None and event.ts_ms < max_ms - routing.lateness_ms
            if event.id is not None:  # late or not, it may get a label; the checkpoint
                joining.predictions.append((tp, key, event))  # counts it unless a resend
                if is_late:
                    pending.staged_late.append((key, event))
                elif (waiting := staged.get((tp, key))) is None:
                    staged[(tp, key)] = [event]
                else:
                    waiting.append(event)
            elif is_late:
                late[key] += 1
            elif (window := by_window.get(key)) is None:
                by_window[key] = [event]
            else:
                window.append(event)
            if is_late:
                continue
            if routing.warming:
                warmup_candidates.append(event)
            score = event.score
            if (type(score) is float or type(score) is int) and math.isfinite(score):
                values, where = scores.get(model) or scores.setdefault(model, ([], []))
                values.append(score)
                where.append((event.version, start))
            if max_ms is None or event.ts_ms > max_ms:
                max_ms = event.ts_ms
        counts = self.pending.counts
        counts.late.update(late)
        counts.labels.update(labels)
        for key, events in by_window.items():
            counts.add_events(key, len(events), max(e.ts_ms for e in events))
            self.windows.add(tp, key[0], key[1], key[2:], events)
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
        pending.restage(self.pending)
        pending.records += self.pending.records
        self.pending = pending

    def discard_pending(self) -> None:
        """Forget effects that can no longer be stored (fenced): they will be re-consumed.

        Open windows hold them too, so they go as well and are re-read from the database.
        """
        self.pending = PendingEffects()
        self.windows.clear()

    def lateness_ms(self, model: str) -> int:
        return (self._routing.get(model) or self._routing_for(model)).lateness_ms

    def _routing_for(self, model: str) -> ModelRouting:
        config = self._settings.model(model)
        routing = self._routing[model] = ModelRouting(
            duration_ms(config.window),
            duration_ms(config.allowed_lateness),
            model in self._warmup_models,
        )
        return routing
