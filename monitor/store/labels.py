"""Predictions waiting for labels, labels waiting for predictions, and performance shares.

Every function takes the checkpoint's connection: a join, the offsets of the records that
made it and the performance it adds commit together (DESIGN.md §4), so a crash neither loses
a join nor counts one twice. Lookups take whole batches (one query per model and batch).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Row,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from monitor.store.bulk import json_rows, json_rows_select
from monitor.store.repository import dialect_insert
from monitor.store.tables import ConsumerOffset, EarlyLabel, PendingPrediction, WindowPerformance
from monitor.store.windows import among_windows, states_by_window

_PENDING: Table = PendingPrediction.__table__  # type: ignore[assignment]
_EARLY: Table = EarlyLabel.__table__  # type: ignore[assignment]
_PERFORMANCE: Table = WindowPerformance.__table__  # type: ignore[assignment]
_OFFSETS: Table = ConsumerOffset.__table__  # type: ignore[assignment]

_UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE
CHUNK = 2000  # ids per IN list: well under every backend's limit on bound parameters

Key = tuple[str, str]  # model, id
PredictionRow = tuple[
    str, str, str, int, int, tuple[str, ...], Any, float | None, dict[str, Any] | None, int
]
"""A prediction waiting for its label as values, in `StoredPrediction`'s (and the table's)
column order: model, id, version, window start and end, slices, prediction, score, scores,
event time."""

_COLUMNS = ("model", "id", "version", "start_ms", "end_ms", "slices", "prediction", "score",
            "scores", "event_ms")  # fmt: skip


@dataclass(slots=True)
class StoredPrediction:
    """What a label needs of its prediction: the window and slices it counts in, and outputs."""

    model: str
    id: str
    version: str
    start_ms: int  # the window's bounds, epoch milliseconds
    end_ms: int
    slices: tuple[str, ...]
    prediction: Any
    score: float | None
    scores: dict[str, Any] | None
    event_ms: int
    label_ms: int | None = None

    @property
    def key(self) -> Key:
        return (self.model, self.id)


@dataclass(frozen=True, slots=True)
class StoredLabel:
    """A label that came before its prediction (``arrived_at``: wall clock)."""

    model: str
    id: str
    version: str | None
    label: Any
    event_ms: int
    arrived_at: datetime

    @property
    def key(self) -> Key:
        return (self.model, self.id)


def _by_model(keys: Iterable[Key]) -> Iterable[tuple[str, list[str]]]:
    """Ids per model, in chunks: ``model = m AND id IN (...)`` uses the primary key, where a
    row-value IN list of (model, id) pairs makes PostgreSQL scan the table."""
    ids: dict[str, list[str]] = {}
    for model, id_ in sorted(set(keys)):
        ids.setdefault(model, []).append(id_)
    for model, wanted in ids.items():
        for i in range(0, len(wanted), CHUNK):
            yield model, wanted[i : i + CHUNK]


def insert_predictions(conn: Connection, rows: Sequence[PredictionRow]) -> set[Key]:
    """Store predictions; returns the keys newly stored (the others' ids were already taken,
    before this call or earlier in ``rows``)."""
    if not rows:
        return set()
    keys = {(row[0], row[1]) for row in rows}
    if conn.dialect.name == "postgresql":
        return _insert_postgresql(conn, json_rows(_prediction_rows(rows)), keys)
    return _insert_sqlite(conn, rows, keys)


def key_hash(id_: str) -> int:
    """SQLite's index key of a waiting prediction: its id's CRC-32.

    Serving systems send random ids (uuid4), and a random key lands anywhere in its index:
    each insert dirties a page of its own, which the commit then writes. With (model, id) as
    the key, a batch of 20,000 with a million waiting cost 15 µs per prediction, commit
    included; with these 4 bytes, about 8.5 (measured). Ids sharing a hash are told apart by
    the stored model and id. PostgreSQL keeps the primary key (model, id): its members
    insert concurrently, and only a unique index makes a taken id certain there.
    """
    return zlib.crc32(id_.encode())


def _insert_sqlite(conn: Connection, rows: Sequence[PredictionRow], keys: set[Key]) -> set[Key]:
    """SQLite: one probe of the hash index finds the taken ids (this transaction holds the
    only write lock, so none is taken meanwhile), then the fresh rows, the first of each id,
    are inserted as plain values (no type processing), one row of values bound each.

    One JSON array per batch read with ``json_each`` and ``->>`` was measured too, and
    costs more per row with ten columns here.
    """
    hashes = [key_hash(row[1]) for row in rows]
    found = conn.execute(_SQLITE_BY_HASH, {"hashes": orjson.dumps(hashes).decode()})
    taken = {(model, id_) for model, id_ in found if (model, id_) in keys}
    if taken or len(keys) < len(rows):
        fresh: dict[Key, tuple[int, PredictionRow]] = {}
        for hashed, row in zip(hashes, rows, strict=True):
            key = (row[0], row[1])
            if key not in taken and key not in fresh:
                fresh[key] = (hashed, row)
        hashes, rows = [h for h, _ in fresh.values()], [r for _, r in fresh.values()]
        keys = set(fresh)
    if rows:  # an empty list would run the statement once, with no values bound
        conn.exec_driver_sql(_SQLITE_INSERT, _prediction_rows(rows, hashes))
    return keys


def _insert_postgresql(conn: Connection, parameters: tuple[str], keys: set[Key]) -> set[Key]:
    """PostgreSQL: a plain insert of the batch (``ON CONFLICT`` costs a probe of the key per
    row first); when an id was taken, the insert that skips taken ids says what it stored
    (another member may store one of them meanwhile)."""
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(_JSON_INSERT, parameters)
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        savepoint.rollback()
        inserted = conn.exec_driver_sql(f"{_JSON_UPSERT} RETURNING model, id", parameters)
        return {(model, id_) for model, id_ in inserted}
    savepoint.commit()
    return keys


_SQLITE_INSERT = (
    f"INSERT INTO pending_predictions (key_hash, {', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})"
)


_JSON_INSERT = f"INSERT INTO pending_predictions ({', '.join(_COLUMNS)}) " + json_rows_select(
    (None, None, None, "bigint", "bigint", None, None, "float8", None, "bigint")
)
"""PostgreSQL: a batch as one JSON parameter (`bulk.json_rows`), rows in `_COLUMNS` order.
Every value is JSON-safe: names and ids are storable text (ingest rejects unpaired
surrogates), scores are finite or None, the rest integers or text."""
_JSON_UPSERT = f"{_JSON_INSERT} ON CONFLICT DO NOTHING"


def _hashes(keys: Iterable[Key]) -> str:
    """The JSON array of the keys' `key_hash`es, one parameter for `_BY_HASH`."""
    return orjson.dumps([key_hash(id_) for _, id_ in keys]).decode()


