"""The daemon's own Prometheus metrics, on an injected registry.

Two kinds:

- `LoopMetrics`, kept by the run loop in this process: batch processing and checkpoint time,
  consumer lag per partition (the broker's high watermark minus the position consumed),
  seconds since the last checkpoint.
- `StoredFigures`, a collector that reads the database when scraped (cached for a few
  seconds): events consumed, rejected and late, labels joined and orphaned, open windows, the
  newest closed window's drift, quality and performance values, firing alerts and the outbox.
  Read from the database, these are the stored truth: they survive restarts (counters never
  reset) and two replicas export the same figures, so dashboards take ``max`` across them.

Label sets stay bounded: at most ``http.metrics_max_features`` features per model (the most
drifted first) and whole-model values only unless ``http.metrics_segments`` is on.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from monitor.rules.matching import PERFORMANCE, QUALITY_RATES
from monitor.settings import Settings
from monitor.stats.names import DRIFT_METRICS
from monitor.store import alerts as stored_alerts
from monitor.store import figures, outbox, repository
from monitor.store import windows as stored_windows
from monitor.store.db import transaction
from monitor.store.windows import MetricRow

UNKNOWN = "-"  # the model label of dead letters whose model is unknown
MATURING = (*sorted(PERFORMANCE), "label_coverage", "label_delay_p50", "label_delay_p95")
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopMetrics:
    """What the run loop measures as it goes."""

    def __init__(self, registry: CollectorRegistry, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._checkpoint_at: float | None = None
        self.batch_seconds = Histogram(
            "monitor_batch_processing_seconds",
            "Time to decode and route one polled batch into windows.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.checkpoint_seconds = Histogram(
            "monitor_checkpoint_seconds",
            "Time to store one checkpoint (window state, counts, offsets) in the database.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            "monitor_consumer_lag",
            "Records behind the broker's high watermark, per assigned partition.",
            ["topic", "partition"],
            registry=registry,
        )
        since = Gauge(
            "monitor_seconds_since_checkpoint",
            "Seconds since this process last stored a checkpoint (-1: none yet).",
            registry=registry,
        )
        since.set_function(self._since_checkpoint)

    def checkpointed(self, seconds: float) -> None:
        self._checkpoint_at = self._monotonic()
        self.checkpoint_seconds.observe(seconds)

    def _since_checkpoint(self) -> float:
        at = self._checkpoint_at
        return -1.0 if at is None else self._monotonic() - at

    def set_lags(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace the per-partition lags (partitions no longer assigned disappear)."""
        self.lag.clear()
        for (topic, partition), lag in lags.items():
            self.lag.labels(topic, str(partition)).set(lag)


@dataclass(slots=True)
class _Figures:
    consumed: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    joined: Counter[str] = field(default_factory=Counter)
    orphaned: Counter[str] = field(default_factory=Counter)
    open_windows: Counter[str] = field(default_factory=Counter)
    window_events: dict[tuple[str, ...], float] = field(default_factory=dict)
    rows: list[MetricRow] = field(default_factory=list)
    firing: dict[tuple[str, str | None], int] = field(default_factory=dict)
    outbox_pending: Counter[str] = field(default_factory=Counter)


