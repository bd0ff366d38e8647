"""The traffic generator without Kafka: the drift schedule, the generated traffic, the CLI.

The generator lives in ``monitor.demo.drift`` and ``monitor.demo.traffic`` (shared with
``monitor demo``); ``scripts/produce_events.py`` is the command line around it, loaded here by
path as a user runs it.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from monitor.demo import drift as dr
from monitor.demo import traffic as tr

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "produce_events.py"
START_MS = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
MIN_MS = 60_000


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("produce_events", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


pe = _load()


def generator(*drifts: str, **options: Any) -> Any:
    options.setdefault("label_delay_ms", 0)
    return tr.Generator(
        options.pop("models", ["churn"]),
        origin_ms=START_MS,
        drifts=[dr.parse_drift(d) for d in drifts],
        seed=options.pop("seed", 3),
        **options,
    )


def docs(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records if r.malformed is None]


@pytest.mark.parametrize(
    ("text", "kind", "feature", "amount", "start", "end"),
    [
        ("f03:+1sd@10m", "shift", "f03", 1.0, 10 * MIN_MS, None),
        ("f03:-0.5sd@2m-6m", "shift", "f03", -0.5, 2 * MIN_MS, 6 * MIN_MS),
        ("f19:2sd", "shift", "f19", 2.0, 0, None),
        ("f10:missing=0.3@1h", "missing", "f10", 0.3, 60 * MIN_MS, None),
        ("c2:missing=1@0", "missing", "c2", 1.0, 0, None),
        ("c1:new=0.2@90s", "new", "c1", 0.2, 90_000, None),
        ("concept@5m", "concept", None, 0.0, 5 * MIN_MS, None),
        ("concept@1h30m-2h", "concept", None, 0.0, 90 * MIN_MS, 120 * MIN_MS),
        (" f00:+0.25sd@250ms ", "shift", "f00", 0.25, 250, None),
    ],
)
def test_parse_drift_accepts_the_documented_forms(
    text: str, kind: str, feature: str | None, amount: float, start: int, end: int | None
) -> None:
    """Every documented --drift form parses to its kind, feature, size and event-time range."""
    drift = dr.parse_drift(text)
    assert drift == dr.Drift(kind, feature, amount, start, end)
    assert dr.parse_drift(str(drift)) == drift  # progress lines print re-parseable items


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected \\[MODEL/\\]FEATURE:\\+Ksd@T"),
        ("f03", "expected \\[MODEL/\\]FEATURE:\\+Ksd@T"),
        ("f99:+1sd@1m", "unknown feature 'f99'"),
        ("c1:+1sd@1m", "mean shift needs a numeric feature"),
        ("f03:new=0.2@1m", "new=SHARE needs a categorical feature"),
        ("f03:missing=1.5@1m", "share '1.5' must be a number from 0 to 1"),
        ("f03:missing=lots@1m", "share 'lots' must be a number from 0 to 1"),
        ("f03:+1xd@1m", "'\\+1xd' is not \\+Ksd, missing=SHARE or new=SHARE"),
        ("f03:+1sd@10x", "bad duration '10x'"),
        ("f03:+1sd@", "bad duration ''"),
        ("f03:+1sd@6m-2m", "end must come after its start"),
        ("concept@5m-5m", "end must come after its start"),
    ],
)
def test_parse_drift_rejects_bad_items_with_a_clear_message(text: str, message: str) -> None:
    """A malformed --drift item fails at start-up, naming the item and what is wrong."""
    with pytest.raises(dr.ScheduleError, match=message):
        dr.parse_drift(text)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("250ms", 250), ("90s", 90_000), ("10m", 600_000), ("1h30m", 5_400_000), ("2.5", 2500)],
)
def test_parse_duration_ms(text: str, ms: int) -> None:
    """Durations take units ms/s/m/h/d, combined, or bare seconds."""
    assert dr.parse_duration_ms(text) == ms


def test_parse_start_never_puts_event_time_ahead_of_the_wall_clock() -> None:
    """--start accepts ISO 8601 and -2h; with --speed > 1 it defaults to now - duration*speed."""
    now = START_MS + 10 * 24 * 60 * MIN_MS
    assert dr.parse_start(None, now, None, 1.0) == now
    assert dr.parse_start(None, now, 3000, 60.0) == now - 180_000
    assert dr.parse_start("-2h", now, None, 1.0) == now - 120 * MIN_MS
    assert dr.parse_start("2024-03-01T00:00:00Z", now, None, 1.0) == START_MS
    assert dr.parse_start("2024-03-01T00:00:00", now, None, 1.0) == START_MS  # UTC assumed
    with pytest.raises(dr.ScheduleError, match="in the future"):
        dr.parse_start("2099-01-01T00:00:00Z", now, None, 1.0)
    with pytest.raises(dr.ScheduleError, match="needs --duration"):
        dr.parse_start(None, now, None, 60.0)


def test_events_are_seeded_keyed_by_model_and_spread_over_the_interval() -> None:
    """Same seed, same bytes; models take turns; ids count per model; ts fill (since, now]."""
    a = generator(models=["churn", "fraud"]).events(6, START_MS + 600, since_ms=START_MS)
    b = generator(models=["churn", "fraud"]).events(6, START_MS + 600, since_ms=START_MS)
    assert [r.value for r in a] == [r.value for r in b]
    events = docs(a)
    assert [e["id"] for e in events] == [
        "churn-1", "fraud-1", "churn-2", "fraud-2", "churn-3", "fraud-3",
    ]  # fmt: skip
    assert [r.key for r in a] == [e["model"].encode() for e in events]
    assert [e["ts"] for e in events] == [START_MS + 100 * i for i in range(1, 7)]
    event = events[0]
    assert set(event) == {"id", "model", "version", "ts", "features", "prediction", "score"}
    assert set(event["features"]) == set(dr.NUMERIC + dr.CATEGORICAL)
    assert event["prediction"] == int(event["score"] >= 0.5) and event["version"] == "v1"


def test_mean_shift_moves_the_feature_by_k_sd_only_while_active() -> None:
    """f03:+1sd@10m-20m: mean at reference before 10 min, +1 sd until 20 min, back after."""
    gen = generator("f03:+1sd@10m-20m")
    space = gen.spaces["churn"]
    j = dr.NUMERIC.index("f03")

    def shift_in_sd(feature_index: int, minute: int) -> float:
        rows = docs(gen.events(2500, START_MS + minute * MIN_MS))
        values = [row["features"][dr.NUMERIC[feature_index]] for row in rows]
        shift = statistics.fmean(values) - space.means[feature_index]
        return float(shift / space.sds[feature_index])

    assert abs(shift_in_sd(j, 5)) < 0.1
    assert shift_in_sd(j, 10) == pytest.approx(1.0, abs=0.1)
    assert shift_in_sd(j, 15) == pytest.approx(1.0, abs=0.1)
    assert abs(shift_in_sd(j + 1, 15)) < 0.1  # other features stay put
    assert abs(shift_in_sd(j, 20)) < 0.1


def test_missing_and_new_category_shares_are_honoured() -> None:
    """f05:missing=0.3 nulls ~30% of f05 from onset; c1:new=0.2 gives ~20% an unseen value."""
    gen = generator("f05:missing=0.3@1m", "c1:new=0.2@1m")
    before = docs(gen.events(1000, START_MS))
    assert all(e["features"]["f05"] is not None for e in before)
    assert not any(e["features"]["c1"] == "c1_new" for e in before)
    after = docs(gen.events(5000, START_MS + MIN_MS))
    missing = sum(e["features"]["f05"] is None for e in after) / len(after)
    unseen = sum(e["features"]["c1"] == "c1_new" for e in after) / len(after)
    assert missing == pytest.approx(0.3, abs=0.03)
    assert unseen == pytest.approx(0.2, abs=0.03)
    assert all(e["features"]["f06"] is not None for e in after)


def test_malformed_fraction_and_mix_are_honoured() -> None:
    """--malformed 0.1 makes ~10% bad records, of every kind, each really defective."""
    records = generator(malformed=0.1).events(10_000, START_MS)
    bad = [r for r in records if r.malformed is not None]
    assert len(bad) / len(records) == pytest.approx(0.1, abs=0.015)
    assert {r.malformed for r in bad} == set(tr.MALFORMED_KINDS)
    for record in bad:
        if record.malformed == "not_json":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(record.value)
            continue
        doc = orjson.loads(record.value)
        if record.malformed == "no_model":
            assert "model" not in doc
        elif record.malformed == "string_feature":
            assert any(isinstance(doc["features"][f], str) for f in dr.NUMERIC)
        else:
            assert doc["ts"] == "yesterday"


def test_labels_come_only_after_their_jittered_delay() -> None:
    """A label is due 48-72 s after a prediction with --label-delay 1m, for ~the label share."""
    gen = generator(label_delay_ms=MIN_MS, label_fraction=0.5)
    events = docs(gen.events(2000, START_MS))
    assert gen.due_labels(START_MS + 47_999) == []
    labels = docs(gen.due_labels(START_MS + 72_000))
    assert gen.pending_labels == 0
    assert len(labels) == pytest.approx(1000, abs=100)
    assert {e["id"] for e in labels} <= {e["id"] for e in events}
    assert all(START_MS + 48_000 <= e["ts"] <= START_MS + 72_000 for e in labels)
    assert [e["ts"] for e in labels] == sorted(e["ts"] for e in labels)
    assert set(labels[0]) == {"id", "model", "label", "ts"}
    assert {e["label"] for e in labels} == {0, 1}
    no_labels = generator(label_delay_ms=0)
    no_labels.events(100, START_MS)
    assert no_labels.pending_labels == 0


def test_concept_drift_lowers_agreement_between_label_and_prediction() -> None:
    """concept@10m inverts the label relation: accuracy falls from high to low at onset."""
    gen = generator("concept@10m", label_delay_ms=1000, label_fraction=1.0)

    def accuracy(minute: int) -> float:
        now = START_MS + minute * MIN_MS
        predictions = {e["id"]: e["prediction"] for e in docs(gen.events(3000, now))}
        labels = docs(gen.due_labels(now + 2000))
        agree: int = sum(predictions[e["id"]] == e["label"] for e in labels)
        return agree / len(labels)

    before, after = accuracy(5), accuracy(15)
    assert before > 0.75
    assert after < 0.35


def test_a_drift_can_be_confined_to_one_model() -> None:
    """fraud/f03:+2sd shifts f03 of fraud only; churn's f03 stays at its reference mean."""
    drift = dr.parse_drift("fraud/f03:+2sd@1m-3m")
    assert drift == dr.Drift("shift", "f03", 2.0, MIN_MS, 3 * MIN_MS, "fraud")
    assert str(drift) == "fraud/f03:+2sd@1m-3m" and dr.parse_drift(str(drift)) == drift
    gen = generator("fraud/f03:+2sd@1m-3m", models=["churn", "fraud"])
    rows = docs(gen.events(4000, START_MS + 2 * MIN_MS))
    j = dr.NUMERIC.index("f03")
    for model, expected in (("churn", 0.0), ("fraud", 2.0)):
        space = gen.spaces[model]
        values = [r["features"]["f03"] for r in rows if r["model"] == model]
        shift = (statistics.fmean(values) - space.means[j]) / space.sds[j]
        assert shift == pytest.approx(expected, abs=0.1), model
    assert gen.active_drifts(START_MS + 2 * MIN_MS, "churn") == []
    assert gen.active_drifts(START_MS + 2 * MIN_MS) == [drift]
    with pytest.raises(ValueError, match="drift for a model not generated: fraud"):
        generator("fraud/concept@1m")


