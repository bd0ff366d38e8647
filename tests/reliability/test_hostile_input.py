"""Hostile input: whatever bytes arrive, the daemon never dies and accounts for every record.

Hypothesis writes the records: random bytes, random JSON, deep nesting, huge numbers, NaN and
Infinity tokens, text that is not UTF-8, event times in 1970 and 2999, unknown models, and
events whose fields have every wrong type; each example also carries a 3 MiB record. They go
through the real broker to a real ``monitor run``, and the oracle accounts for every one as
counted (data-quality issues included), late, a duplicate or a dead letter; the database
must agree exactly. A quicker differential test feeds many more examples to the daemon's own
parser and the oracle side by side.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from monitor.ingest.events import EventParser, Rejected
from monitor.settings import Settings
from tests.reliability.oracle import (
    FAMILIES,
    ModelTerms,
    Terms,
    Unusable,
    hours_ago,
    now_ms,
    parse,
)
from tests.reliability.scenarios import Report, scenario
from tests.support import DATABASE_ENV
from tests.support.databases import postgres_schema
from tests.support.kafka import TopicFactory
from tests.support.reliability import Figures

NOW_MS = now_ms()
PAST = (hours_ago(6), hours_ago(1))  # event times the daemon must accept
RECORD_TS_MS = hours_ago(2)  # the timestamp of every produced record (events without ts)
THREE_MIB = 3 * 1024 * 1024
MODELS = ("m", "n")  # configured; other names are unknown models, monitored with defaults
SEGMENTS = ("k",)  # the configured segment keys: their slices "k=value" are stored names

# --- strategies -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**64, -(2**63) - 1, 10**30, -(10**300), 10**400])  # beyond 64 bits
    | st.floats()  # NaN and ±Infinity included: written as the stdlib's tokens
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)
feature_names = st.text(max_size=12) | st.sampled_from(
    ["@score", "@prediction", "", "x" * 300, "a\x00b"]
)
names = (
    st.sampled_from(MODELS)
    | st.sampled_from(["unknown", " ", "", "x" * 300, "nul\x00", "ünï", "1"])
    | st.integers(min_value=-5, max_value=10**30)
    | json_values
)
times = (
    st.integers(*PAST)
    | st.integers(*PAST).map(lambda ms: ms / 1000)
    | st.integers(*PAST).map(lambda ms: _iso(ms))
    | st.integers(0, 946_684_799_000)  # 1970 to 1999, in seconds or milliseconds
    | st.sampled_from(["1970-01-01T00:00:00Z", "2999-12-31T23:59:59Z", 32_503_680_000_000])
    | st.sampled_from(["yesterday", "", "2026-13-01", -1e306, 1e308, 10**40])
    | json_values
)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    offset = timezone(timedelta(hours=(ms // 1000) % 25 - 12))
    return moment.astimezone(offset).isoformat()


def mostly(
    usual: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """``usual`` seven times in ten, else ``hostile``: enough usable events to fill windows."""
    return st.integers(0, 9).flatmap(lambda n: usual if n < 7 else hostile)


@st.composite
def events(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """An event-shaped object, any field missing, wrong or hostile."""
    doc: dict[str, Any] = {}
    fields: dict[str, st.SearchStrategy[Any]] = {
        "model": mostly(st.sampled_from(MODELS), names),
        "version": mostly(st.sampled_from(["1", "2"]), names),
        "ts": mostly(st.integers(*PAST), times),
        "id": mostly(st.text(min_size=1, max_size=12), json_values),
        "prediction": mostly(st.integers(0, 1), json_values),
        "score": mostly(st.floats(0, 1), json_values),
    }
    if kind == "predictions":
        usual = st.dictionaries(st.sampled_from(["x", "y", "c"]), json_values, max_size=3)
        hostile = st.dictionaries(feature_names, json_values, max_size=5) | json_values
        fields["features"] = mostly(usual, hostile)
        values = json_values | st.sampled_from(["web", "x" * 300, "a\x00"])
        keys = st.sampled_from(SEGMENTS) | st.text(max_size=5)
        fields["segment"] = mostly(st.dictionaries(keys, values, max_size=2), json_values)
    else:
        fields["label"] = mostly(st.integers(0, 1), json_values)
    for name, strategy in fields.items():
        if draw(st.integers(0, 9)) < 9:  # mostly present
            doc[name] = draw(strategy)
    return doc


@st.composite
def records(draw: st.DrawFn, kind: str) -> bytes:
    """One record's bytes: mostly event-shaped JSON, else anything at all (the simplest draw
    is a usable event, so hypothesis's first, minimal example still fills windows)."""
    choice = draw(st.integers(0, 9))
    if choice == 4:
        return draw(st.binary(max_size=200))
    if choice == 5:
        return _dumps(draw(json_values))
    if choice == 6:  # deep nesting, as the whole record or as a feature value
        depth = draw(st.sampled_from([10, 300, 5_000, 100_000]))
        nested = "[" * depth + "]" * depth
        if draw(st.booleans()):
            return nested.encode()
        return b'{"model": "m", "ts": %d, "features": {"x": %s}}' % (PAST[0], nested.encode())
    raw = _dumps(draw(events(kind)))
    if choice == 7:  # not UTF-8 inside a string
        return raw.replace(b'"', b'"\xff\xfe', 1)
    if choice == 8:  # numbers no double holds, where orjson gives up
        return raw.replace(b"{", b'{"huge": 1e400, "big": ' + b"9" * 30 + b", ", 1)
    if choice == 9:  # an unpaired surrogate escape, beside a NaN that sends it to the stdlib
        return raw.replace(b"{", b'{"nan": NaN, "odd": "\\ud800x", ', 1)
    return raw