class StoredFigures(Collector):
    """A collector of the database's figures (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, _Figures] | None = None

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        found = self._figures()
        yield _counter("monitor_events_consumed", "Events counted in windows.", found.consumed)
        yield _counter(
            "monitor_events_rejected", "Events sent to the dead letters.", found.rejected
        )
        yield _counter("monitor_events_late", "Events later than allowed lateness.", found.late)
        yield _counter("monitor_labels_joined", "Labels joined to a prediction.", found.joined)
        yield _counter("monitor_labels_orphaned", "Labels that never met a prediction.",
                       found.orphaned)  # fmt: skip
        yield _gauge("monitor_open_windows", "Windows holding state, not yet closed.",
                     ["model"], {(m,): n for m, n in found.open_windows.items()})  # fmt: skip
        yield _gauge("monitor_window_events", "Events in the newest closed window.",
                     ["model", "version"], found.window_events)  # fmt: skip
        yield from self._window_values(found.rows)
        yield _gauge("monitor_alerts_firing", "Firing alerts by model and severity.",
                     ["model", "severity"],
                     {(m, s or "none"): n for (m, s), n in found.firing.items()})  # fmt: skip
        yield _gauge("monitor_outbox_pending", "Deliveries waiting in the outbox, by kind.",
                     ["kind"], {(k,): n for k, n in found.outbox_pending.items()})  # fmt: skip

    def _window_values(self, rows: list[MetricRow]) -> Iterable[Metric]:
        drift = GaugeMetricFamily(
            "monitor_window_drift",
            "Drift of the newest closed window, per feature and statistic.",
            labels=["model", "version", "feature", "metric"],
        )
        quality = GaugeMetricFamily(
            "monitor_window_quality",
            "Data-quality rates of the newest closed window, per feature.",
            labels=["model", "version", "feature", "metric"],
        )
        performance = GaugeMetricFamily(
            "monitor_window_performance",
            "Performance of the newest window decided on enough labels.",
            labels=["model", "version", "metric"],
        )
        sliced = ["model", "version", "segment", "feature", "metric"]
        segment_drift = GaugeMetricFamily(
            "monitor_window_segment_drift",
            "Drift of the newest closed window per segment slice (http.metrics_segments).",
            labels=sliced,
        )
        segment_quality = GaugeMetricFamily(
            "monitor_window_segment_quality",
            "Data-quality rates of the newest closed window per segment slice.",
            labels=sliced,
        )
        allowed = _bounded_features(rows, self._settings.http.metrics_max_features)
        for r in rows:
            if r.value is None or not math.isfinite(r.value):
                continue
            if r.metric in MATURING:
                if r.feature is None and r.segment is None:
                    performance.add_metric([r.model, r.version, r.metric], r.value)
            elif r.feature is not None and (r.model, r.feature) in allowed:
                is_drift = r.metric in DRIFT_METRICS
                if r.segment is None:
                    family = drift if is_drift else quality
                    family.add_metric([r.model, r.version, r.feature, r.metric], r.value)
                else:
                    family = segment_drift if is_drift else segment_quality
                    labels = [r.model, r.version, r.segment, r.feature, r.metric]
                    family.add_metric(labels, r.value)
        yield from (drift, quality, performance)
        if self._settings.http.metrics_segments:
            yield from (segment_drift, segment_quality)

    def _figures(self) -> _Figures:
        with self._lock:
            now = self._monotonic()
            if self._cached is not None and now - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            found = self._read()
            self._cached = (now, found)
            return found

    def _read(self) -> _Figures:
        found = _Figures()
        window_metrics = (*DRIFT_METRICS, *QUALITY_RATES, "events")
        with transaction(self._engine) as conn:
            totals = repository.model_totals(conn)
            dead_total, dead = repository.dead_letter_counts(conn)
            waiting = figures.early_label_counts(conn)
            open_now = stored_windows.open_windows(conn)
            segments = self._settings.http.metrics_segments
            rows = figures.newest_window_rows(conn, window_metrics, segments)
            rows += figures.newest_decided_rows(conn, MATURING)
            found.firing = stored_alerts.firing_counts(conn)
            states = outbox.state_counts(conn)
        for t in totals:
            found.consumed[t.model] += t.events
            found.late[t.model] += t.late_events
            found.orphaned[t.model] += t.orphan_labels
            found.joined[t.model] += t.labels - t.orphan_labels
        for model, n in waiting.items():
            found.joined[model] -= n
        for (model, _), n in dead.items():
            found.rejected[model] += n
        unknown = dead_total - sum(dead.values())  # no model could be read from them
        if unknown:
            found.rejected[UNKNOWN] += unknown
        found.open_windows.update(model for (model, _, _), _ in open_now)
        for r in rows:
            if r.metric == "events" and r.feature is None and r.value is not None:
                found.window_events[(r.model, r.version)] = int(r.value)
        found.rows = [r for r in rows if r.metric != "events"]
        found.outbox_pending.update(
            {kind: n for (kind, state), n in states.items() if state == "pending"}
        )
        return found


def _bounded_features(rows: list[MetricRow], limit: int) -> set[tuple[str, str]]:
    """(model, feature) pairs exported: per model the ``limit`` features highest in PSI."""
    psi: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.feature is None or r.segment is not None or r.metric in MATURING:
            continue
        ranking = psi.setdefault(r.model, {})
        value = r.value if r.metric == "psi" and r.value is not None else -math.inf
        ranking[r.feature] = max(ranking.get(r.feature, -math.inf), value)
    allowed: set[tuple[str, str]] = set()
    for model, ranking in psi.items():
        ordered = sorted(ranking, key=lambda f: (-ranking[f], f))
        allowed.update((model, feature) for feature in ordered[:limit])
    return allowed


def _counter(name: str, documentation: str, values: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["model"])
    for model, value in sorted(values.items()):
        family.add_metric([model], max(value, 0))
    return family


def _gauge(
    name: str, documentation: str, labels: list[str], values: Mapping[tuple[str, ...], float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family
