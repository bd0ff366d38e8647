"""Reads and writes of monitor's tables; every function takes an open connection.

Transactions are the caller's (checkpoint.py, cli.py): these functions compose into one.
Writes are bulk statements, one per table per checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.errors import FencedError
from monitor.store.tables import ConsumerOffset, DeadLetter, ReferenceProfileRow, WindowCount

TopicPartition = tuple[str, int]

_OFFSETS: Table = ConsumerOffset.__table__  # type: ignore[assignment]
_DEAD: Table = DeadLetter.__table__  # type: ignore[assignment]
_COUNTS: Table = WindowCount.__table__  # type: ignore[assignment]


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a partition stands: the next offset to read and the newest event time it gave.

    ``max_event_ms`` is the partition's watermark before lateness (DESIGN.md §4); it is stored
    with the offset so a restart decides lateness exactly as the first run did.
    """

    offset: int
    max_event_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StoredPosition:
    """A stored position with the wall-clock time of the checkpoint that last moved it."""

    position: Position
    updated_at: datetime


def load_positions(
    conn: Connection, group_id: str, topics: Iterable[str] | None = None
) -> dict[TopicPartition, StoredPosition]:
    """Stored positions of ``group_id``, optionally only for ``topics``."""
    query = select(_OFFSETS).where(_OFFSETS.c.group_id == group_id)
    if topics is not None:
        query = query.where(_OFFSETS.c.topic.in_(list(topics)))
    return {
        (row.topic, row.partition): StoredPosition(
            Position(row.next_offset, row.max_event_ms), row.updated_at
        )
        for row in conn.execute(query)
    }


def load_offsets(
    conn: Connection, group_id: str, topics: Iterable[str] | None = None
) -> dict[TopicPartition, int]:
    """Stored next offsets of ``group_id``, optionally only for ``topics``."""
    return {
        tp: stored.position.offset for tp, stored in load_positions(conn, group_id, topics).items()
    }


@dataclass(frozen=True, slots=True)
class OffsetReset:
    """The last time a partition's broker log restarted below the offset expected."""

    expected: int
    at: datetime


def load_resets(
    conn: Connection, group_id: str, topics: Iterable[str] | None = None
) -> dict[TopicPartition, OffsetReset]:
    """Partitions of ``group_id`` whose broker log was once found restarted (DESIGN.md §4)."""
    query = select(_OFFSETS).where(
        _OFFSETS.c.group_id == group_id, _OFFSETS.c.reset_from.is_not(None)
    )
    if topics is not None:
        query = query.where(_OFFSETS.c.topic.in_(list(topics)))
    return {
        (row.topic, row.partition): OffsetReset(row.reset_from, row.reset_at)
        for row in conn.execute(query)
    }


def advance_offsets(
    conn: Connection,
    group_id: str,
    moves: Mapping[TopicPartition, tuple[int | None, Position]],
    now: datetime,
    resets: Mapping[TopicPartition, int] | None = None,
) -> None:
    """Compare-and-set each partition from its expected offset to its new position.

    ``moves`` maps a partition to (offset this process last saw stored, or None when none
    was, new position). Any mismatch means another member moved the partition meanwhile:
    FencedError, and the caller's transaction rolls back. ``resets`` names the partitions
    whose broker log restarted below the offset expected (that offset, recorded with ``now``).
    """
    resets = resets or {}
    for (topic, partition), (expected, new) in sorted(moves.items()):
        values: dict[str, Any] = {
            "next_offset": new.offset,
            "max_event_ms": new.max_event_ms,
            "updated_at": now,
        }
        if (topic, partition) in resets:
            values.update(reset_from=resets[(topic, partition)], reset_at=now)
        if expected is None:
            statement = (
                dialect_insert(conn, _OFFSETS)
                .values(group_id=group_id, topic=topic, partition=partition, **values)
                .on_conflict_do_nothing()
                .returning(_OFFSETS.c.partition)
            )
        else:
            statement = (
                update(_OFFSETS)
                .where(
                    and_(
                        _OFFSETS.c.group_id == group_id,
                        _OFFSETS.c.topic == topic,
                        _OFFSETS.c.partition == partition,
                        _OFFSETS.c.next_offset == expected,
                    )
                )
                .values(**values)
                .returning(_OFFSETS.c.partition)
            )
        # RETURNING, not rowcount: psycopg reports -1 for INSERT .. ON CONFLICT DO NOTHING.
        if conn.execute(statement).first() is None:
            raise FencedError(f"{topic}[{partition}] was moved by another consumer")


@dataclass(frozen=True, slots=True)
class WindowCountDelta:
    """Counts to add to one window's row."""

    model: str
    version: str
    window_start: datetime
    window_end: datetime
    events: int
    labels: int
    late_events: int
    last_event_time: datetime | None
    duplicates: int = 0
    unlabelled: int = 0
    orphan_labels: int = 0


def add_window_counts(conn: Connection, deltas: Sequence[WindowCountDelta]) -> None:
    """Add ``deltas`` to the stored counts (creating rows) in one statement."""
    if not deltas:
        return
    statement = dialect_insert(conn, _COUNTS)
    current = _COUNTS.c.last_event_time
    incoming = statement.excluded.last_event_time
    statement = statement.on_conflict_do_update(
        index_elements=["model", "version", "window_start"],
        set_={
            "events": _COUNTS.c.events + statement.excluded.events,
            "labels": _COUNTS.c.labels + statement.excluded.labels,
            "late_events": _COUNTS.c.late_events + statement.excluded.late_events,
            "duplicates": _COUNTS.c.duplicates + statement.excluded.duplicates,
            "unlabelled": _COUNTS.c.unlabelled + statement.excluded.unlabelled,
            "orphan_labels": _COUNTS.c.orphan_labels + statement.excluded.orphan_labels,
            "last_event_time": case(
                (current.is_(None), incoming),
                (incoming > current, incoming),
                else_=current,
            ),
        },
    )
    conn.execute(
        statement,
        [
            {
                "model": d.model,
                "version": d.version,
                "window_start": d.window_start,
                "window_end": d.window_end,
                "events": d.events,
                "labels": d.labels,
                "late_events": d.late_events,
                "duplicates": d.duplicates,
                "unlabelled": d.unlabelled,
                "orphan_labels": d.orphan_labels,
                "last_event_time": d.last_event_time,
            }
            for d in deltas
        ],
    )