def _dumps(value: Any) -> bytes:
    """orjson where it can; the stdlib (NaN, Infinity, integers beyond 64 bits) where not."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value).encode("utf-8", "surrogatepass")


@dataclass
class Batch:
    predictions: list[tuple[int | None, bytes]]
    labels: list[tuple[int | None, bytes]]


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    """Hostile predictions over two partitions and hostile labels on one; string ids made
    unique, so a repeat is never an (ambiguous) upstream duplicate; a 3 MiB record."""
    predictions = draw(st.lists(records("predictions"), min_size=25, max_size=40))
    labels = draw(st.lists(records("labels"), min_size=5, max_size=15))
    unique = [_unique_ids(raw, i) for i, raw in enumerate(predictions)]
    big = b'{"model": "m", "ts": %d, "features": {"blob": "%s"}}' % (PAST[0], b"x" * THREE_MIB)
    return Batch(
        [(i % 2, raw) for i, raw in enumerate([*unique, big])], [(0, raw) for raw in labels]
    )


def _unique_ids(raw: bytes, i: int) -> bytes:
    """Make a usable-looking string or integer id unique to this record."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(doc, dict) and isinstance(doc.get("id"), str | int) and doc["id"] is not True:
        doc["id"] = f"{doc['id']}#{i}" if isinstance(doc["id"], str) else 10**6 + i
        return orjson.dumps(doc)
    return raw


# --- scenarios ------------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of ``backend`` for one example (hypothesis runs several per test)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/{uuid.uuid4().hex}.db"
        return
    import os

    with postgres_schema(os.environ[DATABASE_ENV]) as url:
        yield url


def _backends() -> list[str]:
    import os

    return ["sqlite", "postgresql"] if os.environ.get(DATABASE_ENV) else ["sqlite"]


@pytest.fixture
def tally() -> Figures:
    """The figures of every example of one test, added up."""
    return Figures()


