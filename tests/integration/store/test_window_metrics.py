"""Stored metric rows: `save_metrics` writes exactly what SQLAlchemy's own upsert wrote.

`save_metrics` hands the driver plain values (SQLite: one executemany; PostgreSQL: one
statement of column arrays) instead of a SQLAlchemy executemany. These tests keep that
SQLAlchemy upsert as the reference and compare both the raw stored columns (the text of a
SQLite datetime, NaN and infinities, None) and what `query_metrics` reads back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

from monitor.errors import StoreError
from monitor.store import windows as stored
from monitor.store.db import transaction
from monitor.store.repository import dialect_insert
from monitor.store.windows import MetricRow

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
END = START + timedelta(minutes=5)
NOW = datetime(2026, 11, 23, 10, 7, 12, 345678, tzinfo=UTC)
COLUMNS = (
    "version, segment, window_start, window_end, feature, metric, value, n, decision, updated_at"
)


def reference_save(conn: Connection, rows: Sequence[MetricRow], now: datetime) -> None:
    """The upsert as it was written before: SQLAlchemy Core executemany, types and all."""
    table = stored._METRICS
    statement = dialect_insert(conn, table)
    statement = statement.on_conflict_do_update(
        index_elements=["model", "version", "segment", "window_start", "feature", "metric"],
        set_={name: statement.excluded[name] for name in ("value", "n", "decision", "updated_at")},
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


def metric(model: str, feature: str | None, name: str, value: Any, **changes: Any) -> MetricRow:
    row = MetricRow(model, "3", None, START, END, feature, name, value, 500, "ok")
    return replace(row, **changes)


def awkward_rows(model: str) -> list[MetricRow]:
    """Every kind of value a close writes, and some it should survive."""
    return [
        metric(model, "amount", "psi", 0.1234567890123, decision="drift"),
        metric(model, "amount", "mean", None, decision=None),
        metric(model, "amount", "ks", math.nan),
        metric(model, "amount", "max", math.inf, decision=None),
        metric(model, "amount", "min", -math.inf, decision=None),
        metric(model, "amount", "count", 3, n=2**40),  # an int where a float is due
        metric(model, "amount", "std", np.float64(0.5)),
        metric(model, None, "events", 500.0, decision=None),
        metric(model, "country", "psi", 0.02, segment="channel=web"),
        metric(model, "@reference", "psi", 0.0, decision=None),
        # a window in another zone, and one with microseconds: stored as UTC all the same
        metric(
            model,
            "amount",
            "psi",
            0.3,
            window_start=START.astimezone(timezone(timedelta(hours=2))) + timedelta(hours=1),
            window_end=END.astimezone(timezone(timedelta(hours=-5))) + timedelta(hours=1),
        ),
        metric(
            model,
            "amount",
            "psi",
            0.4,
            window_start=START + timedelta(microseconds=1),
            window_end=END + timedelta(microseconds=999_999),
        ),
    ]


def raw_rows(conn: Connection, model: str) -> list[tuple[Any, ...]]:
    """The stored columns as the driver returns them, NaN made comparable."""
    found = conn.execute(
        text(f"SELECT {COLUMNS} FROM window_metrics WHERE model = :model"),  # noqa: S608
        {"model": model},
    )
    return sorted(
        (
            tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row)
            for row in found
        ),
        key=repr,
    )


def read_back(conn: Connection, model: str) -> list[tuple[Any, ...]]:
    """What `query_metrics` reads (whole model and the one segment), NaN made comparable."""
    rows = stored.query_metrics(conn, model) + stored.query_metrics(
        conn, model, segment="channel=web"
    )
    return sorted(
        (
            tuple(
                "NaN" if isinstance(v, float) and math.isnan(v) else v
                for v in astuple(replace(r, model=""))
            )
            for r in rows
        ),
        key=repr,
    )


def save_both(engine: Engine, batches: Sequence[tuple[Sequence[MetricRow], datetime]]) -> None:
    """Model ``new`` through `save_metrics`, model ``old`` through the reference."""
    for rows, now in batches:
        with transaction(engine, write=True) as conn:
            stored.save_metrics(conn, [replace(r, model="new") for r in rows], now)
            reference_save(conn, [replace(r, model="old") for r in rows], now)


def assert_same(engine: Engine, expected_rows: int) -> None:
    with transaction(engine) as conn:
        new, old = raw_rows(conn, "new"), raw_rows(conn, "old")
        assert len(new) == expected_rows
        assert new == old
        assert read_back(conn, "new") == read_back(conn, "old")
        assert len(read_back(conn, "new")) == expected_rows


def test_stored_values_are_those_of_the_sqlalchemy_upsert(engine: Engine) -> None:
    """Datetimes (zones, microseconds), None, NaN, infinities, ints and numpy floats."""
    rows = awkward_rows("m")
    save_both(engine, [(rows, NOW)])
    assert_same(engine, len(rows))
    with transaction(engine) as conn:
        (psi,) = [r for r in stored.query_metrics(conn, "new", feature="amount", metric="psi")
                  if r.window_start == START]  # fmt: skip
    assert psi == MetricRow("new", "3", None, START, END, "amount", "psi", 0.1234567890123,
                            500, "drift")  # fmt: skip
    assert psi.window_start.tzinfo == UTC


def test_a_late_update_replaces_value_n_decision_and_updated_at_only(engine: Engine) -> None:
    """On conflict the value, n, decision and updated_at are replaced; window_end stays."""
    first = awkward_rows("m")
    later = [
        replace(r, value=0.9, n=r.n + 1, decision="drift", window_end=r.window_end + timedelta(1))
        for r in first[:6]
    ]
    save_both(engine, [(first, NOW), (later, NOW + timedelta(minutes=1))])
    assert_same(engine, len(first))
    with transaction(engine) as conn:
        (row,) = conn.execute(
            text(
                "SELECT value, n, decision FROM window_metrics "
                "WHERE model = 'new' AND metric = 'mean'"
            )
        )
    assert tuple(row) == (0.9, 501, "drift")


def test_a_key_repeated_in_one_batch_ends_as_its_last_row(engine: Engine) -> None:
    """As if upserted one after the other: the last values, the first row's window_end."""
    base = metric("m", "amount", "psi", 0.1)
    rows = [
        base,
        metric("m", "amount", "mean", 1.0),
        replace(base, value=0.2, n=7, decision="drift", window_end=END + timedelta(minutes=1)),
        replace(base, value=0.3, n=8, decision=None, window_end=END + timedelta(minutes=2)),
    ]
    save_both(engine, [(rows[:1], NOW), (rows, NOW + timedelta(seconds=1))])
    assert_same(engine, 2)
    save_both(engine, [([replace(r, version="4") for r in rows], NOW)])  # none stored before
    assert_same(engine, 4)


def test_nothing_to_save_is_a_no_op(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        stored.save_metrics(conn, [], NOW)
        assert stored.query_metrics(conn, "m") == []


def test_a_name_too_long_for_its_column_is_refused_as_before(
    engine: Engine, database_url: str
) -> None:
    """PostgreSQL refuses a feature name over 255 characters (never cuts it); SQLite keeps it."""
    row = metric("m", "f" * 300, "psi", 0.1)
    outcomes = []
    for model, save in (("new", stored.save_metrics), ("old", reference_save)):
        try:
            with transaction(engine, write=True) as conn:
                save(conn, [replace(row, model=model)], NOW)
            outcomes.append("stored")
        except StoreError:
            outcomes.append("refused")
    postgres = database_url.startswith("postgresql")
    assert outcomes == ["refused" if postgres else "stored"] * 2
    if not postgres:
        assert_same(engine, 1)
