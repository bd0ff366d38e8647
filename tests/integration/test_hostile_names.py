"""SQL is only ever parameterised: hostile model, version, feature and segment names pass
through the whole pipeline (windows, evaluation, alerts, status, metrics) as plain data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, inspect

from monitor.alert_views import alerts_report
from monitor.app import replay
from monitor.settings import Settings
from monitor.status import metric_rows, status_report
from monitor.store import db

HOSTILE = "x'); DROP TABLE window_counts; --"
FEATURE = 'f"; DELETE FROM consumer_offsets; --'
SEGMENT = "s' OR '1'='1"
START_MS = 1_794_999_900_000  # 2026-11-18T11:05:00Z, a five-minute boundary


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def test_hostile_names_are_stored_as_data(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Every table survives, the events are counted under their literal names, and the
    read paths (status, metrics, alerts) return those names unchanged."""
    tables_before = set(inspect(engine).get_table_names())
    lines = [
        orjson.dumps(
            {
                "id": f"{HOSTILE}{i}",
                "model": HOSTILE,
                "version": HOSTILE,
                "ts": START_MS + i * 1_000,
                "features": {FEATURE: float(i % 7), "plain": "a' --"},
                "segment": {SEGMENT: SEGMENT},
                "prediction": 1,
                "score": 0.5,
            }
        )
        for i in range(900)
    ]
    events = tmp_path / "hostile.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    settings = Settings.from_mapping(
        {
            "database": {"url": database_url},
            "models": [{"name": HOSTILE, "window": "5m", "min_samples": 10,
                        "segments": [SEGMENT]}],
        }
    )  # fmt: skip
    result = replay(settings, engine, events, "predictions", flush=True)
    assert result.records == 900 and result.windows_closed == 3

    assert set(inspect(engine).get_table_names()) == tables_before
    (model,) = status_report(settings, engine, with_lag=False)["models"]
    assert (model["model"], model["version"], model["events"]) == (HOSTILE, HOSTILE, 900)
    rows = metric_rows(engine, HOSTILE, feature=FEATURE)
    assert {r["feature"] for r in rows} == {FEATURE} and len(rows) > 0
    sliced = metric_rows(engine, HOSTILE, segment=f"{SEGMENT}={SEGMENT}")
    assert sliced and {r["segment"] for r in sliced} == {f"{SEGMENT}={SEGMENT}"}
    assert all(a["model"] == HOSTILE for a in alerts_report(engine, datetime.now(UTC)))
