"""``reference: {warmup: N}``: the first N events of a model version become its reference."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Engine

from monitor.app import replay
from monitor.reference.profile import WarmupCollector
from monitor.reference.service import build_and_store, load_active
from monitor.settings import Settings
from monitor.status import iso, metric_rows, status_report
from monitor.store import db
from monitor.windows.ranges import to_datetime

START_MS = 1_794_999_960_000  # 2026-11-18T11:06:00Z, a minute boundary
STEP_MS = 100  # 600 events per one-minute window


def events(count: int, version: str = "1", seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": f"e{i}",
            "model": "m",
            "version": version,
            "ts": START_MS + i * STEP_MS,
            "features": {"x": rng.gauss(0, 1), "c": rng.choice("abc"), "k": rng.randint(0, 3)},
            "prediction": rng.randint(0, 1),
            "score": rng.random(),
        }
        for i in range(count)
    ]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def setup(database_url: str, warmup: int) -> tuple[Settings, Engine]:
    settings = Settings.from_mapping(
        {
            "database": {"url": database_url},
            "models": [{"name": "m", "window": "1m", "reference": {"warmup": warmup}}],
        }
    )
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    return settings, engine


def expected_profile(settings: Settings, rows: list[dict[str, Any]], version: str) -> bytes:
    collector = WarmupCollector(settings.model("m"), len(rows), version)
    collector.add(
        [r["features"] for r in rows],
        [r["prediction"] for r in rows],
        [r["score"] for r in rows],
        [r["ts"] for r in rows],
    )
    return collector.build().to_json()


def warmup_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM warmup_events")).scalar_one())


def test_first_n_events_become_the_version_reference(tmp_path: Path, database_url: str) -> None:
    """1,000 warm-up events over four checkpoints: the profile of exactly those, then drift."""
    settings, engine = setup(database_url, 1000)
    stream = events(3000)
    replay(settings, engine, write(tmp_path / "e.jsonl", stream), "predictions", batch_size=250)
    active = load_active(engine, "m", "1")
    assert active is not None
    assert (active.version, active.profile.rows, active.profile.created_from) == (
        "1",
        1000,
        "warmup:1000",
    )
    assert active.profile.to_json() == expected_profile(settings, stream[:1000], "1")
    assert warmup_rows(engine) == 0
    replay(settings, engine, tmp_path / "e.jsonl", "predictions", flush=True)
    starts = {row["window_start"] for row in metric_rows(engine, "m", metric="psi")}
    # Windows that opened after event 1,000 was stored (the third on) compare with it.
    assert starts == {iso(to_datetime(START_MS + 60_000 * w)) for w in (2, 3, 4)}


def test_warmup_resumes_across_restarts(tmp_path: Path, database_url: str) -> None:
    """Stopping mid-warm-up loses and doubles nothing: the profile equals an uninterrupted one."""
    settings, engine = setup(database_url, 1000)
    stream = events(1500)
    path = write(tmp_path / "e.jsonl", stream[:420])
    replay(settings, engine, path, "predictions", batch_size=100)
    assert warmup_rows(engine) == 420
    report = status_report(settings, engine, with_lag=False)
    assert report["models"][0]["warmup"] == {"events": 420, "of": 1000}
    assert load_active(engine, "m", "1") is None
    write(path, stream)  # the same lines and more: the next replay resumes at line 421
    replay(settings, engine, path, "predictions", batch_size=100)
    active = load_active(engine, "m", "1")
    assert active is not None
    assert active.profile.to_json() == expected_profile(settings, stream[:1000], "1")


def test_each_version_warms_up_on_its_own(tmp_path: Path, database_url: str) -> None:
    """Version 2 gets its own warm-up reference; version 1's stays as it was."""
    settings, engine = setup(database_url, 300)
    first, second = events(400, "1"), events(400, "2", seed=8)
    path = write(tmp_path / "e.jsonl", first + second)
    replay(settings, engine, path, "predictions", batch_size=150)
    for version, rows in (("1", first), ("2", second)):
        active = load_active(engine, "m", version)
        assert active is not None
        assert active.version == version
        assert active.profile.to_json() == expected_profile(settings, rows[:300], version)


def test_a_model_wide_reference_ends_the_warmup(tmp_path: Path, database_url: str) -> None:
    """With a profile from `monitor reference build`, no warm-up profile is built."""
    settings, engine = setup(database_url, 300)
    reference = write(tmp_path / "ref.jsonl", events(200, seed=9))
    build_and_store(settings, engine, "m", reference, None, datetime.now(UTC))
    replay(settings, engine, write(tmp_path / "e.jsonl", events(600)), "predictions")
    active = load_active(engine, "m", "1")
    assert active is not None
    assert (active.version, active.profile.created_from) == (None, str(reference))
    assert warmup_rows(engine) == 0
