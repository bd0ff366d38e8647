"""Labels meet their predictions, inside the checkpoint that consumed either side.

Predictions with an id wait in ``pending_predictions`` for their model's ``label_horizon``
(event time, against the predictions watermark); labels look them up a batch at a time. A
label that comes first waits in ``early_labels`` for ``early_label_grace`` (wall clock), then
counts as orphaned. Each join adds to the performance share of the PREDICTION's window, and a
window already closed gets its performance metrics computed and stored again, so rules see
performance as it matures (DESIGN.md §5).

All of it runs in the checkpoint's transaction, beside the offsets of the records involved:
a crash loses no join and counts none twice. On PostgreSQL two members may race (one stores a
prediction while the other stores its label as early); every checkpoint therefore also joins
waiting labels whose prediction has meanwhile been stored, before any of them expires.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from math import isfinite
from typing import Any

from sqlalchemy import Connection

from monitor.alerting import AlertEvaluator
from monitor.ingest.events import LabelEvent, PredictionEvent
from monitor.settings import ModelConfig, Settings
from monitor.stats.detectors import ScoreChangeDetector
from monitor.store import labels as stored
from monitor.store import windows as stored_windows
from monitor.store.labels import StoredLabel, StoredPrediction
from monitor.store.windows import MetricRow, WindowId
from monitor.windows.columns import category_key
from monitor.windows.counts import WindowCounts
from monitor.windows.evaluation import Metric, evaluate_labelled
from monitor.windows.labelled import Join, LabelledState, binary
from monitor.windows.ranges import duration_ms, to_datetime, window_start

TP = tuple[str, int]
WindowKey = tuple[str, str, int, int]  # model, version, window start and end (ms)
NO_PARTITION: TP = ("", -1)  # joins no record completed: a waiting label met its prediction
ShareKey = tuple[str, str, datetime, str, int]
Joins = dict[TP, list[tuple[StoredPrediction, Any, int]]]  # prediction, label, label time
DEFAULTS = ModelConfig(name="default")  # what a model missing from the config gets
WHOLE_ONLY = ("",)  # the slices of an unsegmented prediction: the whole model


@dataclass(slots=True)
class PendingLabelWork:
    """This batch's side of the join: predictions with an id and labels, in arrival order."""

    predictions: list[tuple[TP, WindowKey, PredictionEvent]] = field(default_factory=list)
    """Predictions with an id, each with its partition and window."""
    labels: list[tuple[TP, LabelEvent]] = field(default_factory=list)
    resent: set[int] = field(default_factory=set)
    """Set by `Joiner.apply`: the predictions (events, by ``id()``) whose id was already
    waiting."""

    def extend(self, other: PendingLabelWork) -> None:
        self.predictions += other.predictions
        self.labels += other.labels

    def __bool__(self) -> bool:
        return bool(self.predictions or self.labels)


def waiting_row(
    event: PredictionEvent, window: WindowKey, segment_keys: Sequence[str]
) -> stored.PredictionRow:
    """The stored columns of a prediction with an id, in `StoredPrediction`'s order."""
    slices: tuple[str, ...] = WHOLE_ONLY
    segment = event.segment
    if segment_keys and segment:
        slices = ("", *(f"{key}={segment[key]}" for key in segment_keys if key in segment))
    scores = event.scores
    return (
        event.model,
        event.id or "",
        event.version,
        window[2],
        window[3],
        slices,
        event.prediction,
        _finite(event.score),
        scores if isinstance(scores, dict) else None,
        event.ts_ms,
    )


def _finite(value: Any) -> float | None:
    if type(value) in (int, float) and isfinite(value):
        return float(value)
    return None


