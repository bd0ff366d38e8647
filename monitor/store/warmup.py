"""The warm-up events of model versions whose reference is the first N events they serve."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Table, delete, func, select, text

from monitor.store.repository import dialect_insert
from monitor.store.tables import WarmupEvent

_WARMUP: Table = WarmupEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class WarmupRow:
    """One warm-up event: where it came from, its event time and its encoded values."""

    topic: str
    partition: int
    offset: int
    event_ms: int
    row: bytes


def lock(conn: Connection, model: str, version: str) -> None:
    """Serialise the warm-up of (model, version) across processes; PostgreSQL only.

    SQLite needs none: its write transactions (BEGIN IMMEDIATE) already run one at a time.
    """
    if conn.dialect.name != "postgresql":
        return
    key = zlib.crc32(f"warmup\x00{model}\x00{version}".encode()) - 2**31
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def count(conn: Connection, model: str, version: str) -> int:
    """How many warm-up events of (model, version) are stored."""
    total = conn.execute(
        select(func.count()).where(_WARMUP.c.model == model, _WARMUP.c.version == version)
    ).scalar_one()
    return int(total)


def insert(conn: Connection, model: str, version: str, rows: Sequence[WarmupRow]) -> None:
    """Store ``rows``; one already stored (same coordinates) is kept as it was."""
    if not rows:
        return
    statement = dialect_insert(conn, _WARMUP).on_conflict_do_nothing()
    conn.execute(
        statement,
        [
            {
                "model": model,
                "version": version,
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "event_ms": r.event_ms,
                "row": r.row,
            }
            for r in rows
        ],
    )


def first(conn: Connection, model: str, version: str, limit: int) -> list[WarmupRow]:
    """The ``limit`` earliest stored warm-up events (event time, then coordinates)."""
    c = _WARMUP.c
    found = conn.execute(
        select(c.topic, c.partition, c.offset, c.event_ms, c.row)
        .where(c.model == model, c.version == version)
        .order_by(c.event_ms, c.topic, c.partition, c.offset)
        .limit(limit)
    )
    return [WarmupRow(*row) for row in found]


def clear(conn: Connection, model: str, version: str) -> None:
    """Forget the warm-up events of (model, version): its reference is built."""
    conn.execute(delete(_WARMUP).where(_WARMUP.c.model == model, _WARMUP.c.version == version))


def counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Stored warm-up events per (model, version) still warming up."""
    c = _WARMUP.c
    found = conn.execute(select(c.model, c.version, func.count()).group_by(c.model, c.version))
    return {(model, version): int(n) for model, version, n in found}
