"""`monitor status`: what the database knows per model, plus consumer lag when Kafka answers.

The JSON shape is DESIGN.md §7's. Lag is display only: stored next offset against the
broker's log end, omitted (null) when the broker cannot be reached. ``log_reset`` says when a
partition's broker log was last found restarted below the offset expected (else null).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from monitor.errors import IngestError
from monitor.ingest.consumer import end_offsets
from monitor.settings import Settings
from monitor.store import repository
from monitor.store import warmup as stored_warmup
from monitor.store import windows as stored_windows
from monitor.store.db import transaction

log = logging.getLogger(__name__)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with ``Z``, the one time format monitor prints."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _warmup(settings: Settings, model: str, stored: int) -> dict[str, int] | None:
    """Progress of a ``reference: {warmup: N}`` model: events stored of N (None: none)."""
    reference = settings.model(model).reference
    if reference is None or not reference.warmup:
        return None
    return {"events": stored, "of": reference.warmup}


def status_report(settings: Settings, engine: Engine, *, with_lag: bool = True) -> dict[str, Any]:
    """The status document: per model and version, dead letters, partitions."""
    with transaction(engine) as conn:
        totals = repository.model_totals(conn)
        dead_total, dead_per_model = repository.dead_letter_counts(conn)
        references = repository.reference_models(conn)
        warming = stored_warmup.counts(conn)
        closed = stored_windows.closed_window_counts(conn)
        open_now = Counter((m, v) for (m, v, _), _ in stored_windows.open_windows(conn))
        drift = {(t.model, t.version): _top_drift(conn, t.model, t.version) for t in totals}
        performance = {(t.model, t.version): _performance(conn, t.model, t.version) for t in totals}
        topics = [settings.kafka.predictions_topic, settings.kafka.labels_topic]
        offsets = repository.load_offsets(conn, settings.kafka.group_id, topics)
        resets = repository.load_resets(conn, settings.kafka.group_id, topics)
    ends: dict[tuple[str, int], int] = {}
    if with_lag and offsets:
        try:
            ends = end_offsets(settings, offsets)
        except IngestError as exc:
            log.info("lag unavailable: %s", exc)
    models: list[dict[str, Any]] = [
        {
            "model": t.model,
            "version": t.version,
            "events": t.events,
            "labels": t.labels,
            "rejected": dead_per_model.get((t.model, t.version), 0),
            "late": t.late_events,
            "duplicates": t.duplicates,
            "unlabelled": t.unlabelled,
            "orphan_labels": t.orphan_labels,
            "last_event_time": iso(t.last_event_time),
            "reference": (t.model, t.version) in references or (t.model, None) in references,
            "warmup": _warmup(settings, t.model, warming.get((t.model, t.version), 0)),
            "open_windows": open_now[(t.model, t.version)],
            "closed_windows": closed.get((t.model, t.version), 0),
            "last_closed_window": drift[(t.model, t.version)][0],
            "top_drift": drift[(t.model, t.version)][1],
            "performance": performance[(t.model, t.version)],
        }
        for t in totals
    ]
    partitions = [
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "lag": max(0, ends[(topic, partition)] - offset)
            if (topic, partition) in ends
            else None,
            "log_reset": _log_reset(resets.get((topic, partition))),
        }
        for (topic, partition), offset in sorted(offsets.items())
    ]
    return {"models": models, "dead_letters": dead_total, "partitions": partitions}


def _log_reset(reset: repository.OffsetReset | None) -> dict[str, Any] | None:
    """The last time the partition's broker log restarted below the offset expected."""
    if reset is None:
        return None
    return {"expected_offset": reset.expected, "at": iso(reset.at)}


def metric_rows(
    engine: Engine,
    model: str,
    feature: str | None = None,
    metric: str | None = None,
    segment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Closed-window metrics as `monitor metrics --json` and the API print them."""
    with transaction(engine) as conn:
        rows = stored_windows.query_metrics(
            conn, model, feature=feature, metric=metric, segment=segment, since=since, until=until
        )
    return [
        {
            "model": r.model,
            "version": r.version,
            "segment": r.segment,
            "window_start": iso(r.window_start),
            "window_end": iso(r.window_end),
            "feature": r.feature,
            "metric": r.metric,
            "value": r.value,
            "n": r.n,
            "decision": r.decision,
        }
        for r in rows
    ]


HEADLINE = (
    "accuracy", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2",
    "label_coverage", "label_delay_p50", "label_delay_p95",
)  # fmt: skip


def _performance(conn: Connection, model: str, version: str) -> dict[str, Any] | None:
    """The newest window with labels joined: its headline performance, coverage and delay."""
    latest = stored_windows.latest_with_metric(conn, model, version, "label_coverage")
    if latest is None:
        return None
    start, end = latest
    rows = stored_windows.query_metrics(conn, model, since=start, until=end)
    found = {
        r.metric: r
        for r in rows
        if r.version == version and r.segment is None and r.feature is None
        and r.metric in HEADLINE and r.window_start == start
    }  # fmt: skip
    labelled = found["label_delay_p50"].n if "label_delay_p50" in found else 0
    return {
        "window_start": iso(start),
        "labelled": labelled,
        "metrics": {name: found[name].value for name in HEADLINE if name in found},
        "insufficient_data": any(r.decision == "insufficient_data" for r in found.values()),
    }


def _top_drift(
    conn: Connection, model: str, version: str, limit: int = 3
) -> tuple[str | None, list[dict[str, Any]]]:
    """The newest closed window's start, and its most drifted features by PSI."""
    latest = stored_windows.latest_closed(conn, model, version)
    if latest is None:
        return None, []
    start, end = latest
    rows = [
        r
        for r in stored_windows.query_metrics(conn, model, metric="psi", since=start, until=end)
        if r.version == version
        and r.value is not None
        and r.feature is not None
        and r.decision != "insufficient_data"
    ]
    rows.sort(key=lambda r: (r.decision == "drift", r.value), reverse=True)
    return iso(start), [
        {"feature": r.feature, "psi": r.value, "decision": r.decision} for r in rows[:limit]
    ]


def windows_report(
    engine: Engine, model: str, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The closed windows of ``model``, as the API lists them."""
    with transaction(engine) as conn:
        rows = stored_windows.closed_windows(conn, model, since)
    return [
        {
            "model": r.model,
            "version": r.version,
            "window_start": iso(r.window_start),
            "window_end": iso(r.window_end),
            "events": r.events,
            "reference_revision": r.reference_revision,
            "closed_at": iso(r.closed_at),
        }
        for r in rows
    ]
