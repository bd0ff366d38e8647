"""Issue 3 acceptance: drift and quality decisions through the real pipeline and database.

Each test builds a reference from 20,000 rows, replays JSON Lines of window events through
``monitor.app.replay`` (decode, windows, checkpoint, close, evaluate) into SQLite and, when
configured, PostgreSQL, and reads the stored metrics as ``monitor metrics`` prints them.
Default thresholds only; every window holds 2,000 events or more.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from monitor.app import replay
from monitor.reference.service import build_and_store
from monitor.settings import Settings
from monitor.stats.names import DRIFT_METRICS
from monitor.status import metric_rows, status_report
from monitor.store import db
from tests.support.drift_streams import (
    FEATURES,
    NUMERIC,
    WINDOW_MS,
    GoingMissing,
    MeanShift,
    NewCategory,
    Segments,
    feature_space,
    iso,
    late_stream,
    window_events,
    window_start,
    write_events,
    write_reference,
)

SPACE = feature_space(seed=0)
SHIFTED = {"f00", "f01", "f02"}
OUTPUTS = ("@prediction", "@score")


def model_settings(database_url: str, **model: Any) -> Settings:
    return Settings.from_mapping(
        {
            "database": {"url": database_url},
            "models": [{"name": "m", "window": "5m", "min_samples": 200, **model}],
        }
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated, empty database (disposed afterwards so PostgreSQL can drop the schema)."""
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A migrated SQLite database, for the statistics-only tests at volume.

    What they check (no false alarms over 500,000 events) does not depend on the store, and
    the storage path is exercised on both backends by the other tests; running them once
    keeps CI within its budget.
    """
    url = f"sqlite:///{tmp_path}/volume.db"
    engine = db.create_db_engine(url)
    db.upgrade(engine)
    try:
        yield url, engine
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 reference rows drawn from SPACE (a seed of their own)."""
    return write_reference(tmp_path_factory.mktemp("reference") / "reference.jsonl", SPACE)


@pytest.fixture(scope="module")
def stationary_500k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 windows of 5,000 events from the reference's own distribution."""
    path = tmp_path_factory.mktemp("stationary") / "events.jsonl"
    return write_events(path, window_events(SPACE, [5_000] * 100, seed=20))


def run(
    settings: Settings, engine: Engine, reference: Path, events: Path, batch_size: int = 20_000
) -> dict[str, list[dict[str, Any]]]:
    """Store the reference, replay ``events`` to the end; whole-model rows per window start."""
    build_and_store(settings, engine, "m", reference, None, datetime.now(UTC))
    replay(settings, engine, events, "predictions", flush=True, batch_size=batch_size)
    return by_window(metric_rows(engine, "m"))