_BY_HASH = literal_column("key_hash").in_(  # SQLite's column only: not in `PendingPrediction`
    select(literal_column("value")).select_from(func.json_each(bindparam("hashes")))
)
"""SQLite: the pending rows whose `key_hash` is in a JSON array; one query per batch."""
_SQLITE_BY_HASH = select(_PENDING.c.model, _PENDING.c.id).where(_BY_HASH)


def _json(value: Any) -> str:
    """JSON text of an event value (the stdlib takes what orjson refuses: huge integers)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # written by the stdlib: NaN or a huge integer
        return json.loads(text)


_CLASS_TYPES = frozenset({str, int, bool, type(None)})  # values a batch repeats


def _prediction_rows(
    rows: Sequence[PredictionRow], hashes: Sequence[int] | None = None
) -> list[tuple[Any, ...]]:
    """The stored columns of each prediction, slices, prediction and scores as JSON text.

    One row per prediction with an id, so the common values are encoded once: the slices
    of a batch repeat, and so do class predictions. ``hashes``: each row's `key_hash`, put
    first (SQLite).
    """
    slices_text: dict[tuple[str, ...], str] = {}
    prediction_text: dict[tuple[type, Any], str] = {}  # by type too: 1 == True
    out = []
    for n, row in enumerate(rows):
        model, id_, version, start_ms, end_ms, slices, prediction, score, scores, ms = row
        text = slices_text.get(slices)
        if text is None:
            text = slices_text[slices] = _json(slices)
        if type(prediction) in _CLASS_TYPES:
            memo = (type(prediction), prediction)
            said = prediction_text.get(memo)
            if said is None:
                said = prediction_text[memo] = _json(prediction)
        else:
            said = _json(prediction)
        scored = None if scores is None else _json(scores)
        values = (model, id_, version, start_ms, end_ms, text, said, score, scored, ms)
        out.append(values if hashes is None else (hashes[n], *values))
    return out


def _lookup_postgresql(model: str, ids: list[str]) -> Select[Any]:
    """The pending rows for these ids of ``model``, by primary key whatever the stats.

    PostgreSQL plans ``id IN (...)`` from the table's statistics, and while a busy table's
    are stale it filters every row of the model instead; joining the ids as an array keeps
    it on the index.
    """
    wanted = func.unnest(literal(ids, ARRAY(String))).table_valued("id").render_derived("wanted")
    return (
        select(_PENDING).join(wanted, _PENDING.c.id == wanted.c.id).where(_PENDING.c.model == model)
    )


def _pending_rows(conn: Connection, keys: Iterable[Key]) -> Iterator[Row[Any]]:
    """The stored predictions among ``keys``: SQLite's by hash in one query, PostgreSQL's by
    primary key, a query per model and chunk."""
    if conn.dialect.name == "sqlite":
        wanted = set(keys)
        found = conn.execute(select(_PENDING).where(_BY_HASH), {"hashes": _hashes(wanted)})
        yield from (r for r in found if (r.model, r.id) in wanted)
        return
    for model, ids in _by_model(keys):
        yield from conn.execute(_lookup_postgresql(model, ids))


def find_predictions(conn: Connection, keys: Iterable[Key]) -> dict[Key, StoredPrediction]:
    """The stored predictions among ``keys`` (labelled or not)."""
    found: dict[Key, StoredPrediction] = {}
    for r in _pending_rows(conn, keys):
        found[(r.model, r.id)] = StoredPrediction(
            r.model,
            r.id,
            r.version,
            r.start_ms,
            r.end_ms,
            tuple(_loads(r.slices)),
            _loads(r.prediction),
            r.score,
            None if r.scores is None else _loads(r.scores),
            r.event_ms,
            r.label_ms,
        )
    return found


def mark_labelled(conn: Connection, labelled: Sequence[tuple[Key, int]]) -> None:
    """Record that these predictions got their label (at these label event times)."""
    if not labelled:
        return
    rows: list[dict[str, Any]] = [
        {"key_model": m, "key_id": i, "at_ms": ms} for (m, i), ms in labelled
    ]
    if conn.dialect.name == "sqlite":
        for row in rows:
            row["key_hash"] = key_hash(row["key_id"])
        conn.execute(_MARK_LABELLED_BY_HASH, rows)
    else:
        conn.execute(_MARK_LABELLED, rows)


_MARK_LABELLED = (
    update(_PENDING)
    .where(_PENDING.c.model == bindparam("key_model"), _PENDING.c.id == bindparam("key_id"))
    .values(label_ms=bindparam("at_ms"))
)
_MARK_LABELLED_BY_HASH = _MARK_LABELLED.where(literal_column("key_hash") == bindparam("key_hash"))


def insert_early_labels(conn: Connection, rows: Sequence[StoredLabel]) -> None:
    """Keep labels whose prediction is not stored yet; a second label for an id is dropped."""
    if not rows:
        return
    conn.execute(
        dialect_insert(conn, _EARLY).on_conflict_do_nothing(),
        [
            {
                "model": r.model,
                "id": r.id,
                "version": r.version,
                "label": _json(r.label),
                "event_ms": r.event_ms,
                "arrived_at": r.arrived_at,
            }
            for r in rows
        ],
    )


def take_early_labels(conn: Connection, keys: Iterable[Key]) -> list[StoredLabel]:
    """Remove and return the waiting labels of these predictions."""
    taken: list[StoredLabel] = []
    c = _EARLY.c
    if conn.execute(select(c.id).limit(1)).first() is None:
        return taken  # the usual case: labels come after their predictions
    for model, ids in _by_model(keys):
        statement = (
            delete(_EARLY)
            .where(c.model == model, c.id.in_(ids))
            .returning(c.model, c.id, c.version, c.label, c.event_ms, c.arrived_at)
        )
        taken += [_label(row) for row in conn.execute(statement)]
    return sorted(taken, key=lambda label: label.key)


def early_labels_waiting(conn: Connection, arrived_before: datetime | None) -> list[StoredLabel]:
    """The labels waiting since before ``arrived_before`` (None: all of them), not removed."""
    c = _EARLY.c
    query = select(c.model, c.id, c.version, c.label, c.event_ms, c.arrived_at)
    if arrived_before is not None:
        query = query.where(c.arrived_at <= arrived_before)
    return [_label(row) for row in conn.execute(query.order_by(c.model, c.id))]


def _label(row: Any) -> StoredLabel:
    model, id_, version, label, event_ms, arrived_at = row
    return StoredLabel(model, id_, version, _loads(label), event_ms, arrived_at)


def prune_predictions(
    conn: Connection, before_ms: Mapping[str, int], others_before_ms: int
) -> list[tuple[str, str, int, int, bool]]:
    """Remove the predictions older (event time) than their model's ``before_ms``, those of
    models not in it than ``others_before_ms``.

    Returns (model, version, window start, window end, labelled) per removed prediction, so
    the never-labelled ones can be counted.

    Every checkpoint prunes, so it must cost nothing while nothing is due, however many
    predictions wait: each model's oldest prediction, read from the (model, event time)
    index, says whether it has any past its cutoff, and only then is its range of that
    index deleted, one statement for the models due at one cutoff. One index over event
    time alone mixed the models: on SQLite a model with a 1-hour horizon walked the older
    predictions of a model with a 7-day one at every checkpoint (`scripts/bench.py prune`:
    133 ms per checkpoint with 1M waiting, 0.4 now), and PostgreSQL walked every waiting row
    until it had analysed the table.
    """
    due: dict[int, list[str]] = {}  # cutoff -> its models with predictions past it
    for model, oldest in conn.execute(_OLDEST_BY_MODEL):
        cutoff = before_ms.get(model, others_before_ms)
        if oldest < cutoff:
            due.setdefault(cutoff, []).append(model)
    c = _PENDING.c
    removed: list[tuple[str, str, int, int, bool]] = []
    for cutoff, models in due.items():  # models sharing a horizon: one statement
        statement = delete(_PENDING).where(c.model.in_(models), c.event_ms < cutoff)
        found = conn.execute(
            statement.returning(c.model, c.version, c.start_ms, c.end_ms, c.label_ms)
        )
        removed += [(m, v, s, e, ms is not None) for m, v, s, e, ms in found]
    return removed


_OLDEST_BY_MODEL = text(
    """
    WITH RECURSIVE models (model) AS (
        SELECT min(model) FROM pending_predictions
        UNION ALL
        SELECT (SELECT min(p.model) FROM pending_predictions AS p WHERE p.model > models.model)
        FROM models WHERE models.model IS NOT NULL
    )
    SELECT model,
           (SELECT min(p.event_ms) FROM pending_predictions AS p WHERE p.model = models.model)
    FROM models WHERE model IS NOT NULL
    """
)
"""Each model with waiting predictions and its oldest one's event time, in a probe of the
(model, event time) index per model: a model leads to the next by ``min(model) > m``, where a
``GROUP BY`` would read every waiting row (PostgreSQL cannot skip through an index)."""


def pending_count(conn: Connection) -> int:
    """Predictions stored and waiting (or kept for duplicates) within their horizon."""
    return int(conn.execute(select(func.count()).select_from(_PENDING)).scalar_one())


def predictions_watermark(conn: Connection, group_id: str, topic: str | None) -> int | None:
    """The predictions watermark: the oldest newest-event-time over the topic's partitions.

    ``topic`` None (replayed files, each a stretch of history): the newest over all of the
    group's files. Label partitions have no event times, so they never count.
    """
    c = _OFFSETS.c
    aggregate = func.max(c.max_event_ms) if topic is None else func.min(c.max_event_ms)
    query = select(aggregate).where(c.group_id == group_id, c.max_event_ms.is_not(None))
    if topic is not None:
        query = query.where(c.topic == topic)
    value = conn.execute(query).scalar_one()
    return None if value is None else int(value)


# --- performance shares -----------------------------------------------------------------------

ShareKey = tuple[str, str, datetime, str, int]  # model, version, window start, topic, partition


def load_performance(conn: Connection, keys: Iterable[ShareKey]) -> dict[ShareKey, bytes]:
    """The stored performance shares among ``keys``."""
    wanted = set(keys)
    windows = sorted({key[:3] for key in wanted})
    c = _PERFORMANCE.c
    found: dict[ShareKey, bytes] = {}
    for i in range(0, len(windows), CHUNK):  # by window: the key's prefix, so no table scan
        chunk = windows[i : i + CHUNK]
        query = select(c.model, c.version, c.window_start, c.topic, c.partition, c.state).where(
            among_windows(_PERFORMANCE, chunk)
        )
        for model, version, start, topic, partition, state in conn.execute(query):
            key = (model, version, start, topic, partition)
            if key in wanted:
                found[key] = state
    return found


def save_performance(
    conn: Connection, shares: Sequence[tuple[ShareKey, datetime, bytes]], now: datetime
) -> None:
    """Replace these shares (key, window end, state)."""
    if not shares:
        return
    statement = dialect_insert(conn, _PERFORMANCE)
    statement = statement.on_conflict_do_update(
        index_elements=["model", "version", "window_start", "topic", "partition"],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
    )
    conn.execute(
        statement,
        [
            {
                "model": model,
                "version": version,
                "window_start": start,
                "topic": topic,
                "partition": partition,
                "window_end": end,
                "state": state,
                "updated_at": now,
            }
            for (model, version, start, topic, partition), end, state in shares
        ],
    )


def window_performance(conn: Connection, model: str, version: str, start: datetime) -> list[bytes]:
    """Every partition's performance share of one window."""
    found = conn.execute(_SHARES_OF_WINDOW, {"model": model, "version": version, "start": start})
    return list(found.scalars())


