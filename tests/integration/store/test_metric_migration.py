"""Migration 0008: metrics stored before an upgrade are there after it (and after a downgrade).

The metric rows move into a table keyed by their natural key; a user upgrading keeps every
window's history, and the upsert of a late update still replaces its row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from monitor.store import db
from monitor.store import windows as stored

START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(minutes=5)
NOW = START + timedelta(hours=1)


def _migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    with engine.begin() as conn:
        config = db._alembic_config(conn)
        (command.downgrade if down else command.upgrade)(config, revision)


def _row(feature: str, metric: str, value: float, segment: str | None = None) -> stored.MetricRow:
    return stored.MetricRow("fraud", "v1", segment, START, END, feature, metric, value, 500, "ok")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_db_engine(database_url)
    yield engine
    engine.dispose()


def test_metrics_of_0007_are_kept_by_0008_and_its_downgrade(engine: Engine) -> None:
    _migrate(engine, "0007")
    with engine.begin() as conn:
        stored.save_metrics(conn, [_row("amount", "psi", 0.3), _row("amount", "js", 0.1)], NOW)
        stored.save_metrics(conn, [_row("amount", "psi", 0.2, segment="country=FR")], NOW)

    _migrate(engine, "head")
    columns = {c["name"] for c in inspect(engine).get_columns("window_metrics")}
    assert "id" not in columns
    key = inspect(engine).get_pk_constraint("window_metrics")["constrained_columns"]
    assert key == ["model", "window_start", "version", "segment", "feature", "metric"]
    with engine.begin() as conn:
        before = {(r.segment, r.metric): r.value for r in stored.window_metrics(conn, _window())}
        stored.save_metrics(conn, [_row("amount", "psi", 0.9)], NOW)  # a late update
        after = {(r.segment, r.metric): r.value for r in stored.window_metrics(conn, _window())}
    assert before == {(None, "psi"): 0.3, (None, "js"): 0.1, ("country=FR", "psi"): 0.2}
    assert after == {(None, "psi"): 0.9, (None, "js"): 0.1, ("country=FR", "psi"): 0.2}

    _migrate(engine, "0007", down=True)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, segment, metric, value FROM window_metrics"))
        kept = {(segment, metric): value for _, segment, metric, value in rows}
    assert kept == {("", "psi"): 0.9, ("", "js"): 0.1, ("country=FR", "psi"): 0.2}


def _window() -> stored.WindowId:
    return ("fraud", "v1", START)