def by_window(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    windows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        windows[row["window_start"]].append(row)
    return dict(windows)


def drifted(rows: list[dict[str, Any]]) -> set[str]:
    """Features with a ``drift`` decision on any drift metric."""
    return {r["feature"] for r in rows if r["metric"] in DRIFT_METRICS and r["decision"] == "drift"}


def row(rows: list[dict[str, Any]], feature: str | None, metric: str) -> dict[str, Any]:
    (found,) = [r for r in rows if r["feature"] == feature and r["metric"] == metric]
    return found


def starts(count: int) -> list[str]:
    return [iso(window_start(w)) for w in range(count)]


def test_mean_shift_flags_exactly_the_shifted_features(
    database_url: str, engine: Engine, reference_file: Path, tmp_path: Path
) -> None:
    """A 1-sd shift in three features is flagged on exactly those, and never before onset."""
    onset = window_start(3) + WINDOW_MS // 2
    events = write_events(
        tmp_path / "events.jsonl",
        window_events(
            SPACE, [2_000] * 8, seed=10, changes=[MeanShift(tuple(sorted(SHIFTED)), 1.0, onset)]
        ),
    )
    windows = run(model_settings(database_url), engine, reference_file, events)

    assert sorted(windows) == starts(8)
    for w, start in enumerate(starts(8)):
        rows = windows[start]
        assert row(rows, None, "events")["value"] == 2_000
        flagged = drifted(rows)
        if w < 3:
            assert flagged == set(), (start, _drift_summary(rows))
        elif w == 3:
            assert flagged <= SHIFTED, (start, _drift_summary(rows))
        else:
            assert flagged == SHIFTED, (start, _drift_summary(rows))
            for feature in SHIFTED:
                assert row(rows, feature, "psi")["decision"] == "drift"
        psi = [r for r in rows if r["metric"] == "psi"]
        assert {r["feature"] for r in psi} == {*FEATURES, *OUTPUTS}
        assert all(r["decision"] in ("ok", "drift") for r in psi)


def test_stationary_half_million_events_flag_nothing(
    sqlite_engine: tuple[str, Engine], reference_file: Path, stationary_500k: Path
) -> None:
    """500,000 events from the reference's distribution: no drift, no quality flag anywhere."""
    url, engine = sqlite_engine
    windows = run(model_settings(url), engine, reference_file, stationary_500k)

    assert sorted(windows) == starts(100)
    for start, rows in windows.items():
        assert row(rows, None, "events")["value"] == 5_000
        assert drifted(rows) == set(), (start, _drift_summary(rows))
        assert [(r["feature"], r["metric"]) for r in rows if r["decision"] == "quality"] == []
        psi = [r for r in rows if r["metric"] == "psi"]
        assert len(psi) == len(FEATURES) + len(OUTPUTS)
        assert {r["decision"] for r in psi} == {"ok"}


def test_negligible_shift_on_large_windows_flags_nothing(
    sqlite_engine: tuple[str, Engine], reference_file: Path, tmp_path: Path
) -> None:
    """A 0.02-sd shift of every numeric feature over 50,000-event windows is not drift."""
    events = write_events(
        tmp_path / "events.jsonl",
        window_events(
            SPACE, [50_000] * 4, seed=30, changes=[MeanShift(NUMERIC, 0.02, window_start(0))]
        ),
    )
    url, engine = sqlite_engine
    windows = run(model_settings(url), engine, reference_file, events)

    assert sorted(windows) == starts(4)
    moved = []
    for start, rows in windows.items():
        assert row(rows, None, "events")["value"] == 50_000
        assert drifted(rows) == set(), (start, _drift_summary(rows))
        assert {r["decision"] for r in rows if r["metric"] == "psi"} == {"ok"}
        moved += [
            (row(rows, name, "mean")["value"] - SPACE.means[j]) / SPACE.stds[j]
            for j, name in enumerate(NUMERIC)
        ]
    # The shift is really there (80 means, each within ~0.0045 sd of its truth).
    assert 0.015 < sum(moved) / len(moved) < 0.025


def test_new_category_is_drift_and_unseen(
    database_url: str, engine: Engine, reference_file: Path, tmp_path: Path
) -> None:
    """A category the reference never saw, at 25 % of c0, is drift and an unseen-rate issue."""
    onset = window_start(2)
    events = write_events(
        tmp_path / "events.jsonl",
        window_events(
            SPACE, [2_000] * 4, seed=40, changes=[NewCategory("c0", "c0_new", 0.25, onset)]
        ),
    )
    windows = run(model_settings(database_url), engine, reference_file, events)

    assert sorted(windows) == starts(4)
    for w, start in enumerate(starts(4)):
        rows = windows[start]
        unseen = row(rows, "c0", "unseen_rate")
        drift_rows = [row(rows, "c0", metric) for metric in ("psi", "chi2_pvalue")]
        if w < 2:
            assert drifted(rows) == set(), (start, _drift_summary(rows))
            assert [r["decision"] for r in drift_rows] == ["ok", "ok"]
            assert (unseen["value"], unseen["decision"]) == (0.0, "ok")
        else:
            assert drifted(rows) == {"c0"}, (start, _drift_summary(rows))
            assert [r["decision"] for r in drift_rows] == ["drift", "drift"]
            assert unseen["decision"] == "quality"
            assert 0.22 < unseen["value"] < 0.28


def test_feature_going_missing_is_a_quality_issue(
    database_url: str, engine: Engine, reference_file: Path, tmp_path: Path
) -> None:
    """f05 null in 40 % of events is flagged on f05's missing_rate, and only there."""
    onset = window_start(2)
    events = write_events(
        tmp_path / "events.jsonl",
        window_events(SPACE, [2_000] * 4, seed=50, changes=[GoingMissing("f05", 0.4, onset)]),
    )
    windows = run(model_settings(database_url), engine, reference_file, events)

    assert sorted(windows) == starts(4)
    for w, start in enumerate(starts(4)):
        rows = windows[start]
        missing = row(rows, "f05", "missing_rate")
        quality = {(r["feature"], r["metric"]) for r in rows if r["decision"] == "quality"}
        if w < 2:
            assert (missing["value"], missing["decision"]) == (0.0, "ok")
            assert quality == set()
        else:
            assert missing["decision"] == "quality"
            assert 0.36 < missing["value"] < 0.44
            assert missing["n"] == 2_000
            assert quality == {("f05", "missing_rate")}


def test_late_events_are_counted_not_merged(
    database_url: str, engine: Engine, reference_file: Path, tmp_path: Path
) -> None:
    """Late events are counted per window, never merged in, even after the window closed."""
    settings = model_settings(database_url)
    stream = late_stream(SPACE, [2_000] * 4, late_every=100, seed=60)
    first = tmp_path / "first.jsonl"
    first.write_bytes(b"\n".join(stream.lines) + b"\n")
    # Small batches: windows close while the file is read, so most late events of a window
    # arrive after it closed, the rest (of the last window) before.
    windows = run(settings, engine, reference_file, first, batch_size=1_000)

    total_late = sum(stream.late.values())
    assert total_late >= 60 and len(stream.late) >= 3  # late events in most windows
    assert sorted(windows) == starts(4)
    for w, start in enumerate(starts(4)):
        rows = windows[start]
        begin = window_start(w)
        assert row(rows, None, "events")["value"] == stream.on_time[begin] == 2_000
        assert row(rows, None, "late_events")["value"] == stream.late[begin]
        # A late event's values are in no accumulator either.
        assert row(rows, "f00", "missing_rate")["n"] == 2_000
    (status,) = status_report(settings, engine, with_lag=False)["models"]
    assert (status["events"], status["late"]) == (8_000, total_late)
    assert status["closed_windows"] == 4 and status["open_windows"] == 0

    # A second file brings more events of window 1, long closed: late, and nothing else moves.
    closed = starts(4)[1]
    second = write_events(
        tmp_path / "second.jsonl", window_events(SPACE, [0, 50], seed=61, id_prefix="again")
    )
    replay(settings, engine, second, "predictions", flush=True)
    after = by_window(metric_rows(engine, "m"))

    assert sorted(after) == sorted(windows)
    for start, rows in windows.items():
        late_before = row(rows, None, "late_events")["value"]
        late_after = row(after[start], None, "late_events")["value"]
        assert late_after == late_before + (50 if start == closed else 0)
        assert _without_late(after[start]) == _without_late(rows), start
    (status,) = status_report(settings, engine, with_lag=False)["models"]
    assert (status["events"], status["late"]) == (8_000, total_late + 50)


def _without_late(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {
        (r["segment"], r["feature"], r["metric"]): (r["value"], r["n"], r["decision"])
        for r in rows
        if r["metric"] != "late_events"
    }


def test_segments_are_evaluated_per_slice(
    database_url: str, engine: Engine, reference_file: Path, tmp_path: Path
) -> None:
    """Each configured segment value gets its own metrics, and slices add up to the model."""
    settings = model_settings(database_url, segments=["channel"])
    events = write_events(
        tmp_path / "events.jsonl",
        window_events(
            SPACE, [2_000] * 3, seed=70, segments=Segments("channel", ("web", "app"), (0.6, 0.4))
        ),
    )
    expected: Counter[tuple[str, str]] = Counter()
    for line in events.read_bytes().splitlines():
        event = orjson.loads(line)
        begin = event["ts"] - event["ts"] % WINDOW_MS
        expected[(iso(begin), f"channel={event['segment']['channel']}")] += 1
    whole = run(settings, engine, reference_file, events)

    assert sorted(whole) == starts(3)
    for start in starts(3):
        assert row(whole[start], None, "events")["value"] == 2_000
    for slice_name in ("channel=web", "channel=app"):
        rows = by_window(metric_rows(engine, "m", segment=slice_name))
        assert sorted(rows) == starts(3)
        for start, window_rows in rows.items():
            assert {r["segment"] for r in window_rows} == {slice_name}
            events_row = row(window_rows, None, "events")
            assert events_row["value"] == expected[(start, slice_name)] > 600
            psi = [r for r in window_rows if r["metric"] == "psi"]
            assert {r["feature"] for r in psi} == {*FEATURES, *OUTPUTS}
            assert {r["decision"] for r in psi} == {"ok"}
            assert row(window_rows, "f00", "missing_rate")["n"] == events_row["value"]
    for start in starts(3):
        web, app = expected[(start, "channel=web")], expected[(start, "channel=app")]
        assert web + app == row(whole[start], None, "events")["value"]


def _drift_summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, float, str]]:
    """Drift rows of the flagged and the shifted features, for assertion messages."""
    shown = drifted(rows) | SHIFTED
    return [
        (r["feature"], r["metric"], r["value"], r["decision"])
        for r in rows
        if r["feature"] in shown and r["metric"] in DRIFT_METRICS
    ]
