"""A window's numeric features updated together: the states feature-by-feature updates give.

``NumericAccumulator.update_rows`` takes a batch of every numeric feature as one matrix;
``WindowState.update`` sends it the columns that hold only finite numbers and reads the others
one by one. Either way each accumulator must end exactly as if it had been fed its column
alone: same counts, moments to the bit, histogram, and the same bottom-k sample.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.events import PredictionEvent
from monitor.windows.accumulators import NumericAccumulator
from monitor.windows.columns import numeric_column
from monitor.windows.hashing import event_keys
from monitor.windows.schema import FeatureSpec, WindowSchema
from monitor.windows.state import WHOLE_MODEL, WindowState, new_accumulator


def _bits(acc: NumericAccumulator) -> tuple[Any, ...]:
    """Every field of an accumulator, floats by their bits and arrays by their bytes."""
    state = acc.to_state()
    floats = [acc.mean, acc.variance, acc.min, acc.max]
    return (
        state,
        [struct.pack("<d", x) for x in floats],
        acc.sample_keys.tobytes(),
        acc.sample.tobytes(),
        None if acc.histogram is None else acc.histogram.tobytes(),
    )


@st.composite
def _batches(draw: st.DrawFn) -> tuple[list[Any], int, list[Any]]:
    """Edges per feature (some none), a sample size, and batches of (values, keys, alone)."""
    features = draw(st.integers(1, 6))
    k = draw(st.sampled_from([0, 1, 3, 20, 2000]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    edges = [
        None if rng.random() < 0.3 else np.sort(np.round(rng.normal(0, 1, rng.integers(2, 12)), 1))
        for _ in range(features)
    ]
    batches = []
    for _ in range(draw(st.integers(1, 5))):
        n = int(rng.integers(1, 80))
        values = rng.normal(0, 1.5, (features, n))
        if rng.random() < 0.4:  # ties and values on the edges
            values = np.round(values, 1)
        if rng.random() < 0.2:
            values[:, 0] = -0.0
        span = 40 if rng.random() < 0.3 else 2**64 - 1  # repeated keys: the value decides
        keys = rng.integers(0, span, n, dtype=np.uint64)
        alone = int(rng.integers(0, features)) if rng.random() < 0.3 else None
        batches.append((values, keys, alone))
    return edges, k, batches


@settings(max_examples=200, deadline=None)
@given(_batches())
def test_rows_update_as_each_feature_alone(case: tuple[list[Any], int, list[Any]]) -> None:
    """Batch after batch, each row's accumulator equals one fed its row by ``update``, also
    after a feature took a batch of its own (the others missing there: their samples'
    keys part ways, and the rows then take their samples one by one)."""
    edges, k, batches = case
    apart = [NumericAccumulator(e, k) for e in edges]
    together = [NumericAccumulator(e, k) for e in edges]
    for values, keys, alone in batches:
        if alone is not None:
            extra_keys = np.arange(3, dtype=np.uint64) * 7
            for accs in (apart, together):
                accs[alone].update(np.array([0.5, -1.0, 2.0]), extra_keys, missing=1)
        for acc, row in zip(apart, values, strict=True):
            acc.update(row.copy(), keys)
        NumericAccumulator.update_rows(together, values, keys)
        assert [_bits(a) for a in together] == [_bits(a) for a in apart]


def _events(rows: list[dict[str, Any]]) -> list[PredictionEvent]:
    return [
        PredictionEvent("m", "1", 0, f"id-{i}", f, 1, 0.25 * (i % 4), None, {}, 0, i)
        for i, f in enumerate(rows)
    ]


ODD_VALUES = [None, float("nan"), float("inf"), True, "3", 2**70, {"a": 1}]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 60),
    st.lists(
        st.tuples(st.integers(0, 59), st.sampled_from(["x", "y"]), st.sampled_from(ODD_VALUES))
    ),
    st.integers(0, 2**32 - 1),
)
def test_window_accumulators_equal_column_by_column(
    n: int, odd: list[tuple[int, str, Any]], seed: int
) -> None:
    """Columns of finite numbers go through the block, the others (a null, NaN, ±inf, a bool,
    a string, an integer beyond float64 somewhere) alone: every accumulator of the window is
    the one its own column would give."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = [
        {"x": float(rng.normal()), "y": int(rng.integers(-5, 5)), "z": float(rng.normal(3, 2))}
        for _ in range(n)
    ]
    for i, name, value in odd:
        if i < n:
            rows[i][name] = value
    edges = np.linspace(-3.0, 3.0, 11)
    schema = WindowSchema(1, {name: FeatureSpec("numeric", edges) for name in "xyz"})
    events = _events(rows)
    keys = event_keys([e.id for e in events], [0] * n, [e.offset for e in events])
    state = WindowState(1).update(schema, events, keys, [])
    accumulators = state.slices[WHOLE_MODEL].accumulators
    for name in "xyz":
        expected = new_accumulator(schema.features[name])
        assert isinstance(expected, NumericAccumulator)
        expected.update_column(numeric_column([r.get(name) for r in rows]), keys)
        got = accumulators[name]
        assert isinstance(got, NumericAccumulator)
        assert _bits(got) == _bits(expected), name
    score = accumulators["@score"]
    assert isinstance(score, NumericAccumulator)
    assert score.valid == n


def test_shared_sample_keys_are_stored_once() -> None:
    """Features updated together share their sample's keys, and the stored state holds them
    once: 8 bytes an event less per extra numeric feature, and the same state read back."""
    n = 100
    rows = [{"x": float(i), "y": float(-i), "z": i * 0.5} for i in range(n)]
    events = _events(rows)
    keys = event_keys([e.id for e in events], [0] * n, [e.offset for e in events])
    schema = WindowSchema(None, {name: FeatureSpec("numeric") for name in "xyz"})
    together = WindowState(None).update(schema, events, keys, [])
    apart = WindowState(None).update(schema, events, keys, [])
    for acc in apart.slices[WHOLE_MODEL].accumulators.values():
        if isinstance(acc, NumericAccumulator):  # keys of its own, equal to the others'
            acc._keys = acc._keys.copy()
    packed = together.to_bytes()
    # x, y, z and @score share one keys array: three fewer copies of n keys
    assert len(apart.to_bytes()) - len(packed) == 3 * n * 8
    restored = WindowState.from_bytes(packed).slices[WHOLE_MODEL].accumulators
    for name, acc in together.slices[WHOLE_MODEL].accumulators.items():
        assert restored[name].to_state() == acc.to_state()


@settings(max_examples=150, deadline=None)
@given(_batches(), _batches())
def test_rows_merge_as_each_pair_alone(
    first: tuple[list[Any], int, list[Any]], second: tuple[list[Any], int, list[Any]]
) -> None:
    """Two shares of a window, each updated together (so each side shares its sample keys):
    merged all at once, every feature equals the pairwise ``merge`` of its own two shares."""
    edges, k, batches = first
    shares = []
    for case in (batches, second[2]):
        accs = [NumericAccumulator(e, k) for e in edges]
        for values, keys, _ in case:
            rows = np.resize(values, (len(edges), values.shape[1]))  # as many rows as features
            NumericAccumulator.update_rows(accs, rows, keys)
        shares.append(accs)
    pairwise = [a.copy().merge(b) for a, b in zip(*shares, strict=True)]
    NumericAccumulator.merge_rows(shares[0], shares[1])
    assert [_bits(a) for a in shares[0]] == [_bits(a) for a in pairwise]
