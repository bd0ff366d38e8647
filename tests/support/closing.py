"""A database whose newest windows a replay left open, for the tests of closing them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor import app
from monitor.ingest.replay import replay_topic
from monitor.settings import Settings
from tests.support.daemon import query
from tests.support.streams import prediction_stream

Replayed = tuple[Settings, str, int]  # settings, the file's topic, windows left open
OPEN_WINDOWS = (
    "SELECT COUNT(*) FROM (SELECT DISTINCT model, version, window_start FROM window_partials) w"
)


def replayed_leaving_windows_open(tmp_path: Path, **sections: Any) -> Replayed:
    """A replay of three models over an hour, without flush: its newest windows stay open.
    ``sections``: more of the config."""
    stream = prediction_stream(6_000, bad_fraction=0, huge=False, seed=3)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(value for _, value in stream.records) + b"\n")
    database = {"url": f"sqlite:///{tmp_path}/monitor.db"}
    settings = Settings.from_mapping({"database": database, **sections})
    engine = app.open_database(settings, upgrade=True)
    try:
        app.replay(settings, engine, events, "predictions")
    finally:
        engine.dispose()
    open_windows = count(settings, OPEN_WINDOWS)
    assert open_windows > 0
    return settings, replay_topic(events), open_windows


def count(settings: Settings, sql: str) -> int:
    return int(query(settings.database.url.get_secret_value(), sql)[0][0])
