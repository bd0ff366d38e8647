"""Window state in the database: partial states, the close claim, and metric rows.

A window's partial states (one per partition) are upserted by the partitions' owners in their
checkpoints; closing claims the window by inserting its ``closed_windows`` row (the insert
that succeeds evaluates), merges the partials, stores the metrics and deletes the partials, in
one transaction. On PostgreSQL a transaction-scoped advisory lock per window orders a
checkpoint that writes a partial against the close that reads them.
"""

from __future__ import annotations

import operator
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    Dialect,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.base import PGDialect

from monitor.store.bulk import float_text, json_rows, json_rows_select
from monitor.store.repository import TopicPartition, dialect_insert
from monitor.store.tables import (
    METRIC_KEY,
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
    conn.execute(_SHARED_LOCK if shared else _EXCLUSIVE_LOCK, {"key": _lock_key(window)})


def lock_windows(conn: Connection, windows: Sequence[WindowId]) -> None:
    """`lock_window` (exclusive) for each of ``windows``, in their order, in one statement."""
    if conn.dialect.name != "postgresql" or not windows:
        return
    conn.execute(_EXCLUSIVE_LOCKS, {"keys": [_lock_key(w) for w in windows]})


def _lock_key(window: WindowId) -> int:
    model, version, start = window
    return zlib.crc32(f"{model}\x00{version}\x00{start.isoformat()}".encode()) - 2**31


_SHARED_LOCK = text("SELECT pg_advisory_xact_lock_shared(:key)")
_EXCLUSIVE_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# unnest yields the keys in array order, so the locks are taken in that order
_EXCLUSIVE_LOCKS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS k")


def _window_is(table: Table, window: WindowId) -> Any:
    model, version, start = window
    return and_(table.c.model == model, table.c.version == version, table.c.window_start == start)


# Statements a close runs once per window are built once, with the window as parameters
# (`_window_params`): building a statement per call cost more than running it on SQLite.


def _is_the_window(table: Table) -> Any:
    """``table``'s rows of the window given by `_window_params`."""
    return and_(
        table.c.model == bindparam("w_model"),
        table.c.version == bindparam("w_version"),
        table.c.window_start == bindparam("w_start"),
    )


def _window_params(window: WindowId) -> dict[str, Any]:
    model, version, start = window
    return {"w_model": model, "w_version": version, "w_start": start}


def among_windows(table: Table, windows: Iterable[WindowId]) -> Any:
    """``table``'s rows of ``windows``: one ``window_start IN (...)`` per model version, which
    both databases answer from the (model, version, window_start) key. (SQLite answers a
    row-value IN list by scanning the table, and these tables keep a row per window.)"""
    starts: dict[tuple[str, str], list[datetime]] = {}
    for model, version, start in windows:
        starts.setdefault((model, version), []).append(start)
    c = table.c
    return or_(
        *(
            and_(c.model == model, c.version == version, c.window_start.in_(chosen))
            for (model, version), chosen in starts.items()
        )
    )


def closed_among(conn: Connection, windows: Iterable[WindowId]) -> set[WindowId]:
    """Those of ``windows`` that are already closed."""
    wanted = set(windows)
    if not wanted:
        return set()
    c = _CLOSED.c
    rows = conn.execute(
        select(c.model, c.version, c.window_start).where(among_windows(_CLOSED, wanted))
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
    if tps is None and window is not None:
        found = conn.execute(_PARTIALS_OF_WINDOW, _window_params(window))
        return [_partial_row(r) for r in found]
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
        _partial_row(r)
        for r in conn.execute(query.order_by(_PARTIALS.c.topic, _PARTIALS.c.partition))
    ]


_PARTIALS_OF_WINDOW = (
    select(_PARTIALS)
    .where(_is_the_window(_PARTIALS))
    .order_by(_PARTIALS.c.topic, _PARTIALS.c.partition)
)


def _partial_row(r: Any) -> PartialRow:
    return PartialRow(
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


def window_shares(conn: Connection, windows: Sequence[WindowId]) -> dict[WindowId, list[bytes]]:
    """The stored states of these windows' shares (by topic and partition), in one query;
    a window without any is missing."""
    return states_by_window(conn, _PARTIALS, windows)


def states_by_window(
    conn: Connection, table: Table, windows: Sequence[WindowId]
) -> dict[WindowId, list[bytes]]:
    """The ``state`` column of ``table``'s rows of ``windows`` (a share per topic and
    partition, in that order), in one query; a window without any is missing."""
    found: dict[WindowId, list[bytes]] = {}
    if windows:
        c = table.c
        query = (
            select(c.model, c.version, c.window_start, c.state)
            .where(among_windows(table, windows))
            .order_by(c.topic, c.partition)
        )
        for model, version, start, state in conn.execute(query):
            found.setdefault((model, version, start), []).append(state)
    return found


def open_windows(conn: Connection) -> list[tuple[WindowId, datetime]]:
    """Every window with stored partial state, with its end, oldest first."""
    query = (
        select(_PARTIALS.c.model, _PARTIALS.c.version, _PARTIALS.c.window_start)
        .add_columns(func.max(_PARTIALS.c.window_end))
        .group_by(_PARTIALS.c.model, _PARTIALS.c.version, _PARTIALS.c.window_start)
        .order_by(_PARTIALS.c.window_start, _PARTIALS.c.model, _PARTIALS.c.version)
    )
    return [((m, v, s), end) for m, v, s, end in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a close stores of a window it claims (its ``closed_windows`` row)."""

    window: WindowId
    end: datetime
    events: int
    revision: int | None


def claim_windows(conn: Connection, claims: Sequence[Claim], now: datetime) -> set[WindowId]:
    """Mark these windows closed, in one statement; those another process had not closed."""
    if not claims:
        return set()
    values = [
        {
            "model": c.window[0],
            "version": c.window[1],
            "window_start": c.window[2],
            "window_end": c.end,
            "events": c.events,
            "reference_revision": c.revision,
            "closed_at": now,
        }
        for c in claims
    ]
    inserted = conn.execute(_CLAIMS[conn.dialect.name], values)
    return {(m, v, s) for m, v, s in inserted}


_CLAIMS = {  # INSERT ... ON CONFLICT DO NOTHING RETURNING the windows inserted, per dialect
    name: dialect.insert(_CLOSED)
    .on_conflict_do_nothing()
    .returning(_CLOSED.c.model, _CLOSED.c.version, _CLOSED.c.window_start)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def delete_windows_partials(conn: Connection, windows: Sequence[WindowId]) -> None:
    """Delete the stored shares of ``windows`` (they closed), in one statement."""
    if windows:
        conn.execute(delete(_PARTIALS).where(among_windows(_PARTIALS, windows)))


COUNT_METRICS = ("late_events", "duplicates", "unlabelled", "orphan_labels")


def window_counters(conn: Connection, window: WindowId) -> dict[str, int]:
    """The window's counted ``events`` and the ``COUNT_METRICS`` so far (0 when none)."""
    row = conn.execute(_COUNTERS_OF_WINDOW, _window_params(window)).first()
    return {name: int(row[i]) if row is not None else 0 for i, name in enumerate(_COUNTERS)}


def windows_counters(
    conn: Connection, windows: Sequence[WindowId], *, lock: bool = False
) -> dict[WindowId, dict[str, int]]:
    """`window_counters` of each of ``windows``, in one query.

    ``lock``: keep their rows from changing until this transaction ends (PostgreSQL; SQLite's
    writer is alone anyway), taken in window order as a checkpoint's count upsert takes them.
    """
    found = {w: dict.fromkeys(_COUNTERS, 0) for w in windows}
    if windows:
        query = select(
            _COUNTS.c.model,
            _COUNTS.c.version,
            _COUNTS.c.window_start,
            *(_COUNTS.c[name] for name in _COUNTERS),
        ).where(among_windows(_COUNTS, windows))
        if lock and conn.dialect.name == "postgresql":
            query = query.order_by(
                _COUNTS.c.model, _COUNTS.c.version, _COUNTS.c.window_start
            ).with_for_update()
        for model, version, start, *values in conn.execute(query):
            found[(model, version, start)] = {
                name: int(value) for name, value in zip(_COUNTERS, values, strict=True)
            }
    return found


_COUNTERS = ("events", *COUNT_METRICS)
_COUNTERS_OF_WINDOW = select(*(_COUNTS.c[name] for name in _COUNTERS)).where(
    _is_the_window(_COUNTS)
)


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


class MetricValues(Protocol):
    """What a metric row of a known window stores of its own (``Metric`` and `MetricRow`):
    what the rules read of a row too (``rules.matching.MetricLike``)."""

    @property
    def segment(self) -> str | None: ...
    @property
    def feature(self) -> str | None: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def n(self) -> int: ...
    @property
    def decision(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """The metric rows of one window, as a close stores them: no `MetricRow` per metric."""

    window: WindowId
    end: datetime
    rows: Sequence[MetricValues]


# The columns `save_metrics` writes, in the order of its row tuples; the natural key; the
# columns a conflicting row replaces (the others, window_end, keep the stored row's).
_METRIC_COLUMNS = (
    "model", "version", "segment", "window_start", "window_end", "feature", "metric",
    "value", "n", "decision", "updated_at",
)  # fmt: skip
_METRIC_UPDATES = ("value", "n", "decision", "updated_at")
_key_of = operator.itemgetter(*(_METRIC_COLUMNS.index(name) for name in METRIC_KEY))
_WINDOW_END = _METRIC_COLUMNS.index("window_end")
_Values = tuple[Any, ...]  # one row's values, in ``_METRIC_COLUMNS`` order
# A run of rows sharing model, version, window_start, window_end and updated_at (bound
# values, `_SHARED`), and each row's own values (`_OWN`), in ``_METRIC_COLUMNS`` order.
_SHARED = ("model", "version", "window_start", "window_end", "updated_at")
_OWN = ("segment", "feature", "metric", "value", "n", "decision")
_Group = tuple[_Values, list[_Values]]


def _metrics_upsert_sql(select_rows: str) -> str:
    """INSERT the metric columns from ``select_rows``; on conflict replace the updates."""
    return (
        f"INSERT INTO {_METRICS.name} ({', '.join(_METRIC_COLUMNS)}) {select_rows} "
        f"ON CONFLICT ({', '.join(METRIC_KEY)}) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in _METRIC_UPDATES)
    )


def _sqlite_rows_upsert(rows: int) -> str:
    """An upsert of ``rows`` rows of one `_Group`: its shared values are bound once, as
    ``?1``..``?5``, then each row's own."""

    def place(name: str, row: int) -> str:
        if name in _SHARED:
            return f"?{_SHARED.index(name) + 1}"
        return f"?{len(_SHARED) + row * len(_OWN) + _OWN.index(name) + 1}"

    values = ", ".join(
        f"({', '.join(place(name, row) for name in _METRIC_COLUMNS)})" for row in range(rows)
    )
    return _metrics_upsert_sql(f"VALUES {values}")


def _type_of(column: str) -> str | None:
    """The PostgreSQL type a metric column's JSON value is cast to; None for text."""
    kind = _METRICS.c[column].type
    return None if isinstance(kind, String) else str(kind.compile(_PG))


_PG = PGDialect()  # type: ignore[no-untyped-call]
# SQLite: statements of `_SQLITE_SIZES` rows each (prepared once per connection: SQLite's
# compile time grows faster than the rows), executemany'd by size. PostgreSQL: the rows as
# one JSON parameter (`bulk.json_rows`; psycopg adapts arrays in Python, value by value).
_SQLITE_SIZES = (32, 8, 1)
_SQLITE_UPSERTS = {size: _sqlite_rows_upsert(size) for size in _SQLITE_SIZES}
_POSTGRESQL_UPSERT = _metrics_upsert_sql(json_rows_select([_type_of(n) for n in _METRIC_COLUMNS]))
_VALUE = _METRIC_COLUMNS.index("value")


def save_metrics(
    conn: Connection, rows: Sequence[MetricRow | WindowMetrics], now: datetime
) -> None:
    """Insert or replace metric rows (a late update replaces the row, with its new ``n``),
    in their order: `MetricRow`s, or a close's `WindowMetrics`.

    A close writes about 250 rows sharing three datetimes. Handing them to
    ``conn.execute(upsert, [dict, ...])`` made SQLAlchemy build each row's parameters and
    convert each of its datetimes, and psycopg adapt each row, which cost more than the
    database's own work. So the rows go to the driver as plain values (`_metric_groups`:
    what SQLAlchemy would bind, each distinct datetime converted once): to SQLite as
    multi-row statements binding the values a run of rows shares once, to PostgreSQL as one
    statement with the rows as one JSON parameter.
    """
    if not rows:
        return
    groups = _metric_groups(conn.dialect, rows, now)
    if conn.dialect.name == "postgresql":
        tuples = [
            (shared[0], shared[1], own[0], shared[2], shared[3], *own[1:], shared[4])
            for shared, owns in groups
            for own in owns
        ]
        rows_json = [
            (*row[:_VALUE], float_text(row[_VALUE]), *row[_VALUE + 1 :])
            for row in _merge_repeated(tuples)
        ]
        conn.exec_driver_sql(_POSTGRESQL_UPSERT, json_rows(rows_json))
        return
    for shared, owns in groups:
        first = 0
        for size in _SQLITE_SIZES:
            count = (len(owns) - first) // size
            if count:
                conn.exec_driver_sql(
                    _SQLITE_UPSERTS[size],
                    [
                        (*shared, *chain.from_iterable(owns[at : at + size]))
                        for at in range(first, first + count * size, size)
                    ],
                )
                first += count * size


def _merge_repeated(tuples: list[_Values]) -> list[_Values]:
    """One row per key, as upserting them one after the other would leave it.

    One statement cannot update a row twice, so the rows of a repeated key become one: the
    last row's values with the first row's ``window_end`` (an update keeps it).
    """
    merged: dict[Any, _Values] = {}
    for row in tuples:
        key = _key_of(row)
        first = merged.get(key)
        if first is not None:
            row = (*row[:_WINDOW_END], first[_WINDOW_END], *row[_WINDOW_END + 1 :])
        merged[key] = row
    return list(merged.values())


def _metric_groups(
    dialect: Dialect, rows: Sequence[MetricRow | WindowMetrics], now: datetime
) -> list[_Group]:
    """The rows as runs sharing the `_SHARED` values, bound as SQLAlchemy would bind them.

    ``value`` becomes a float as SQLAlchemy's Float does on SQLite (PostgreSQL's arrays
    want one element type); datetimes are `_BoundTimes`.
    """
    times = _BoundTimes(dialect)
    updated = times[now]
    groups: list[_Group] = []
    for item in rows:
        if isinstance(item, WindowMetrics):
            model, version, start = item.window
            shared = (model, version, times[start], times[item.end], updated)
            members: Sequence[MetricValues] = item.rows
        else:
            shared = (
                item.model, item.version, times[item.window_start], times[item.window_end], updated
            )  # fmt: skip
            members = (item,)
        if not groups or groups[-1][0] != shared:
            groups.append((shared, []))
        groups[-1][1].extend(
            [
                (
                    r.segment or "",
                    r.feature or "",
                    r.metric,
                    None if (value := r.value) is None else float(value),
                    r.n,
                    r.decision,
                )
                for r in members
            ]
        )
    return groups


class _BoundTimes(dict[datetime, Any]):
    """Datetimes as the UTCDateTime columns bind them for a dialect, each converted once.

    The column type's own bind processor, so a SQLite datetime is stored as the same text,
    and a PostgreSQL one as the same timestamptz, as through SQLAlchemy; memoised, because
    a batch repeats the same few.
    """

    def __init__(self, dialect: Dialect) -> None:
        super().__init__()
        column_type = _METRICS.c.window_start.type
        self._process = column_type.dialect_impl(dialect).bind_processor(dialect)

    def __missing__(self, moment: datetime) -> Any:
        bound = self[moment] = moment if self._process is None else self._process(moment)
        return bound


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