class Joiner:
    """Joins one checkpoint's labels and predictions and keeps the performance shares."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        predictions_topic: str | None,
        alerts: AlertEvaluator | None = None,
    ) -> None:
        """``predictions_topic`` None: replayed files, each a stretch of history.

        ``alerts`` re-runs the performance rules of a closed window whose metrics changed.
        """
        self._settings = settings
        self._alerts = alerts
        self._group_id = group_id
        self._predictions_topic = predictions_topic
        self._segment_keys: dict[str, Sequence[str]] = {}

    def apply(self, conn: Connection, work: PendingLabelWork, now: datetime) -> WindowCounts:
        """Store and join ``work``, settle waiting labels, prune; returns the label counts."""
        counts = WindowCounts()
        joins: Joins = defaultdict(list)
        labelled: list[tuple[stored.Key, int]] = []
        work.resent = set()
        self._store_predictions(conn, work.predictions, counts, joins, labelled, work.resent)
        self._join_labels(conn, work.labels, now, counts, joins, labelled)
        self._settle_waiting(conn, now, counts, joins, labelled)
        stored.mark_labelled(conn, labelled)
        self._prune(conn, counts)
        self._add_to_shares(conn, joins, now)
        return counts

    def _store_predictions(
        self,
        conn: Connection,
        predictions: list[tuple[TP, WindowKey, PredictionEvent]],
        counts: WindowCounts,
        joins: Joins,
        labelled: list[tuple[stored.Key, int]],
        resent: set[int],
    ) -> None:
        if not predictions:
            return
        keys = self._segment_keys
        rows = [
            waiting_row(event, window, keys[m] if (m := window[0]) in keys else self._segments(m))
            for _, window, event in predictions
        ]
        inserted = stored.insert_predictions(conn, rows)
        if len(inserted) < len(predictions):  # some ids were waiting already (or twice here)
            first: set[stored.Key] = set()
            for _, window, event in predictions:
                key = (event.model, event.id or "")
                if key in inserted and key not in first:
                    first.add(key)
                else:  # its id is already waiting (or was, within the horizon): counted once
                    counts.duplicates[window] += 1
                    resent.add(id(event))
        early = stored.take_early_labels(conn, inserted)
        if not early:  # the usual case: labels come after their predictions
            return
        fresh: dict[stored.Key, tuple[TP, StoredPrediction]] = {}
        for (tp, _, _), row in zip(predictions, rows, strict=True):
            if (row[0], row[1]) not in fresh:  # the first of an id is the one stored
                fresh[(row[0], row[1])] = (tp, StoredPrediction(*row))
        for label in early:
            tp, p = fresh[label.key]
            joins[tp].append((p, label.label, label.event_ms))
            labelled.append((p.key, label.event_ms))

    def _segments(self, model: str) -> Sequence[str]:
        """A model's segment keys, looked up once."""
        keys = self._segment_keys[model] = self._settings.model(model).segments
        return keys

    def _join_labels(
        self,
        conn: Connection,
        labels: list[tuple[TP, LabelEvent]],
        now: datetime,
        counts: WindowCounts,
        joins: Joins,
        labelled: list[tuple[stored.Key, int]],
    ) -> None:
        lookups = []
        for tp, label in labels:
            if label.prediction is not None:  # joined upstream: no lookup
                joins[tp].append((self._carried(label), label.label, label.ts_ms))
            elif label.id is None:
                counts.orphans[self._label_window(label.model, label.version, label.ts_ms)] += 1
            else:
                lookups.append((tp, label))
        found = stored.find_predictions(conn, [(lb.model, lb.id) for _, lb in lookups if lb.id])
        done = {key for key, p in found.items() if p.label_ms is not None}
        done.update(key for key, _ in labelled)  # joined to a waiting label just now
        early: dict[stored.Key, StoredLabel] = {}
        for tp, label in lookups:
            key = (label.model, str(label.id))
            prediction = found.get(key)
            if prediction is None:
                early.setdefault(
                    key, StoredLabel(*key, label.version, label.label, label.ts_ms, now)
                )
            elif key not in done:  # a second label for a prediction is ignored
                done.add(key)
                joins[tp].append((prediction, label.label, label.ts_ms))
                labelled.append((key, label.ts_ms))
        stored.insert_early_labels(conn, list(early.values()))

    def _carried(self, label: LabelEvent) -> StoredPrediction:
        """The prediction a label carries, in the window of the label's own event time."""
        version = label.version or "default"
        size = duration_ms(self._settings.model(label.model).window)
        start = window_start(label.ts_ms, size)
        scores = label.scores if isinstance(label.scores, dict) else None
        return StoredPrediction(
            label.model,
            label.id or "",
            version,
            start,
            start + size,
            ("",),
            label.prediction,
            _finite(label.score),
            scores,
            label.ts_ms,
        )

    def _settle_waiting(
        self,
        conn: Connection,
        now: datetime,
        counts: WindowCounts,
        joins: Joins,
        labelled: list[tuple[stored.Key, int]],
    ) -> None:
        """Labels that waited out their model's grace: joined if their prediction is stored
        now (another member stored it while this one stored the label), else orphans."""
        graces = [m.early_label_grace for m in self._settings.models]
        shortest = min([*graces, DEFAULTS.early_label_grace])
        candidates = stored.early_labels_waiting(conn, now - shortest)
        due = [
            c.key
            for c in candidates
            if c.arrived_at <= now - self._settings.model(c.model).early_label_grace
        ]
        if not due:
            return
        found = stored.find_predictions(conn, due)
        done = {key for key, _ in labelled}
        for label in stored.take_early_labels(conn, due):
            prediction = found.get(label.key)
            if prediction is None:
                window = self._label_window(label.model, label.version, label.event_ms)
                counts.orphans[window] += 1
            elif prediction.label_ms is None and label.key not in done:
                done.add(label.key)
                joins[NO_PARTITION].append((prediction, label.label, label.event_ms))
                labelled.append((label.key, label.event_ms))

    def _label_window(
        self, model: str, version: str | None, ts_ms: int
    ) -> tuple[str, str, int, int]:
        size = duration_ms(self._settings.model(model).window)
        start = window_start(ts_ms, size)
        return (model, version or "default", start, start + size)

    def _prune(self, conn: Connection, counts: WindowCounts) -> None:
        """Forget predictions past their horizon; the never-labelled ones are counted."""
        watermark = stored.predictions_watermark(conn, self._group_id, self._predictions_topic)
        if watermark is None:
            return
        cutoffs = {m.name: watermark - _ms_of(m.label_horizon) for m in self._settings.models}
        others = watermark - _ms_of(DEFAULTS.label_horizon)
        for name, version, start, end, was_labelled in stored.prune_predictions(
            conn, cutoffs, others
        ):
            if not was_labelled:
                counts.unlabelled[(name, version, start, end)] += 1

    def _add_to_shares(
        self,
        conn: Connection,
        joins: Joins,
        now: datetime,
    ) -> None:
        """Add the joins to their windows' shares; closed windows get fresh metrics."""
        by_share: dict[ShareKey, tuple[datetime, list[Join]]] = {}
        errors: dict[tuple[str, TP], list[tuple[float, ShareKey]]] = defaultdict(list)
        for tp, joined in joins.items():
            for p, label, label_ms in joined:
                key = (p.model, p.version, to_datetime(p.start_ms), *tp)
                entry = by_share.setdefault(key, (to_datetime(p.end_ms), []))
                entry[1].append(
                    Join(
                        p.slices,
                        p.prediction,
                        p.score,
                        p.scores,
                        label,
                        (label_ms - p.event_ms) / 1000,
                    )
                )
                error = self._error(p.model, p.prediction, label)
                if error is not None and tp != NO_PARTITION:
                    errors[(p.model, tp)].append((error, key))
        windows = sorted({(k[0], k[1], k[2]) for k in by_share})
        for window in windows:  # a close takes it too, so it sees these shares or we see it
            stored.lock_performance(conn, *window)
        states = {
            key: LabelledState.from_bytes(raw)
            for key, raw in stored.load_performance(conn, by_share).items()
        }
        changes = self._detect(conn, errors, now)
        saved = []
        for key, (end, rows) in sorted(by_share.items()):
            model = self._settings.model(key[0])
            state = states.get(key) or LabelledState(model.task, model.positive_class)
            state.update(rows)
            state.error_changes += changes.get(key, 0)
            saved.append((key, end, state.to_bytes()))
        stored.save_performance(conn, saved, now)
        ends = {(k[0], k[1], k[2]): end for k, (end, _) in by_share.items()}
        for window in sorted(stored_windows.closed_among(conn, windows)):
            counters = stored_windows.window_counters(conn, window)
            per_slice = stored_windows.slice_events(conn, window)
            per_slice[""] = counters["events"] + counters["late_events"]
            metrics = labelled_rows(conn, window, ends[window], per_slice, self._settings)
            stored_windows.save_metrics(conn, metrics, now)
            if self._alerts is not None and metrics:
                stored_rows = stored_windows.window_metrics(conn, window)
                changed = {m.metric for m in metrics}
                self._alerts.on_window(conn, window, ends[window], stored_rows, now, changed)

    def _error(self, model: str, prediction: Any, label: Any) -> float | None:
        """The error-stream value of one join: 0/1 (classification) or |error| (regression)."""
        if self._settings.model(model).task == "regression":
            truth, predicted = _finite(label), _finite(prediction)
            return None if truth is None or predicted is None else abs(truth - predicted)
        left, right = category_key(binary(label)), category_key(binary(prediction))
        return None if left is None or right is None else float(left != right)

    def _detect(
        self,
        conn: Connection,
        errors: Mapping[tuple[str, TP], list[tuple[float, ShareKey]]],
        now: datetime,
    ) -> dict[ShareKey, int]:
        """Feed each (model, partition) error detector in arrival order; firings per share."""
        if not errors:
            return {}
        tps = sorted({tp for _, tp in errors})
        snapshots = {
            (model, topic, partition): snapshot
            for model, topic, partition, snapshot in stored_windows.load_detectors(
                conn, self._group_id, tps
            )
        }
        fired: dict[ShareKey, int] = defaultdict(int)
        saved = []
        for (model, tp), values in sorted(errors.items()):
            key = (model, *tp)
            detector = (
                ScoreChangeDetector.from_snapshot(snapshots[key])
                if key in snapshots
                else ScoreChangeDetector()
            )
            for i in detector.update_many([v for v, _ in values]):
                fired[values[i][1]] += 1
            saved.append((model, tp[0], tp[1], detector.snapshot()))
        stored_windows.save_detectors(conn, self._group_id, saved, now)
        return fired


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _ms_of(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


def labelled_rows(
    conn: Connection,
    window: WindowId,
    end: datetime,
    predictions: Mapping[str, int],
    settings: Settings,
) -> list[MetricRow]:
    """The performance metric rows of a window from all its shares (none: no rows)."""
    shares = stored.window_performance(conn, *window)
    return metric_rows(window, end, labelled_metrics(window, shares, predictions, settings))


def labelled_metrics(
    window: WindowId, shares: Sequence[bytes], predictions: Mapping[str, int], settings: Settings
) -> list[Metric]:
    """The performance metrics of a window from its stored ``shares`` (none: no metrics)."""
    if not shares:
        return []
    merged = LabelledState.from_bytes(shares[0])
    for raw in shares[1:]:
        merged.merge(LabelledState.from_bytes(raw))
    min_labels = settings.model(window[0]).min_labels
    return evaluate_labelled(merged, predictions, min_labels=min_labels)


def metric_rows(window: WindowId, end: datetime, metrics: Iterable[Metric]) -> list[MetricRow]:
    model, version, start = window
    return [
        MetricRow(
            model, version, m.segment, start, end, m.feature, m.metric, m.value, m.n, m.decision
        )
        for m in metrics
    ]
