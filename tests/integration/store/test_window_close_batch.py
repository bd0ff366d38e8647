"""The statements a close runs once for a batch of windows answer as the per-window ones did.

`WindowCloser` locks, reads shares and counters, claims, stores metrics and deletes shares
for up to 16 windows at a time; each batched function is checked here against its
one-window counterpart, and `save_metrics` of `WindowMetrics` against the SQLAlchemy upsert
(`test_window_metrics.reference_save`), on every backend.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, select, text

from monitor.store import db
from monitor.store import labels as stored_labels
from monitor.store import windows as stored
from monitor.store.db import transaction
from monitor.store.windows import MetricRow, PartialRow, WindowId, WindowMetrics
from monitor.windows.evaluation import Metric
from tests.integration.store.test_window_metrics import (
    END,
    NOW,
    START,
    assert_same,
    awkward_rows,
    reference_save,
)

W1: WindowId = ("m", "1", START)
W2: WindowId = ("m", "1", START + timedelta(minutes=5))
W3: WindowId = ("n", "1", START)  # no shares, counters or performance


def partial(window: WindowId, topic: str, partition: int, state: bytes) -> PartialRow:
    model, version, start = window
    return PartialRow(
        model, version, start, start + timedelta(minutes=5), topic, partition, 1, 3, state
    )


def test_shares_of_several_windows_by_topic_and_partition(engine: Engine) -> None:
    rows = [
        partial(W2, "t", 1, b"w2-t1"),
        partial(W1, "t", 1, b"w1-t1"),
        partial(W1, "s", 2, b"w1-s2"),
        partial(W1, "t", 0, b"w1-t0"),
    ]
    with transaction(engine, write=True) as conn:
        stored.save_partials(conn, rows, NOW)
    with transaction(engine, write=True) as conn:
        stored.lock_windows(conn, [W1, W2, W3])
        found = stored.window_shares(conn, [W1, W2, W3])
        assert found == {W1: [b"w1-s2", b"w1-t0", b"w1-t1"], W2: [b"w2-t1"]}
        for window in (W1, W2):
            assert found[window] == [p.state for p in stored.load_partials(conn, window=window)]
        # a window named in another zone is the same window
        elsewhere = START.astimezone(timezone(timedelta(hours=3)))
        assert stored.window_shares(conn, [("m", "1", elsewhere)]) == {W1: found[W1]}
        assert stored.window_shares(conn, []) == {}
        stored.delete_windows_partials(conn, [W1, W3])
    with transaction(engine) as conn:
        assert stored.window_shares(conn, [W1, W2]) == {W2: [b"w2-t1"]}


def test_claims_of_several_windows_skip_those_already_closed(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        assert stored.claim_windows(conn, [stored.Claim(W2, END, 5, None)], NOW) == {W2}
    with transaction(engine, write=True) as conn:
        claims = [
            stored.Claim(W1, END, 7, 3),
            stored.Claim(W2, END, 9, None),
            stored.Claim(W3, END, 0, None),
        ]
        assert stored.claim_windows(conn, claims, NOW) == {W1, W3}
        assert stored.claim_windows(conn, claims, NOW) == set()
        assert stored.claim_windows(conn, [], NOW) == set()
    with transaction(engine) as conn:
        closed = stored.closed_windows(conn, "m") + stored.closed_windows(conn, "n")
    assert [(c.model, c.window_start, c.events, c.reference_revision) for c in closed] == [
        ("m", START, 7, 3),
        ("m", W2[2], 5, None),
        ("n", START, 0, None),
    ]
    assert all(c.closed_at == NOW and c.window_start.tzinfo == UTC for c in closed)


def test_counters_of_several_windows(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        bound = stored._BoundTimes(conn.dialect)
        conn.execute(
            text(
                "INSERT INTO window_counts (model, version, window_start, window_end, events, "
                "labels, late_events, duplicates, unlabelled, orphan_labels) "
                "VALUES ('m', '1', :start, :end, 10, 2, 3, 4, 5, 6)"
            ),
            {"start": bound[START], "end": bound[END]},
        )
    with transaction(engine) as conn:
        found = stored.windows_counters(conn, [W1, W2])
        assert found == {W1: stored.window_counters(conn, W1), W2: stored.window_counters(conn, W2)}
    assert found[W1] == {
        "events": 10,
        "late_events": 3,
        "duplicates": 4,
        "unlabelled": 5,
        "orphan_labels": 6,
    }
    assert set(found[W2].values()) == {0}


def test_performance_shares_of_several_windows(engine: Engine) -> None:
    shares = [
        (("m", "1", START, "t", 1), END, b"w1-t1"),
        (("m", "1", START, "s", 0), END, b"w1-s0"),
        (("m", "1", W2[2], "t", 0), END, b"w2-t0"),
    ]
    with transaction(engine, write=True) as conn:
        stored_labels.save_performance(conn, shares, NOW)
    with transaction(engine, write=True) as conn:
        stored_labels.lock_performances(conn, [W1, W2, W3])
        found = stored_labels.windows_performance(conn, [W1, W2, W3])
        assert found == {W1: [b"w1-s0", b"w1-t1"], W2: [b"w2-t0"]}
        assert found[W1] == stored_labels.window_performance(conn, *W1)


def as_window_metrics(rows: list[MetricRow]) -> list[WindowMetrics]:
    """The rows as a close hands them over: runs of one window, as `Metric`s."""
    batches: list[WindowMetrics] = []
    for r in rows:
        metric = Metric(r.segment, r.feature, r.metric, r.value, r.n, r.decision)
        window = (r.model, r.version, r.window_start)
        last = batches[-1] if batches else None
        if last is not None and last.window == window and last.end == r.window_end:
            assert isinstance(last.rows, list)
            last.rows.append(metric)
        else:
            batches.append(WindowMetrics(window, r.window_end, [metric]))
    return batches


def test_window_metrics_are_stored_as_the_sqlalchemy_upsert_stores_rows(engine: Engine) -> None:
    """Every statement size (32, 8, 1 rows), repeated keys, two windows in one call."""
    base = awkward_rows("m")
    many = [
        replace(base[0], feature=f"f{i}", value=i / 7, n=i, metric=("psi", "ks")[i % 2])
        for i in range(45)
    ]
    again = [replace(r, value=math.nan, n=r.n + 1, window_end=END + timedelta(1)) for r in many[:3]]
    later = [replace(r, window_start=W2[2], window_end=W2[2] + timedelta(minutes=5)) for r in many]
    rows = base + many + again + later
    with transaction(engine, write=True) as conn:
        stored.save_metrics(conn, as_window_metrics([replace(r, model="new") for r in rows]), NOW)
        reference_save(conn, [replace(r, model="old") for r in rows], NOW)
    assert_same(engine, len(base) + len(many) + len(later))
    with transaction(engine, write=True) as conn:  # a late update of some
        update = [replace(r, value=0.5, decision="drift") for r in many[40:] + later[:9]]
        stored.save_metrics(conn, as_window_metrics([replace(r, model="new") for r in update]), NOW)
        reference_save(conn, [replace(r, model="old") for r in update], NOW)
    assert_same(engine, len(base) + len(many) + len(later))


def test_window_lookups_seek_the_window_key(tmp_path: Path) -> None:
    """The tables that keep a row per window for good (closed windows, counts, performance
    shares) are read by their (model, version, window_start) key, never scanned: a scan per
    close would slow a daemon down as its history grows. SQLite's plan says which it is
    (PostgreSQL plans by its statistics)."""
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    db.upgrade(engine)
    windows = [W1, W2, W3]
    for table in (stored._CLOSED, stored._COUNTS, stored_labels._PERFORMANCE):
        query = select(table.c.model).where(stored.among_windows(table, windows))
        with transaction(engine) as conn:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = " ".join(
                str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            )
        assert "SEARCH" in plan and "SCAN" not in plan, (table.name, plan)
    engine.dispose()