_SHARES_OF_WINDOW = (  # built once: each window close reads its shares
    select(_PERFORMANCE.c.state)
    .where(
        _PERFORMANCE.c.model == bindparam("model"),
        _PERFORMANCE.c.version == bindparam("version"),
        _PERFORMANCE.c.window_start == bindparam("start"),
    )
    .order_by(_PERFORMANCE.c.topic, _PERFORMANCE.c.partition)
)


def windows_performance(
    conn: Connection, windows: Sequence[tuple[str, str, datetime]]
) -> dict[tuple[str, str, datetime], list[bytes]]:
    """`window_performance` of each of ``windows`` (model, version, start) that has shares,
    in one query."""
    return states_by_window(conn, _PERFORMANCE, windows)


def lock_performances(conn: Connection, windows: Sequence[tuple[str, str, datetime]]) -> None:
    """`lock_performance` of each of ``windows``, in their order, in one statement."""
    if conn.dialect.name != "postgresql" or not windows:
        return
    conn.execute(_PERFORMANCE_LOCKS, {"keys": [_performance_key(*w) for w in windows]})


def _performance_key(model: str, version: str, start: datetime) -> int:
    key = zlib.crc32(f"performance\x00{model}\x00{version}\x00{start.isoformat()}".encode())
    return key - 2**31


def lock_performance(conn: Connection, model: str, version: str, start: datetime) -> None:
    """Serialise changes to one window's performance shares and rows; PostgreSQL only.

    Checkpoints take these in window order after any window lock of theirs, and a close
    takes its window's after its exclusive window lock, so no two wait on each other in a
    cycle. A close therefore sees every share committed before it, and a checkpoint that
    comes after a close sees the window closed and recomputes its rows.
    """
    if conn.dialect.name != "postgresql":
        return
    conn.execute(_PERFORMANCE_LOCK, {"key": _performance_key(model, version, start)})


_PERFORMANCE_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# unnest yields the keys in array order, so the locks are taken in that order
_PERFORMANCE_LOCKS = text(
    "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS k"
)
