"""Predictions waiting for labels: what is stored reads back as it was given.

SQLite takes a batch as rows of bound values, PostgreSQL as binary column arrays. Both must
keep the same values (JSON text for slices, predictions and scores), the first of an id
within a batch, and report which ids were new.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from monitor.store import labels
from monitor.store.db import transaction
from monitor.store.labels import PredictionRow, StoredPrediction

START = 1_795_000_000_000


def row(id_: str, prediction: Any = 1, **changes: Any) -> PredictionRow:
    values: dict[str, Any] = {
        "model": "m",
        "version": "v1",
        "slices": ("",),
        "score": 0.25,
        "scores": None,
        "event_ms": START + 7,
    }
    values |= changes
    return (
        values["model"],
        id_,
        values["version"],
        START,
        START + 300_000,
        values["slices"],
        prediction,
        values["score"],
        values["scores"],
        values["event_ms"],
    )


ROWS = [
    row("plain"),
    row("text", "cat é ☃", slices=("", "region=eu", 'tier=x"y')),
    row("object", {"a": [1, 2.5, None], "b": "\u0001"}, scores={"a": 0.75, "b": 0.25}),
    row("unscored", True, score=None),
    row("float", 0.1 + 0.2, score=1e300),
    row("null", None, version="ünï"),
    row("big", 2**63 + 5),
    row("quoted 'id' \"x\"", [1, "2"]),
]


def stored(engine: Engine, rows: list[PredictionRow]) -> dict[labels.Key, StoredPrediction]:
    with transaction(engine) as conn:
        return labels.find_predictions(conn, [(r[0], r[1]) for r in rows])


def test_a_batch_reads_back_as_given(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        assert labels.insert_predictions(conn, ROWS) == {(r[0], r[1]) for r in ROWS}
    assert stored(engine, ROWS) == {(r[0], r[1]): StoredPrediction(*r) for r in ROWS}


def test_values_orjson_cannot_write_and_batches_without_scores_are_kept(engine: Engine) -> None:
    """An integer beyond 64 bits (no event decodes to one, but the store takes it); a batch
    whose score and scores columns are all empty."""
    rows = [row("huge", 2**70, score=None), row("small", 2, score=None)]
    with transaction(engine, write=True) as conn:
        assert labels.insert_predictions(conn, rows) == {("m", "huge"), ("m", "small")}
    assert stored(engine, rows) == {(r[0], r[1]): StoredPrediction(*r) for r in rows}


def test_taken_ids_are_not_stored_again_and_the_first_of_a_batch_wins(engine: Engine) -> None:
    with transaction(engine, write=True) as conn:
        labels.insert_predictions(conn, [row("a", "first")])
    batch = [row("a", "again"), row("b", "first"), row("b", "second"), row("c")]
    with transaction(engine, write=True) as conn:
        assert labels.insert_predictions(conn, batch) == {("m", "b"), ("m", "c")}
    found = stored(engine, batch)
    assert [found[("m", i)].prediction for i in "abc"] == ["first", "first", 1]
    with transaction(engine, write=True) as conn:  # every id taken: nothing to store
        assert labels.insert_predictions(conn, [row("a", "third"), row("c", "again")]) == set()
    assert stored(engine, [row("a"), row("c")])[("m", "a")].prediction == "first"


def test_ids_sharing_a_hash_are_stored_found_and_labelled_apart(engine: Engine) -> None:
    """SQLite finds waiting predictions by a 4-byte hash of the id (`labels.key_hash`); these
    two ids share one, and neither may stand in for the other."""
    first, second = "id-29685295", "id-32060020"
    assert labels.key_hash(first) == labels.key_hash(second)
    with transaction(engine, write=True) as conn:
        assert labels.insert_predictions(conn, [row(first, "a")]) == {("m", first)}
    with transaction(engine, write=True) as conn:
        batch = [row(second, "b"), row(first, "again")]
        assert labels.insert_predictions(conn, batch) == {("m", second)}
        labels.mark_labelled(conn, [(("m", second), START + 60_000)])
    found = stored(engine, [row(first), row(second)])
    assert (found[("m", first)].prediction, found[("m", first)].label_ms) == ("a", None)
    assert (found[("m", second)].prediction, found[("m", second)].label_ms) == ("b", START + 60_000)
    with transaction(engine) as conn:
        assert labels.find_predictions(conn, [("other", first), ("m", "id-0")]) == {}


def test_each_model_is_pruned_at_its_own_cutoff_and_others_at_the_default(engine: Engine) -> None:
    """A short horizon removes only its models' old predictions, whatever older ones of a
    longer-horizon model wait; a model without a horizon of its own takes the default."""
    cutoffs = {"short": START + 5 * 60_000, "also short": START + 5 * 60_000}
    cutoffs["long"] = START + 60_000
    default = START + 3 * 60_000
    waiting = [
        row(f"{model}-{minute}", model=model, event_ms=START + minute * 60_000)
        for model in ("short", "also short", "long", "unlisted")
        for minute in range(10)
    ]
    with transaction(engine, write=True) as conn:
        labels.insert_predictions(conn, waiting)
        labels.mark_labelled(conn, [(("short", "short-1"), START + 600_000)])
        removed = labels.prune_predictions(conn, cutoffs, default)
        assert labels.prune_predictions(conn, cutoffs, default) == []  # nothing due now
    assert sorted((m, labelled) for m, _, _, _, labelled in removed) == [
        *[("also short", False)] * 5,
        ("long", False),
        *[("short", False)] * 4,
        ("short", True),  # the one labelled
        *[("unlisted", False)] * 3,
    ]
    kept = stored(engine, waiting)
    assert sorted(kept) == sorted(
        (r[0], r[1]) for r in waiting if r[9] >= cutoffs.get(r[0], default)
    )