def insert_dead_letters(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep rejected events; a record already kept (same coordinates) is not kept twice."""
    if rows:
        conn.execute(dialect_insert(conn, _DEAD).on_conflict_do_nothing(), list(rows))


@dataclass(frozen=True, slots=True)
class ModelVersionTotals:
    """What `monitor status` reports per model and version."""

    model: str
    version: str
    events: int
    labels: int
    late_events: int
    last_event_time: datetime | None
    windows: int
    duplicates: int = 0
    unlabelled: int = 0
    orphan_labels: int = 0


def model_totals(conn: Connection) -> list[ModelVersionTotals]:
    """Events, labels, last event time and window count per (model, version)."""
    query = (
        select(
            _COUNTS.c.model,
            _COUNTS.c.version,
            func.sum(_COUNTS.c.events),
            func.sum(_COUNTS.c.labels),
            func.sum(_COUNTS.c.late_events),
            func.max(_COUNTS.c.last_event_time),
            func.count(),
            func.sum(_COUNTS.c.duplicates),
            func.sum(_COUNTS.c.unlabelled),
            func.sum(_COUNTS.c.orphan_labels),
        )
        .group_by(_COUNTS.c.model, _COUNTS.c.version)
        .order_by(_COUNTS.c.model, _COUNTS.c.version)
    )
    totals = []
    for row in conn.execute(query):
        model, version, events, labels, late, last, windows, *label_sums = row
        duplicates, unlabelled, orphans = (int(v or 0) for v in label_sums)
        totals.append(
            ModelVersionTotals(
                model,
                version,
                int(events or 0),
                int(labels or 0),
                int(late or 0),
                last,
                int(windows),
                duplicates,
                unlabelled,
                orphans,
            )
        )
    return totals


def dead_letter_counts(conn: Connection) -> tuple[int, dict[tuple[str, str], int]]:
    """Total dead letters, and those per (model, version) where the model was known."""
    total = conn.execute(select(func.count()).select_from(_DEAD)).scalar_one()
    per_model = {
        (model, version): int(n)
        for model, version, n in conn.execute(
            select(_DEAD.c.model, _DEAD.c.version, func.count())
            .where(_DEAD.c.model.is_not(None))
            .group_by(_DEAD.c.model, _DEAD.c.version)
        )
    }
    return int(total), per_model


def dead_letters(conn: Connection, limit: int = 100) -> list[DeadLetterRow]:
    """The newest dead letters, without payloads."""
    query = (
        select(
            _DEAD.c.topic,
            _DEAD.c.partition,
            _DEAD.c.offset,
            _DEAD.c.size,
            _DEAD.c.reason,
            _DEAD.c.model,
        )
        .order_by(_DEAD.c.id.desc())
        .limit(limit)
    )
    return [DeadLetterRow(*row) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A dead letter as listed to users."""

    topic: str
    partition: int
    offset: int
    size: int
    reason: str
    model: str | None


_REFERENCES: Table = ReferenceProfileRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class StoredReference:
    """One stored reference profile revision (``profile`` is its JSON document)."""

    model: str
    version: str | None
    revision: int
    source: str
    rows: int
    created_at: datetime
    profile: bytes


def save_reference(
    conn: Connection,
    model: str,
    version: str | None,
    source: str,
    rows: int,
    profile: bytes,
    now: datetime,
) -> int:
    """Store a new revision for (model, version); it becomes the active one. Returns it."""
    same = _REFERENCES.c.version.is_(None) if version is None else _REFERENCES.c.version == version
    latest = conn.execute(
        select(func.max(_REFERENCES.c.revision)).where(_REFERENCES.c.model == model, same)
    ).scalar_one()
    revision = int(latest or 0) + 1
    conn.execute(
        _REFERENCES.insert().values(
            model=model,
            version=version,
            revision=revision,
            source=source,
            rows=rows,
            profile=profile,
            created_at=now,
        )
    )
    return revision


def active_reference(
    conn: Connection, model: str, version: str | None, revision: int | None = None
) -> StoredReference | None:
    """The newest profile of (model, version), else the newest model-wide one, else None.

    With ``revision``, that revision instead of the newest (the version's own first).
    """
    for candidate in ([version] if version is not None else []) + [None]:
        same = (
            _REFERENCES.c.version.is_(None)
            if candidate is None
            else _REFERENCES.c.version == candidate
        )
        query = select(_REFERENCES).where(_REFERENCES.c.model == model, same)
        if revision is not None:
            query = query.where(_REFERENCES.c.revision == revision)
        row = conn.execute(query.order_by(_REFERENCES.c.revision.desc()).limit(1)).first()
        if row is not None:
            return StoredReference(
                row.model,
                row.version,
                row.revision,
                row.source,
                row.rows,
                row.created_at,
                row.profile,
            )
    return None


def reference_models(conn: Connection) -> set[tuple[str, str | None]]:
    """(model, version) pairs that have at least one stored profile."""
    return {
        (model, version)
        for model, version in conn.execute(
            select(_REFERENCES.c.model, _REFERENCES.c.version).distinct()
        )
    }
