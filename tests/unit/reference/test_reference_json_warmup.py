"""Profiles survive storage as JSON, and warm-up profiles equal file-built ones."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import MonitorError
from monitor.reference.columns import NumericProfile
from monitor.reference.profile import ReferenceProfile, WarmupCollector, build_profile
from monitor.settings import ModelConfig

MODEL = ModelConfig(name="churn", features={"plan": "categorical", "ghost": "numeric"})


def events(n: int) -> list[dict[str, Any]]:
    """Prediction events with numeric, categorical, boolean and sometimes missing features."""
    return [
        {
            "ts": 1_795_341_600_000 + 250 * i,
            "features": {
                "amount": None if i % 7 == 0 else (i * 37 % 101) / 3,
                "country": ["DE", "FR", "US"][i % 3],
                "plan": i % 4,
                "vip": i % 5 == 0,
                **({"late": float(i)} if i > n // 2 else {}),
            },
            "prediction": i % 2,
            "score": (i * 13 % 100) / 100,
        }
        for i in range(n)
    ]


def test_json_round_trip_is_exact() -> None:
    """from_json(to_json(p)) == p, including None parts and empty-edge profiles."""
    rows = [r | {"label": r["prediction"] if r["ts"] % 3 else 1 - r["prediction"]}
            for r in events(300)]  # fmt: skip
    profile = build_profile(rows, MODEL, "7", "data/churn.csv")
    assert isinstance(profile.features["ghost"], NumericProfile)
    data = profile.to_json()
    assert isinstance(data, bytes)
    assert ReferenceProfile.from_json(data) == profile
    doc = orjson.loads(data)
    assert doc["format"] == 1 and doc["features"]["ghost"]["edges"] == []
    assert doc["features"]["vip"]["type"] == "boolean"
    assert doc["score"]["histogram"][0] == 0 and len(doc["score"]["edges"]) == 11


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(-1e9, 1e9),
            st.sampled_from([math.nan, math.inf, -math.inf]),
            st.integers(-(10**6), 10**6),
            st.none(),
            st.sampled_from(["a", "b", True]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 12),
)
def test_any_numeric_column_round_trips_and_adds_up(values: list[Any], bins: int) -> None:
    """For any column: edges increase, histogram sums to count, counts add up, JSON is exact."""
    rows = [{"features": {"x": v}, "prediction": 0} for v in values]
    profile = build_profile(rows, ModelConfig(name="m", features={"x": "numeric"}), None, "h",
                            bins=bins)  # fmt: skip
    x = profile.features["x"]
    assert isinstance(x, NumericProfile)
    assert all(a < b for a, b in zip(x.edges, x.edges[1:], strict=False))
    assert len(x.edges) <= max(bins + 1, 2)
    assert sum(x.histogram) == x.count and len(x.sample) == x.count
    assert x.count + x.missing + x.type_errors == len(values)
    assert ReferenceProfile.from_json(profile.to_json()) == profile


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b'{"format": 2}', b'{"format": 1, "model": "m"}', b"not json"],
)
def test_from_json_rejects_what_is_not_a_profile(data: bytes) -> None:
    """Corrupt or foreign bytes are a MonitorError, never a half-built profile."""
    with pytest.raises(MonitorError, match="not a reference profile"):
        ReferenceProfile.from_json(data)


def test_from_json_rejects_a_categorical_score() -> None:
    """The score distribution must be numeric."""
    doc = orjson.loads(build_profile(events(10), MODEL, None, "t").to_json())
    doc["score"] = doc["prediction"]
    with pytest.raises(MonitorError, match="not numeric"):
        ReferenceProfile.from_json(orjson.dumps(doc))


def test_warmup_equals_build_profile_on_the_first_n_events() -> None:
    """The warm-up profile is the file profile of the same first N events."""
    stream, n = events(100), 60
    collector = WarmupCollector(MODEL, n, version="3")
    kept = []
    for start in range(0, len(stream), 7):
        batch = stream[start : start + 7]
        kept.append(
            collector.add(
                [e["features"] for e in batch],
                [e["prediction"] for e in batch],
                [e["score"] for e in batch],
                [e["ts"] for e in batch],
            )
        )
        assert collector.ready == (sum(kept) >= n)
    assert sum(kept) == collector.collected == n
    assert collector.build("warmup") == build_profile(stream[:n], MODEL, "3", "warmup")


def test_warmup_without_times_has_no_rate() -> None:
    """Without event times the rate is unknown (None) rather than invented."""
    collector = WarmupCollector(MODEL, 3)
    assert collector.add([{"x": 1}] * 5, [1] * 5, [None] * 5) == 3
    assert collector.add([{"x": 1}], [1], [0.5]) == 0
    profile = collector.build()
    assert profile.rate_per_second is None and profile.score is None
    assert profile.created_from == "warmup:3" and profile.rows == 3


def test_warmup_rejects_misaligned_batches() -> None:
    """features, predictions and scores are parallel sequences."""
    with pytest.raises(ValueError, match="same length"):
        WarmupCollector(MODEL, 3).add([{}], [1, 2], [0.1])
    with pytest.raises(ValueError, match="size"):
        WarmupCollector(MODEL, 0)


def test_warmup_before_any_event_is_an_error() -> None:
    """Building from nothing fails clearly instead of storing an empty reference."""
    with pytest.raises(MonitorError, match="no rows"):
        WarmupCollector(MODEL, 5).build()


def test_nan_features_are_missing_not_numbers() -> None:
    """NaN from the stdlib JSON fallback counts as missing in a numeric feature."""
    rows = [{"features": {"x": v}} for v in (1.0, math.nan, 3.0)]
    x = build_profile(rows, ModelConfig(name="m"), None, "t").features["x"]
    assert isinstance(x, NumericProfile) and (x.count, x.missing) == (2, 1)
