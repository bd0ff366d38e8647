"""Window state in the database: partial states, the close claim, and metric rows.

A window's partial states (one per partition) are upserted by the partitions' owners in their
checkpoints; closing claims the window by inserting its ``closed_windows`` row (the insert
that succeeds evaluates), merges the partials, stores the metrics and deletes the partials, in
one transaction. On PostgreSQL a transaction-scoped advisory lock per window orders a
checkpoint that writes a partial against the close that reads them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, func, or_, select, text

from monitor.store.repository import TopicPartition, dialect_insert
from monitor.store.tables import (
    ClosedWindow,
    DetectorState,
    WindowCount,
    WindowMetric,
    WindowPartial,
)

_PARTIALS: Table = WindowPartial.__table__  # type: ignore[assignment]
_CLOSED: Table = ClosedWindow.__table__  # type: ignore[assignment]
_METRICS: Table = WindowMetric.__table__  # type: ignore[assignment]
_COUNTS: Table = WindowCount.__table__  # type: ignore[assignment]
_DETECTORS: Table = DetectorState.__table__  # type: ignore[assignment]

WindowId = tuple[str, str, datetime]  # model, version, window start


def lock_window(conn: Connection, window: WindowId, *, shared: bool) -> None:
    """Order checkpoints (shared) against the close (exclusive) of one window; PostgreSQL only.

    SQLite needs none: its write transactions (BEGIN IMMEDIATE) already run one at a time.
    """
    if conn.dialect.name != "postgresql":
        return
    model, version, start = window
    key = zlib.crc32(f"{model}\x00{version}\x00{start.isoformat()}".encode()) - 2**31
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    conn.execute(text(f"SELECT {function}(:key)"), {"key": key})


def _window_is(table: Table, window: WindowId) -> Any:
    model, version, start = window
    return and_(table.c.model == model, table.c.version == version, table.c.window_start == start)


def closed_among(conn: Connection, windows: Iterable[WindowId]) -> set[WindowId]:
    """Those of ``windows`` that are already closed."""
    wanted = list(set(windows))
    if not wanted:
        return set()
    rows = conn.execute(
        select(_CLOSED.c.model, _CLOSED.c.version, _CLOSED.c.window_start).where(
            or_(*(_window_is(_CLOSED, w) for w in wanted))
        )
    )
    return {(m, v, s) for m, v, s in rows}


@dataclass(frozen=True, slots=True)
class PartialRow:
    """One partition's stored share of one window."""

    model: str
    version: str
    window_start: datetime
    window_end: datetime
    topic: str
    partition: int
    reference_revision: int | None
    events: int
    state: bytes


def save_partials(conn: Connection, rows: Sequence[PartialRow], now: datetime) -> None:
    """Replace the stored shares of these (window, partition) pairs."""
    if not rows:
        return
    statement = dialect_insert(conn, _PARTIALS)
    statement = statement.on_conflict_do_update(
        index_elements=["model", "version", "window_start", "topic", "partition"],
        set_={
            "state": statement.excluded.state,
            "events": statement.excluded.events,
            "reference_revision": statement.excluded.reference_revision,
            "updated_at": statement.excluded.updated_at,
        },
    )
    conn.execute(statement, [_partial_values(r, now) for r in rows])


def _partial_values(row: PartialRow, now: datetime) -> dict[str, Any]:
    return {
        "model": row.model,
        "version": row.version,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "topic": row.topic,
        "partition": row.partition,
        "reference_revision": row.reference_revision,
        "events": row.events,
        "state": row.state,
        "updated_at": now,
    }


def load_partials(
    conn: Connection, tps: Iterable[TopicPartition] | None = None, window: WindowId | None = None
) -> list[PartialRow]:
    """Stored shares of these partitions, or of one window."""
    query = select(_PARTIALS)
    if tps is not None:
        wanted = list(tps)
        if not wanted:
            return []
        query = query.where(
            or_(*(and_(_PARTIALS.c.topic == t, _PARTIALS.c.partition == p) for t, p in wanted))
        )
    if window is not None:
        query = query.where(_window_is(_PARTIALS, window))
    return [
        PartialRow(
            r.model,
            r.version,
            r.window_start,
            r.window_end,
            r.topic,
            r.partition,
            r.reference_revision,
            r.events,
            r.state,
        )
        for r in conn.execute(query.order_by(_PARTIALS.c.topic, _PARTIALS.c.partition))
    ]


