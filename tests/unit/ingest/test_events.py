"""Parsing records into events: the event contract of DESIGN.md §3."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from monitor.ingest.events import EventParser, LabelEvent, PredictionEvent, Rejected
from monitor.settings import Settings

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes | None
    timestamp: int | None = None


def parser(**config: Any) -> EventParser:
    return EventParser(Settings.from_mapping(config), clock=NOW.timestamp)


def parse(doc: Any, kind: str = "predictions", p: EventParser | None = None, **rec: Any) -> Any:
    p = p or parser()
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    record = Record(offset=rec.get("offset", 5), value=raw, timestamp=rec.get("timestamp"))
    return p.parse(record, kind, "predictions", 3, p.latest_usable_ms())  # type: ignore[arg-type]


def test_full_prediction_event_is_typed() -> None:
    """Every field of the contract lands in its place, with coordinates."""
    event = parse(
        {
            "id": "req-81f2",
            "model": "fraud",
            "version": "3",
            "ts": "2026-11-22T10:00:00.120Z",
            "features": {"amount": 12.5, "country": "DE"},
            "prediction": 1,
            "score": 0.87,
            "segment": {"channel": "web"},
        }
    )
    assert isinstance(event, PredictionEvent)
    assert (event.model, event.version, event.id) == ("fraud", "3", "req-81f2")
    assert event.ts_ms == int(datetime(2026, 11, 22, 10, 0, 0, 120000, UTC).timestamp() * 1000)
    assert event.features == {"amount": 12.5, "country": "DE"}
    assert (event.prediction, event.score, event.segment) == (1, 0.87, {"channel": "web"})
    assert (event.partition, event.offset) == (3, 5)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00+00:00"),
        ("2026-11-22T11:00:00+01:00", "2026-11-22T10:00:00+00:00"),
        ("2026-11-22T10:00:00", "2026-11-22T10:00:00+00:00"),  # no zone: UTC
        (1795341600, "2026-11-22T10:00:00+00:00"),  # epoch seconds
        (1795341600.5, "2026-11-22T10:00:00.500000+00:00"),
        (1795341600000, "2026-11-22T10:00:00+00:00"),  # above 1e11: milliseconds
    ],
)
def test_event_time_forms(ts: Any, expected: str) -> None:
    """ISO 8601 with or without a zone and epoch seconds or milliseconds all parse."""
    event = parse({"model": "m", "ts": ts})
    assert datetime.fromtimestamp(event.ts_ms / 1000, UTC).isoformat() == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"model": "m", ', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"", "empty record"),
        (orjson.dumps({"ts": 1795341600}), "missing model field"),
        (orjson.dumps({"model": "", "ts": 1795341600}), "model must be"),
        (orjson.dumps({"model": {"a": 1}, "ts": 1795341600}), "model must be"),
        (orjson.dumps({"model": "m", "ts": "yesterday"}), "unusable ts"),
        (orjson.dumps({"model": "m", "ts": True}), "unusable ts"),
        (orjson.dumps({"model": "m", "ts": "1999-12-31T23:59:59Z"}), "before 2000-01-01"),
        (orjson.dumps({"model": "m", "ts": "2026-11-22T12:10:01Z"}), "max_clock_skew"),
        (orjson.dumps({"model": "m"}), "missing ts and no record timestamp"),
        (orjson.dumps({"model": "m", "ts": 1795341600, "features": [1]}), "features must be"),
        (orjson.dumps({"model": "m", "ts": 1795341600, "segment": "web"}), "segment must be"),
    ],
)
def test_unusable_records_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    """Bad bytes and unusable fields become a Rejected value naming why, never an exception."""
    result = parse(raw)
    assert isinstance(result, Rejected)
    assert reason in result.reason
    assert (result.topic, result.partition, result.offset, result.size) == (
        "predictions",
        3,
        5,
        len(raw),
    )
    assert result.payload == raw


def test_rejection_remembers_the_model_when_known() -> None:
    """A dead letter of a known model is attributed to it, so status can count it."""
    result = parse({"model": "fraud", "ts": "yesterday"})
    assert isinstance(result, Rejected)
    assert result.model == "fraud"


def test_oversized_record_is_rejected_and_payload_truncated() -> None:
    """An event above max_event_bytes is dead-lettered with its first 64 KiB only."""
    raw = orjson.dumps({"model": "m", "ts": 1795341600, "features": {"b": "x" * 2_000_000}})
    result = parse(raw)
    assert isinstance(result, Rejected)
    assert "exceeds max_event_bytes" in result.reason
    assert result.size == len(raw)
    assert result.payload == raw[: 64 * 1024]


def test_nan_and_infinity_tokens_are_values_not_errors() -> None:
    """Python's json.dumps writes NaN/Infinity; they are accepted as (invalid) feature values."""
    raw = json.dumps(
        {"model": "m", "ts": 1795341600, "features": {"a": float("nan"), "b": float("inf")}}
    ).encode()
    event = parse(raw)
    assert isinstance(event, PredictionEvent)
    assert event.features["a"] != event.features["a"]  # NaN
    assert event.features["b"] == float("inf")


