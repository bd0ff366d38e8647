"""Predictions waiting for labels, labels waiting for predictions, and performance shares.

Every function takes the checkpoint's connection: a join, the offsets of the records that
made it and the performance it adds commit together (DESIGN.md §4), so a crash neither loses
a join nor counts one twice. Lookups take whole batches (one query per model and batch).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    tuple_,
    update,
)

from monitor.store.repository import dialect_insert
from monitor.store.tables import ConsumerOffset, EarlyLabel, PendingPrediction, WindowPerformance

_PENDING: Table = PendingPrediction.__table__  # type: ignore[assignment]
_EARLY: Table = EarlyLabel.__table__  # type: ignore[assignment]
_PERFORMANCE: Table = WindowPerformance.__table__  # type: ignore[assignment]
_OFFSETS: Table = ConsumerOffset.__table__  # type: ignore[assignment]

CHUNK = 2000  # ids per IN list: well under every backend's limit on bound parameters

Key = tuple[str, str]  # model, id


@dataclass(frozen=True, slots=True)
class StoredPrediction:
    """What a label needs of its prediction: the window and slices it counts in, and outputs."""

    model: str
    id: str
    version: str
    window_start: datetime
    window_end: datetime
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


def _chunks(keys: Sequence[Key]) -> Iterable[Sequence[Key]]:
    for i in range(0, len(keys), CHUNK):
        yield keys[i : i + CHUNK]


def insert_predictions(conn: Connection, rows: Sequence[StoredPrediction]) -> set[Key]:
    """Store predictions; returns the keys newly stored (the others' ids were already taken)."""
    inserted: set[Key] = set()
    for i in range(0, len(rows), CHUNK):
        statement = (
            dialect_insert(conn, _PENDING)
            .on_conflict_do_nothing()
            .returning(_PENDING.c.model, _PENDING.c.id)
        )
        values = [_prediction_values(r) for r in rows[i : i + CHUNK]]
        inserted.update((m, k) for m, k in conn.execute(statement, values).all())
    return inserted


def _prediction_values(row: StoredPrediction) -> dict[str, Any]:
    return {
        "model": row.model,
        "id": row.id,
        "version": row.version,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "slices": orjson.dumps(row.slices).decode(),
        "prediction": orjson.dumps(row.prediction).decode(),
        "score": row.score,
        "scores": None if row.scores is None else orjson.dumps(row.scores).decode(),
        "event_ms": row.event_ms,
        "label_ms": row.label_ms,
    }


def find_predictions(conn: Connection, keys: Iterable[Key]) -> dict[Key, StoredPrediction]:
    """The stored predictions among ``keys`` (labelled or not)."""
    wanted = sorted(set(keys))
    found: dict[Key, StoredPrediction] = {}
    c = _PENDING.c
    for chunk in _chunks(wanted):
        query = select(_PENDING).where(tuple_(c.model, c.id).in_(chunk))
        for r in conn.execute(query):
            found[(r.model, r.id)] = StoredPrediction(
                r.model,
                r.id,
                r.version,
                r.window_start,
                r.window_end,
                tuple(orjson.loads(r.slices)),
                orjson.loads(r.prediction),
                r.score,
                None if r.scores is None else orjson.loads(r.scores),
                r.event_ms,
                r.label_ms,
            )
    return found


def mark_labelled(conn: Connection, labelled: Sequence[tuple[Key, int]]) -> None:
    """Record that these predictions got their label (at these label event times)."""
    if not labelled:
        return
    statement = (
        update(_PENDING)
        .where(
            and_(_PENDING.c.model == bindparam("key_model"), _PENDING.c.id == bindparam("key_id"))
        )
        .values(label_ms=bindparam("at_ms"))
    )
    conn.execute(statement, [{"key_model": m, "key_id": i, "at_ms": ms} for (m, i), ms in labelled])


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
                "label": orjson.dumps(r.label).decode(),
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
    for chunk in _chunks(sorted(set(keys))):
        statement = (
            delete(_EARLY)
            .where(tuple_(c.model, c.id).in_(chunk))
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
    return StoredLabel(model, id_, version, orjson.loads(label), event_ms, arrived_at)


def prune_predictions(
    conn: Connection,
    before_ms: int,
    *,
    only: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> list[tuple[str, str, datetime, datetime, bool]]:
    """Remove the predictions older than ``before_ms`` (event time) of these models.

    Returns (model, version, window start, window end, labelled) per removed prediction, so
    the never-labelled ones can be counted.
    """
    c = _PENDING.c
    statement = delete(_PENDING).where(c.event_ms < before_ms)
    if only is not None:
        statement = statement.where(c.model.in_(only))
    if exclude:
        statement = statement.where(c.model.not_in(exclude))
    found = conn.execute(
        statement.returning(c.model, c.version, c.window_start, c.window_end, c.label_ms)
    )
    return [(m, v, s, e, ms is not None) for m, v, s, e, ms in found]


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
    wanted = sorted(set(keys))
    c = _PERFORMANCE.c
    found: dict[ShareKey, bytes] = {}
    for i in range(0, len(wanted), CHUNK):
        chunk = wanted[i : i + CHUNK]
        query = select(c.model, c.version, c.window_start, c.topic, c.partition, c.state).where(
            tuple_(c.model, c.version, c.window_start, c.topic, c.partition).in_(chunk)
        )
        for model, version, start, topic, partition, state in conn.execute(query):
            found[(model, version, start, topic, partition)] = state
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
    c = _PERFORMANCE.c
    query = (
        select(c.state)
        .where(c.model == model, c.version == version, c.window_start == start)
        .order_by(c.topic, c.partition)
    )
    return list(conn.execute(query).scalars())


def lock_performance(conn: Connection, model: str, version: str, start: datetime) -> None:
    """Serialise changes to one window's performance shares and rows; PostgreSQL only.

    Taken after every window lock of the transaction, in window order, so it cannot deadlock
    against the checkpoints' shared window locks or a close's exclusive one.
    """
    if conn.dialect.name != "postgresql":
        return
    key = zlib.crc32(f"performance\x00{model}\x00{version}\x00{start.isoformat()}".encode())
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - 2**31})