@pytest.mark.parametrize("backend", _backends())
@settings(
    max_examples=2,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: a run costs seconds
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(batch=batches())
def test_hostile_records_never_kill_the_daemon_and_each_is_accounted_for_once(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    report: Report,
    tally: Figures,
    backend: str,
    batch: Batch,
) -> None:
    """`monitor run` over hostile records exits cleanly, and the database holds exactly the
    oracle's account of every record (counted, late, duplicate or dead letter)."""
    here = tmp_path / uuid.uuid4().hex[:8]  # hypothesis runs several examples per test
    here.mkdir()
    with fresh_database(backend, here) as url:
        s = scenario(
            here, kafka_bootstrap, topic_factory, url, batch.predictions, batch.labels,
            partitions=2, record_ts_ms=RECORD_TS_MS, migrate=False,
            models=[{"name": m, "early_label_grace": "1h", "segments": list(SEGMENTS)}
                    for m in MODELS],
            ingest={"idle_timeout": "10m"},
        )  # fmt: skip
        s.finish(idle="2s")
        found, _ = s.compare()
    tally.produced += s.produced
    tally.lost += found.lost
    tally.doubled += found.doubled
    report(tally)
    s.assert_equal(found, _listing(batch) if found else [])


def _listing(batch: Batch) -> list[str]:
    """Every record of the example, to reproduce a difference."""
    lines = ["--- the records (topic partition offset: bytes) ---"]
    for topic, records in (("predictions", batch.predictions), ("labels", batch.labels)):
        offsets: dict[int | None, int] = {}
        for partition, raw in records:
            offset = offsets[partition] = offsets.get(partition, -1) + 1
            lines.append(f"{topic} {partition} {offset}: {raw[:200]!r}")
    return lines


# --- the parser against the oracle, many examples -----------------------------------------------


PARSER_SETTINGS = Settings.from_mapping(
    {
        "models": [{"name": m, "segments": list(SEGMENTS)} for m in MODELS],
        "kafka": {"predictions_topic": "p", "labels_topic": "l"},
    }
)
TERMS = Terms("p", "l", {m: ModelTerms(segments=SEGMENTS) for m in MODELS})


@dataclass(frozen=True)
class _Record:
    offset: int
    value: bytes
    timestamp: int | None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=records("predictions") | records("labels"), kind=st.sampled_from(["predictions", "labels"])
)
def test_the_parser_and_the_oracle_agree_on_every_hostile_record(raw: bytes, kind: str) -> None:
    """Each record is usable for both or a dead letter for both, for a reason the oracle
    names; usable ones agree on model, version, id and event time; nothing raises."""
    parser = EventParser(PARSER_SETTINGS, lambda: NOW_MS / 1000)
    latest = parser.latest_usable_ms()
    parsed = parser.parse(_Record(0, raw, RECORD_TS_MS), kind, kind[0], 0, latest)  # type: ignore[arg-type]
    try:
        want = parse(raw, kind, TERMS, RECORD_TS_MS, latest)
    except Unusable as u:
        assert isinstance(parsed, Rejected), (raw[:300], u.families, parsed)
        words = [FAMILIES[f] for f in u.families]
        assert any(w.lower() in parsed.reason.lower() for w in words), (parsed.reason, words)
        return
    assert not isinstance(parsed, Rejected), (raw[:300], parsed.reason)
    version = want.version or ("default" if kind == "predictions" else None)
    assert (parsed.model, parsed.version, parsed.id, parsed.ts_ms) == (
        want.model, version, want.id, want.ts_ms
    )  # fmt: skip
    assert math.isfinite(parsed.ts_ms)


# Records that killed `monitor run` (an exception out of the loop, so a restart dies on the
# same record again) or wedged it on PostgreSQL (a checkpoint or window close refused forever,
# read as "database unreachable"), before the parser turned them into dead letters or plain
# floats. Each with the words its dead letter's reason holds (None: usable).
ONCE_FATAL = [
    ("blank model", b'{"model": " ", "ts": 1790000000000}', "model"),
    ("ts far below 0 as float", b'{"model": "m", "ts": -1e306}', "ts"),
    ("ts beyond 64 bits", b'{"model": "m", "ts": 1' + b"0" * 400 + b', "x": NaN}', "ts"),
    ("unpaired surrogate", b'{"model": "a\\ud800", "ts": 1790000000000, "x": NaN}', "JSON"),
    ("model of 300 characters", b'{"model": "' + b"m" * 300 + b'", "ts": 1790000000000}', "model"),
    ("model with NUL", b'{"model": "a\\u0000b", "ts": 1790000000000}', "model"),
    ("version of 300 characters", b'{"model": "m", "version": "' + b"v" * 300 + b'"}', "version"),
    ("id with NUL", b'{"model": "m", "id": "i\\u0000", "ts": 1790000000000}', "id"),
    ("feature name with NUL", b'{"model": "m", "features": {"f\\u0000": 1}}', "feature"),
    ("feature name of 300", b'{"model": "m", "features": {"' + b"f" * 300 + b'": 1}}', "feature"),
    ("segment value with NUL", b'{"model": "m", "segment": {"k": "a\\u0000"}}', "segment"),
    ("segment value of 300", b'{"model": "m", "segment": {"k": "' + b"s" * 300 + b'"}}', "segment"),
    ("score beyond 64 bits", b'{"model": "m", "score": 1' + b"0" * 400 + b', "x": NaN}', None),
]


@pytest.mark.parametrize(
    ("raw", "words"), [c[1:] for c in ONCE_FATAL], ids=[c[0] for c in ONCE_FATAL]
)
def test_records_that_once_killed_or_wedged_the_daemon(raw: bytes, words: str | None) -> None:
    """Each is a dead letter for the reason named, or (huge numbers) a usable event whose
    number is a float, never an exception."""
    parser = EventParser(PARSER_SETTINGS, lambda: NOW_MS / 1000)
    parsed = parser.parse(
        _Record(0, raw, RECORD_TS_MS), "predictions", "p", 0, parser.latest_usable_ms()
    )
    if words is None:
        assert not isinstance(parsed, Rejected), parsed.reason
        assert isinstance(parsed.score, float)
    else:
        assert isinstance(parsed, Rejected) and words in parsed.reason, parsed
