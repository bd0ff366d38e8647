"""``EventParser.parse_batch``: the hot path's short way decides exactly as ``parse`` does.

A batch mixes the usual prediction with every shape that must leave the short way (a model
or feature name not seen before, a dotted field path, a bad id, a segment, seconds instead of
milliseconds, bytes that are not JSON): each record's result must equal ``parse``'s, and so
must what the parser remembers for the records after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.events import EventParser, PredictionEvent
from monitor.settings import Settings

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
CONFIG: dict[str, Any] = {
    "ingest": {"max_event_bytes": 1024},  # a few of the generated events are larger
    "models": [
        {"name": "plain"},
        {"name": "sliced", "segments": ["region"]},
        {"name": "nested", "fields": {"id": "request.id", "features": "request.input"}},
    ],
}


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes | None
    timestamp: int | None = None


def usually(common: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> Any:
    """``common`` four times in five: most records take the short way, the rest leave it."""
    return st.one_of(common, common, common, common, other)


names = usually(
    st.sampled_from(["plain", "sliced", "nested"]),
    st.sampled_from(["other", "", " ", 7, None, "x" * 300]),
)
ids = usually(
    st.sampled_from(["r1", "r2", "é-☃"]) | st.none(),
    st.sampled_from(["", "  ", "a\x00b", "y" * 256, -5, 3, True]),
)
times = usually(
    st.integers(NOW_MS - 10**9, NOW_MS + 600_000),
    st.sampled_from([NOW_MS + 3_600_000, 1795341600, "2026-11-22T10:00:00Z", 946_684_799_999])
    | st.sampled_from([True, None, "soon", 1.5e12]),
)
values = st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=8) | st.none()
features = usually(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), values),
    st.dictionaries(st.sampled_from(["d", "n" * 300]), values) | st.sampled_from([[1], "x"]),
)
segments = usually(
    st.none() | st.dictionaries(st.sampled_from(["region", "tier"]), st.sampled_from(["eu"])),
    st.dictionaries(st.just("region"), st.sampled_from(["x" * 300, 3])) | st.just("web"),
)
documents = st.fixed_dictionaries(
    {"model": names, "ts": times, "features": features},
    optional={
        "version": usually(st.sampled_from(["1", "2", None]), st.sampled_from([3, "", "v" * 300])),
        "id": ids,
        "prediction": st.integers(0, 1) | st.text(max_size=3),
        "score": st.floats(allow_nan=True) | st.none(),
        "scores": st.dictionaries(st.sampled_from(["0", "1"]), st.floats(0, 1)),
        "segment": segments,
        "request": st.fixed_dictionaries({"id": ids, "input": features}),
    },
)
usual_documents = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["plain", "sliced"]),
        "ts": st.integers(NOW_MS - 10**9, NOW_MS),
        "features": st.dictionaries(st.sampled_from(["a", "b", "c"]), values),
    },
    optional={
        "version": st.sampled_from(["1", "2", None]),
        "id": st.sampled_from(["r1", "r2", "é-☃"]) | st.none(),
        "prediction": st.integers(0, 1) | st.text(max_size=3),
        "score": st.floats(allow_nan=True) | st.none(),
        "segment": st.dictionaries(st.sampled_from(["region", "tier"]), st.sampled_from(["eu"])),
    },
)
raw_records = usually(
    usual_documents.map(orjson.dumps),
    documents.map(orjson.dumps)
    | st.sampled_from([b"", b"[1]", b"{", b'{"model": "plain", "ts": NaN}', b"x" * 2000]),
)


def parser() -> EventParser:
    return EventParser(Settings.from_mapping(CONFIG), clock=NOW.timestamp)


@settings(max_examples=300, deadline=None)
@given(st.lists(raw_records, max_size=30))
def test_each_record_parses_as_parse_alone_would(raws: list[bytes]) -> None:
    records = [Record(offset, raw, NOW_MS - 5) for offset, raw in enumerate(raws)]
    one_by_one, batched = parser(), parser()
    latest = one_by_one.latest_usable_ms()
    expected = [one_by_one.parse(r, "predictions", "t", 2, latest) for r in records]
    # twice: the second pass meets every name as already seen, the way a running daemon does
    for _ in range(2):
        assert batched.parse_batch(records, "predictions", "t", 2, latest) == expected
        expected = [one_by_one.parse(r, "predictions", "t", 2, latest) for r in records]


class CountingParser(EventParser):
    """Counts the records that leave the short way for ``parse``."""

    long_way = 0

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        self.long_way += 1
        return super().parse(*args, **kwargs)


def test_the_usual_prediction_is_read_whole_on_the_short_way() -> None:
    """The short way's own result, field by field, once one event taught it the names."""
    doc = {"model": "sliced", "id": "r9", "ts": NOW_MS - 10, "features": {"a": 1.5, "b": "x"}}
    doc |= {"prediction": 1, "score": 0.25, "scores": {"1": 0.25}, "segment": {"region": "eu"}}
    p = CountingParser(Settings.from_mapping(CONFIG), clock=NOW.timestamp)
    first, second = (Record(i, orjson.dumps(doc)) for i in (4, 5))
    events = p.parse_batch([first, second], "predictions", "t", 1, p.latest_usable_ms())
    assert p.long_way == 1  # the first: its model and feature names were new
    assert events[1] == PredictionEvent(
        "sliced",
        "default",
        NOW_MS - 10,
        "r9",
        {"a": 1.5, "b": "x"},
        1,
        0.25,
        {"1": 0.25},
        {"region": "eu"},
        1,
        5,
    )