def open_windows(conn: Connection) -> list[tuple[WindowId, datetime]]:
    """Every window with stored partial state, with its end, oldest first."""
    query = (
        select(_PARTIALS.c.model, _PARTIALS.c.version, _PARTIALS.c.window_start)
        .add_columns(func.max(_PARTIALS.c.window_end))
        .group_by(_PARTIALS.c.model, _PARTIALS.c.version, _PARTIALS.c.window_start)
        .order_by(_PARTIALS.c.window_start, _PARTIALS.c.model, _PARTIALS.c.version)
    )
    return [((m, v, s), end) for m, v, s, end in conn.execute(query)]


def claim_window(
    conn: Connection,
    window: WindowId,
    window_end: datetime,
    events: int,
    revision: int | None,
    now: datetime,
) -> bool:
    """Mark the window closed; False when another process closed it first."""
    model, version, start = window
    statement = (
        dialect_insert(conn, _CLOSED)
        .values(
            model=model,
            version=version,
            window_start=start,
            window_end=window_end,
            events=events,
            reference_revision=revision,
            closed_at=now,
        )
        .on_conflict_do_nothing()
        .returning(_CLOSED.c.model)
    )
    return conn.execute(statement).first() is not None


def delete_partials(conn: Connection, window: WindowId) -> None:
    conn.execute(delete(_PARTIALS).where(_window_is(_PARTIALS, window)))


COUNT_METRICS = ("late_events", "duplicates", "unlabelled", "orphan_labels")


def window_counters(conn: Connection, window: WindowId) -> dict[str, int]:
    """The window's counted ``events`` and the ``COUNT_METRICS`` so far (0 when none)."""
    columns = [_COUNTS.c[name] for name in ("events", *COUNT_METRICS)]
    row = conn.execute(select(*columns).where(_window_is(_COUNTS, window))).first()
    names = ("events", *COUNT_METRICS)
    return {name: int(row[i]) if row is not None else 0 for i, name in enumerate(names)}


def slice_events(conn: Connection, window: WindowId) -> dict[str, int]:
    """Events per slice ('' the whole model) of a closed window, from its ``events`` metrics."""
    query = select(_METRICS.c.segment, _METRICS.c.value).where(
        _window_is(_METRICS, window), _METRICS.c.metric == "events", _METRICS.c.feature == ""
    )
    return {segment: int(value or 0) for segment, value in conn.execute(query)}


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One stored metric; ``segment`` and ``feature`` None for whole model / model level."""

    model: str
    version: str
    segment: str | None
    window_start: datetime
    window_end: datetime
    feature: str | None
    metric: str
    value: float | None
    n: int
    decision: str | None


def count_metric_rows(window: WindowId, end: datetime, counters: dict[str, int]) -> list[MetricRow]:
    """The model-level count metrics of a window (``n`` is the count itself)."""
    model, version, start = window
    return [
        MetricRow(
            model,
            version,
            None,
            start,
            end,
            None,
            name,
            float(counters[name]),
            counters[name],
            None,
        )
        for name in COUNT_METRICS
    ]


def save_metrics(conn: Connection, rows: Sequence[MetricRow], now: datetime) -> None:
    """Insert or replace metric rows (a late update replaces the row, with its new ``n``)."""
    if not rows:
        return
    statement = dialect_insert(conn, _METRICS)
    statement = statement.on_conflict_do_update(
        index_elements=["model", "version", "segment", "window_start", "feature", "metric"],
        set_={
            "value": statement.excluded.value,
            "n": statement.excluded.n,
            "decision": statement.excluded.decision,
            "updated_at": statement.excluded.updated_at,
        },
    )
    conn.execute(
        statement,
        [
            {
                "model": r.model,
                "version": r.version,
                "segment": r.segment or "",
                "window_start": r.window_start,
                "window_end": r.window_end,
                "feature": r.feature or "",
                "metric": r.metric,
                "value": r.value,
                "n": r.n,
                "decision": r.decision,
                "updated_at": now,
            }
            for r in rows
        ],
    )


def query_metrics(
    conn: Connection,
    model: str,
    *,
    feature: str | None = None,
    metric: str | None = None,
    segment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[MetricRow]:
    """Metric rows of ``model`` in window order; ``segment`` '' or None: the whole model."""
    query = select(_METRICS).where(_METRICS.c.model == model, _METRICS.c.segment == (segment or ""))
    if feature is not None:
        query = query.where(_METRICS.c.feature == ("" if feature == "-" else feature))
    if metric is not None:
        query = query.where(_METRICS.c.metric == metric)
    if since is not None:
        query = query.where(_METRICS.c.window_end > since)
    if until is not None:
        query = query.where(_METRICS.c.window_start < until)
    query = query.order_by(
        _METRICS.c.window_start, _METRICS.c.version, _METRICS.c.feature, _METRICS.c.metric
    )
    return [metric_row(r) for r in conn.execute(query)]


def window_metrics(conn: Connection, window: WindowId) -> list[MetricRow]:
    """Every metric row of one window, all segments."""
    model, version, start = window
    query = select(_METRICS).where(
        _METRICS.c.model == model,
        _METRICS.c.version == version,
        _METRICS.c.window_start == start,
    )
    return [metric_row(r) for r in conn.execute(query)]


def metric_row(r: Any) -> MetricRow:
    return MetricRow(
        r.model,
        r.version,
        r.segment or None,
        r.window_start,
        r.window_end,
        r.feature or None,
        r.metric,
        r.value,
        r.n,
        r.decision,
    )


@dataclass(frozen=True, slots=True)
class ClosedWindowRow:
    """A closed window as the API lists it."""

    model: str
    version: str
    window_start: datetime
    window_end: datetime
    events: int
    reference_revision: int | None
    closed_at: datetime


def closed_windows(
    conn: Connection, model: str, since: datetime | None = None
) -> list[ClosedWindowRow]:
    """The closed windows of ``model`` ending after ``since``, in time order."""
    query = select(_CLOSED).where(_CLOSED.c.model == model)
    if since is not None:
        query = query.where(_CLOSED.c.window_end > since)
    query = query.order_by(_CLOSED.c.window_start, _CLOSED.c.version)
    return [
        ClosedWindowRow(
            r.model,
            r.version,
            r.window_start,
            r.window_end,
            r.events,
            r.reference_revision,
            r.closed_at,
        )
        for r in conn.execute(query)
    ]


def closed_window_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Closed windows per (model, version)."""
    query = select(_CLOSED.c.model, _CLOSED.c.version, func.count()).group_by(
        _CLOSED.c.model, _CLOSED.c.version
    )
    return {(m, v): int(n) for m, v, n in conn.execute(query)}