def test_training_rows_are_the_undrifted_world_with_labels() -> None:
    """training_rows: event-shaped labelled rows of the same feature space, ~85% accurate."""
    gen = generator("f03:+3sd@0")
    space = gen.spaces["churn"]
    rows = list(tr.training_rows(space, 5000, seed=1))
    assert set(rows[0]) == {"id", "features", "prediction", "score", "label"}
    j = dr.NUMERIC.index("f03")
    shift = (statistics.fmean(r["features"]["f03"] for r in rows) - space.means[j]) / space.sds[j]
    assert abs(shift) < 0.1  # no drift in training data, whatever the stream's schedule
    accuracy = sum(r["prediction"] == r["label"] for r in rows) / len(rows)
    assert 0.75 < accuracy < 0.95
    assert rows == list(tr.training_rows(space, 5000, seed=1))  # seeded


def test_print_schedule_shows_drifts_in_event_and_wall_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--print-schedule needs no Kafka and maps each drift's @T to wall time via --speed."""
    code = pe.main(
        ["--print-schedule", "--start", "2024-03-01T00:00:00Z", "--speed", "60",
         "--drift", "f03:+1sd@10m-20m", "--drift", "concept@1h"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "f03:+1sd@10m-20m" in out and "2024-03-01T00:10:00Z to 2024-03-01T00:20:00Z" in out
    assert "wall clock +10s to +20s" in out and "concept@1h" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--drift", "f03:+1sd@6m-2m"], "end must come after its start"),
        (["--malformed", "1.5"], "argument --malformed: 1.5 is outside"),
        (["--rate", "0"], "argument --rate: 0 is outside"),
        (["--models", "churn,,fraud"], "models must be distinct non-empty names"),
        (["--speed", "60"], "needs --duration"),
    ],
)
def test_bad_command_lines_exit_2_with_the_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad options stop before any Kafka connection, with exit code 2 and a message."""
    with pytest.raises(SystemExit) as exit_info:
        pe.main([*argv, "--print-schedule"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