def test_missing_ts_falls_back_to_record_timestamp() -> None:
    """Without a ts field the Kafka record's timestamp is the event time."""
    event = parse({"model": "m"}, timestamp=NOW_MS - 1000)
    assert event.ts_ms == NOW_MS - 1000


def test_defaults_version_and_id() -> None:
    """version defaults to "default"; an event without id is still monitored."""
    event = parse({"model": "m", "ts": 1795341600, "version": 7})
    assert (event.version, event.id) == ("7", None)
    assert parse({"model": "m", "ts": 1795341600}).version == "default"


def test_default_model_for_single_model_topics() -> None:
    """ingest.default_model names the model of events that carry none."""
    p = parser(ingest={"default_model": "churn"})
    assert parse({"ts": 1795341600}, p=p).model == "churn"


def test_unknown_models_rejected_when_configured() -> None:
    """unknown_models: reject dead-letters a model missing from the config."""
    p = parser(ingest={"unknown_models": "reject"}, models=[{"name": "churn"}])
    assert isinstance(parse({"model": "churn", "ts": 1795341600}, p=p), PredictionEvent)
    rejected = parse({"model": "other", "ts": 1795341600}, p=p)
    assert isinstance(rejected, Rejected)
    assert "unknown model 'other'" in rejected.reason


def test_field_paths_are_configurable_per_model() -> None:
    """Dotted paths map a user's own event shape onto the contract."""
    p = parser(
        ingest={"fields": {"model": "meta.model", "version": "meta.v"}},
        models=[
            {
                "name": "churn",
                "fields": {
                    "id": "request.id",
                    "ts": "request.at",
                    "features": "input",
                    "score": "output.p",
                },
            }
        ],
    )
    doc = {
        "meta": {"model": "churn", "v": "2"},
        "request": {"id": "r1", "at": "2026-11-22T10:00:00Z"},
        "input": {"plan": "pro"},
        "output": {"p": 0.4},
    }
    event = parse(doc, p=p)
    assert (event.model, event.version, event.id, event.score) == ("churn", "2", "r1", 0.4)
    assert event.features == {"plan": "pro"}


def test_label_event() -> None:
    """Label events carry the id to join on and the label; a missing label is rejected."""
    event = parse({"id": "req-1", "model": "fraud", "label": 0, "ts": 1795341600}, "labels")
    assert isinstance(event, LabelEvent)
    assert (event.id, event.label, event.version) == ("req-1", 0, None)
    missing = parse({"id": "req-1", "model": "fraud", "ts": 1795341600}, "labels")
    assert isinstance(missing, Rejected)
    assert "without a label" in missing.reason
