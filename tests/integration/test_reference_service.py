"""Stored references: revisions, version fallback, and the configured path built at start."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine

from monitor.errors import StoreError
from monitor.reference.service import (
    ReferenceCache,
    build_and_store,
    ensure_configured_references,
    load_active,
)
from monitor.settings import Settings
from monitor.store import db

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def reference_file(path: Path, mean: float) -> Path:
    rows = [{"features": {"x": mean + (i % 7)}, "prediction": i % 2} for i in range(100)]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    return path


def engine_for(url: str) -> Engine:
    engine = db.create_db_engine(url)
    db.upgrade(engine)
    return engine


def test_newest_revision_wins_and_versions_fall_back(tmp_path: Path, database_url: str) -> None:
    """A version's own profile wins; without one the model-wide newest revision serves."""
    engine, settings = engine_for(database_url), Settings.from_mapping({})
    build_and_store(settings, engine, "m", reference_file(tmp_path / "a.jsonl", 0), None, NOW)
    revision, _ = build_and_store(
        settings, engine, "m", reference_file(tmp_path / "b.jsonl", 10), None, NOW
    )
    build_and_store(settings, engine, "m", reference_file(tmp_path / "c.jsonl", 50), "3", NOW)
    fallback = load_active(engine, "m", "2")
    assert fallback is not None
    assert (fallback.revision, fallback.version) == (revision, None)
    own = load_active(engine, "m", "3")
    assert own is not None
    assert own.version == "3"
    assert own.profile.features["x"].type == "numeric"
    assert load_active(engine, "other", None) is None


def test_configured_path_is_built_once(tmp_path: Path, database_url: str) -> None:
    """A model naming reference.path gets its profile at start-up, and only the first time."""
    path = reference_file(tmp_path / "ref.jsonl", 5)
    settings = Settings.from_mapping({"models": [{"name": "m", "reference": {"path": str(path)}}]})
    engine = engine_for(database_url)
    assert ensure_configured_references(settings, engine, NOW) == [("m", 1)]
    assert ensure_configured_references(settings, engine, NOW) == []
    active = load_active(engine, "m", "1")
    assert active is not None
    assert active.profile.rows == 100


def test_cache_keeps_the_last_profile_while_the_database_is_down(
    tmp_path: Path, database_url: str
) -> None:
    """A database outage when the cache expires keeps the last profile instead of failing."""
    engine = engine_for(database_url)
    build_and_store(
        Settings.from_mapping({}), engine, "m", reference_file(tmp_path / "a.jsonl", 0), None, NOW
    )
    cache = ReferenceCache(engine, ttl_s=0.0)
    known = cache.get("m", "1")
    assert known is not None
    cache.engine = db.create_db_engine("postgresql+psycopg://postgres@127.0.0.1:9/none")
    assert cache.get("m", "1") is known
    with pytest.raises(StoreError):
        cache.get("never-seen", "1")