def latest_closed(conn: Connection, model: str, version: str) -> tuple[datetime, datetime] | None:
    """The newest closed window of (model, version)."""
    row = conn.execute(
        select(_CLOSED.c.window_start, _CLOSED.c.window_end)
        .where(_CLOSED.c.model == model, _CLOSED.c.version == version)
        .order_by(_CLOSED.c.window_start.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def latest_with_metric(
    conn: Connection, model: str, version: str, metric: str
) -> tuple[datetime, datetime] | None:
    """The newest window of (model, version) with a whole-model ``metric`` row."""
    row = conn.execute(
        select(_METRICS.c.window_start, _METRICS.c.window_end)
        .where(
            _METRICS.c.model == model,
            _METRICS.c.version == version,
            _METRICS.c.metric == metric,
            _METRICS.c.segment == "",
        )
        .order_by(_METRICS.c.window_start.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def save_detectors(
    conn: Connection,
    group_id: str,
    states: Sequence[tuple[str, str, int, bytes]],
    now: datetime,
) -> None:
    """Store detector snapshots as (model, topic, partition, snapshot)."""
    if not states:
        return
    statement = dialect_insert(conn, _DETECTORS)
    statement = statement.on_conflict_do_update(
        index_elements=["group_id", "model", "topic", "partition"],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
    )
    conn.execute(
        statement,
        [
            {
                "group_id": group_id,
                "model": m,
                "topic": t,
                "partition": p,
                "state": s,
                "updated_at": now,
            }
            for m, t, p, s in states
        ],
    )


def load_detectors(
    conn: Connection, group_id: str, tps: Iterable[TopicPartition]
) -> list[tuple[str, str, int, bytes]]:
    """Stored detector snapshots of these partitions as (model, topic, partition, snapshot)."""
    wanted = list(tps)
    if not wanted:
        return []
    query = select(
        _DETECTORS.c.model, _DETECTORS.c.topic, _DETECTORS.c.partition, _DETECTORS.c.state
    ).where(
        _DETECTORS.c.group_id == group_id,
        or_(*(and_(_DETECTORS.c.topic == t, _DETECTORS.c.partition == p) for t, p in wanted)),
    )
    return [(m, t, p, s) for m, t, p, s in conn.execute(query)]
