"""Mergeable per-window accumulators: oracles against numpy, merge laws, snapshots, keys."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from hashlib import blake2b
from itertools import pairwise
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from monitor.windows.accumulators import (
    OTHER,
    CategoricalAccumulator,
    NumericAccumulator,
    default_score_edges,
)
from monitor.windows.columns import categorical_column, numeric_column
from monitor.windows.hashing import event_keys, stable_hash
from monitor.windows.numeric import checked_edges
from monitor.windows.sample import bottom_k, merge_samples
from tests.unit.windows.strategies import categories, raw_values

MASK64 = (1 << 64) - 1
EDGES = (None, [-10.0, -1.0, 0.0, 0.5, 1.0, 10.0], [0.0, 1.0, 1.0, 2.0], [5.0, 5.0])

Event = tuple[object, int]  # (raw JSON value of one feature, event key)


# --- helpers -----------------------------------------------------------------------------


def keys_of(events: list[Event]) -> NDArray[np.uint64]:
    return np.array([key for _, key in events], dtype=np.uint64)


def numeric_of(events: list[Event], edges: Any = None, k: int = 2000) -> NumericAccumulator:
    """One accumulator fed ``events`` as a single batch through the column helper."""
    column = numeric_column([raw for raw, _ in events])
    return NumericAccumulator(edges, k).update_column(column, keys_of(events))


def categorical_of(
    values: Sequence[object], known: frozenset[str] | None = None, cap: int = 1000
) -> CategoricalAccumulator:
    return CategoricalAccumulator(known, cap).update_column(categorical_column(values))


def exact_part(acc: NumericAccumulator) -> dict[str, Any]:
    """Everything but the float moments, which merge to within rounding only."""
    return {k: v for k, v in acc.to_state().items() if k not in ("shift", "mean", "m2")}


def assert_same(a: NumericAccumulator, b: NumericAccumulator) -> None:
    """Exactly equal counts, range, histogram and sample; moments equal up to rounding."""
    assert exact_part(a) == exact_part(b)
    if a.valid:
        scale = max(abs(a.min), abs(a.max), 1e-300)
        tol = 1e-13 * (a.valid + 1)
        assert math.isclose(a.mean, b.mean, rel_tol=1e-9, abs_tol=tol * scale)
        assert math.isclose(a.variance, b.variance, rel_tol=1e-9, abs_tol=tol * scale * scale)


def split(items: list[Any], cuts: list[int]) -> list[list[Any]]:
    bounds = [0, *sorted(c % (len(items) + 1) for c in cuts), len(items)]
    return [items[lo:hi] for lo, hi in pairwise(bounds)]


def merged(parts: list[NumericAccumulator]) -> NumericAccumulator:
    total = parts[0].copy()
    for part in parts[1:]:
        total.merge(part)
    return total


# --- strategies --------------------------------------------------------------------------

event_key = st.one_of(st.integers(0, MASK64), st.integers(0, 5))  # small keys force ties
events_st = st.lists(st.tuples(raw_values, event_key), max_size=60)
cuts_st = st.lists(st.integers(0, 1000), max_size=4)
known_st = st.one_of(st.none(), st.just(frozenset({"a", "b", "true"})))


# --- numeric: oracles --------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0.0, 1e9])
def test_moments_match_numpy_on_every_prefix(offset: float) -> None:
    """Batched Welford/Chan moments equal numpy on every prefix, even far from zero."""
    rng = np.random.default_rng(7)
    stream = rng.normal(offset, 3.0, 4000)
    keys = rng.integers(0, MASK64, stream.size, dtype=np.uint64, endpoint=True)
    acc, seen = NumericAccumulator(), 0
    while seen < stream.size:
        size = int(rng.choice([0, 1, 1, 2, 7, 50, 333]))
        acc.update(stream[seen : seen + size], keys[seen : seen + size])
        seen = min(seen + size, stream.size)
        prefix = stream[:seen]
        if seen == 0:
            assert math.isnan(acc.mean) and math.isnan(acc.variance)
            continue
        assert acc.valid == acc.count == seen
        assert acc.mean == pytest.approx(prefix.mean(), rel=1e-12)
        assert acc.variance == pytest.approx(prefix.var(), rel=1e-12)
        assert acc.std == pytest.approx(prefix.std(), rel=1e-12)
        if seen > 1:
            assert acc.sample_variance == pytest.approx(prefix.var(ddof=1), rel=1e-12)
        assert (acc.min, acc.max) == (prefix.min(), prefix.max())


def test_merged_partitions_keep_precision_far_from_zero() -> None:
    """Partitions of an epoch-like feature (mean 1e9, std 3) merge to numpy's variance."""
    rng = np.random.default_rng(5)
    stream = rng.normal(1e9, 3.0, 6000)
    parts = [
        NumericAccumulator().update(chunk, np.zeros(chunk.size, np.uint64))
        for chunk in np.array_split(stream, 40)
    ]
    total = NumericAccumulator()
    for part in parts:
        total.merge(part)
    assert total.mean == pytest.approx(stream.mean(), rel=1e-15)
    assert total.variance == pytest.approx(stream.var(), rel=1e-12)


def test_signed_zeros_tie_the_same_way_in_any_order() -> None:
    """0.0 and -0.0 under one key keep byte-identical samples whatever arrives first."""
    a = numeric_of([(0.0, 1), (-0.0, 1), (2.0, 0)], k=2)
    b = numeric_of([(-0.0, 1), (2.0, 0), (0.0, 1)], k=2)
    assert a.to_state() == b.to_state()


@pytest.mark.parametrize("edges", [e for e in EDGES if e is not None] + [default_score_edges()])
def test_histogram_is_numpy_histogram_plus_under_and_overflow(edges: Any) -> None:
    """Inner bins follow numpy.histogram (last bin closed); outside values go to the ends."""
    rng = np.random.default_rng(3)
    edges = np.asarray(edges, dtype=np.float64)
    values = np.concatenate([rng.uniform(-15, 15, 3000), edges, edges, np.nextafter(edges, 99)])
    acc = NumericAccumulator(edges)
    for chunk in np.array_split(values, 7):
        acc.update(chunk, np.zeros(chunk.size, np.uint64))
    inner, _ = np.histogram(values, bins=edges)
    expected = [(values < edges[0]).sum(), *inner, (values > edges[-1]).sum()]
    assert acc.histogram is not None
    assert acc.histogram.tolist() == expected
    assert acc.out_of_range == expected[0] + expected[-1]


def test_no_reference_keeps_everything_but_the_histogram() -> None:
    """Without edges there is no histogram, but counts, moments and the sample accumulate."""
    acc = numeric_of([(1.0, 1), (None, 2), ("x", 3), (3.0, 4)])
    assert acc.histogram is None and acc.out_of_range is None
    assert (acc.count, acc.valid, acc.missing, acc.type_errors) == (4, 2, 1, 1)
    assert (acc.mean, acc.variance, acc.sample.tolist()) == (2.0, 1.0, [1.0, 3.0])


def test_empty_accumulator_reports_nan_not_zero() -> None:
    """An empty window has no mean, spread or range: NaN, so no one reads it as zeros."""
    acc = NumericAccumulator([0.0, 1.0])
    assert all(math.isnan(x) for x in (acc.mean, acc.variance, acc.std, acc.min, acc.max))
    assert math.isnan(acc.sample_variance)
    assert acc.histogram is not None and acc.histogram.tolist() == [0, 0, 0]


def test_sample_is_the_values_of_the_smallest_keys() -> None:
    """The sample holds exactly the k values with the smallest (key, value), sorted."""
    rng = np.random.default_rng(11)
    values = rng.normal(size=5000)
    keys = rng.integers(0, 1000, values.size, dtype=np.uint64)  # many ties
    acc = NumericAccumulator(sample_size=100)
    for lo in range(0, values.size, 777):
        acc.update(values[lo : lo + 777], keys[lo : lo + 777])
    order = np.lexsort((values, keys))[:100]
    assert acc.sample.tolist() == values[order].tolist()
    assert acc.sample_keys.tolist() == keys[order].tolist()


def test_read_only_results_cannot_be_written() -> None:
    """Callers cannot corrupt the state through the arrays the properties return."""
    acc = numeric_of([(1.0, 1)], edges=[0.0, 2.0])
    assert acc.histogram is not None
    for array in (acc.histogram, acc.sample, acc.sample_keys, acc.edges):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0  # type: ignore[index]


def test_update_rejects_non_finite_values_and_misaligned_keys() -> None:
    """NaN/inf must be counted by the caller, not silently poison the moments."""
    acc = NumericAccumulator()
    with pytest.raises(ValueError, match="finite"):
        acc.update(np.array([1.0, math.nan]), np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match="same length"):
        acc.update(np.array([1.0]), np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match=">= 0"):
        acc.update(np.array([1.0]), np.zeros(1, np.uint64), missing=-1)


@pytest.mark.parametrize(
    ("edges", "sample_size"),
    [([float("nan"), 1.0], 10), ([1.0, 0.0], 10), ([1.0], 10), (None, -1), (None, True)],
)
def test_constructor_rejects_bad_arguments(edges: Any, sample_size: Any) -> None:
    """Edges must be >= 2 finite non-decreasing numbers; the sample size an int >= 0."""
    with pytest.raises(ValueError):
        NumericAccumulator(edges, sample_size)


@pytest.mark.parametrize(
    "other",
    [NumericAccumulator([0.0, 2.0]), NumericAccumulator([0.0, 1.0], 5), NumericAccumulator()],
)
def test_merge_refuses_different_edges_or_sample_sizes(other: NumericAccumulator) -> None:
    """Histograms over different bins, or samples of different k, cannot be added."""
    with pytest.raises(ValueError, match="different"):
        NumericAccumulator([0.0, 1.0]).merge(other)


def test_non_finite_moments_survive_a_json_round_trip() -> None:
    """A variance that overflows to inf is stored as a string JSON can carry, then restored."""
    acc = numeric_of([(1e300, 1), (-1e300, 2)])
    assert math.isinf(acc.variance)
    restored = NumericAccumulator.from_state(orjson.loads(orjson.dumps(acc.to_state())))
    assert restored == acc and math.isinf(restored.variance)


def test_from_state_refuses_other_kinds() -> None:
    """A categorical or future-version state is not silently read as a numeric one."""
    with pytest.raises(ValueError, match="numeric"):
        NumericAccumulator.from_state(CategoricalAccumulator().to_state())
    state = NumericAccumulator().to_state() | {"version": 99}
    with pytest.raises(ValueError, match="version"):
        NumericAccumulator.from_state(state)


# --- numeric: merge laws and snapshots (hypothesis) --------------------------------------


@settings(max_examples=300, deadline=None)
@given(events_st, cuts_st, st.sampled_from(EDGES), st.integers(0, 6))
def test_merge_of_parts_equals_one_accumulator_over_all(
    events: list[Event], cuts: list[int], edges: Any, k: int
) -> None:
    """merge over any split (empty parts, NaN, inf, wrong types) equals one pass over all."""
    whole = numeric_of(events, edges, k)
    parts = [numeric_of(part, edges, k) for part in split(events, cuts)]
    assert_same(merged(parts), whole)


@settings(max_examples=200, deadline=None)
@given(events_st, cuts_st, st.sampled_from(EDGES), st.integers(0, 6))
def test_merge_is_associative_and_commutative(
    events: list[Event], cuts: list[int], edges: Any, k: int
) -> None:
    """Roll-ups may merge in any grouping or order and reach the same window."""
    a, b, c = (numeric_of(part, edges, k) for part in split(events, [*cuts, 0, 0][:2]))
    left = a.copy().merge(b).merge(c)
    right = a.copy().merge(b.copy().merge(c))
    reversed_ = c.copy().merge(b).merge(a)
    assert_same(left, right)
    assert_same(left, reversed_)


@settings(max_examples=200, deadline=None)
@given(events_st, st.randoms(use_true_random=False), st.integers(0, 6))
def test_sample_is_the_same_for_any_order_and_batching(
    events: list[Event], rnd: Any, k: int
) -> None:
    """Replays, restarts and rebalances that reorder or rebatch events keep the same sample."""
    reference = numeric_of(events, None, k)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    acc, lo = NumericAccumulator(None, k), 0
    while lo < len(shuffled):
        hi = lo + rnd.randint(0, 5)
        acc.update_column(numeric_column([r for r, _ in shuffled[lo:hi]]), keys_of(shuffled[lo:hi]))
        lo = hi
    assert acc.sample.tolist() == reference.sample.tolist()
    assert acc.sample_keys.tolist() == reference.sample_keys.tolist()
    assert exact_part(acc) == exact_part(reference)


@settings(max_examples=200, deadline=None)
@given(events_st, st.sampled_from(EDGES), st.integers(0, 6))
def test_state_round_trips_through_json_and_orjson(events: list[Event], edges: Any, k: int) -> None:
    """What the store writes back is exactly the accumulator that was checkpointed."""
    acc = numeric_of(events, edges, k)
    state = acc.to_state()
    assert NumericAccumulator.from_state(state) == acc
    assert NumericAccumulator.from_state(json.loads(json.dumps(state, allow_nan=False))) == acc
    restored = NumericAccumulator.from_state(orjson.loads(orjson.dumps(state)))
    assert restored == acc
    assert restored.to_state() == state
    if acc.valid:
        assert (restored.mean, restored.variance) == (acc.mean, acc.variance)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(event_key, st.sampled_from([0.0, 1.0, -2.5, 7.0])), max_size=30),
    st.lists(st.tuples(event_key, st.sampled_from([0.0, 1.0, -2.5, 7.0])), max_size=30),
    st.integers(0, 40),
    st.booleans(),
)
def test_merged_samples_are_bottom_k_of_both(
    a: list[tuple[int, float]], b: list[tuple[int, float]], k: int, presorted: bool
) -> None:
    """The stable-sort merge gives bottom_k's bytes: sorted parts as a merge gets them, or not
    (a state written by hand), with ties under one key ordered by value."""

    def arrays(pairs: list[tuple[int, float]]) -> tuple[NDArray[np.uint64], NDArray[np.float64]]:
        keys = np.array([key for key, _ in pairs], dtype=np.uint64)
        values = np.array([value for _, value in pairs], dtype=np.float64)
        return bottom_k(keys, values, len(pairs)) if presorted else (keys, values)

    (ka, va), (kb, vb) = arrays(a), arrays(b)
    keys, values = merge_samples(ka, va, kb, vb, k)
    want_keys, want_values = bottom_k(np.concatenate([ka, kb]), np.concatenate([va, vb]), k)
    assert keys.tobytes() == want_keys.tobytes()
    assert values.tobytes() == want_values.tobytes()


def test_equal_edges_are_validated_once_and_shared() -> None:
    """Accumulators over one reference share its edges (merges compare them by identity);
    a signed zero keeps its sign, though 0.0 == -0.0."""
    a = NumericAccumulator([0.0, 1.0, 2.0])
    b = NumericAccumulator.from_state(NumericAccumulator(np.array([0.0, 1.0, 2.0])).to_state())
    assert a.edges is b.edges
    assert a.edges is not None and not a.edges.flags.writeable
    negative = checked_edges([-0.0, 1.0])
    positive = checked_edges([0.0, 1.0])
    assert negative is not None and positive is not None
    assert math.copysign(1.0, negative[0]) == -1.0
    assert math.copysign(1.0, positive[0]) == 1.0
    with pytest.raises(ValueError, match="non-decreasing"):
        checked_edges([2.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        checked_edges([[0.0, 1.0]])


def test_a_copy_is_independent_of_its_original() -> None:
    """Copies share arrays (never written in place): merging into one leaves the other."""
    acc = numeric_of([(1.0, 5), (2.0, 9), ("x", 3)], edges=[0.0, 1.5, 3.0], k=2)
    before = acc.to_state()
    copy = acc.copy()
    assert copy == acc
    copy.merge(numeric_of([(0.5, 1), (2.5, 2)], edges=[0.0, 1.5, 3.0], k=2))
    assert acc.to_state() == before and copy != acc
    cats = categorical_of(["b", "a", "b", None], frozenset({"a"}), cap=1)
    cats_before = cats.to_state()
    cats_copy = cats.copy()
    assert cats_copy == cats and list(cats_copy.counts) == sorted(cats.counts)
    cats_copy.merge(categorical_of(["c"], frozenset({"a"}), cap=1))
    assert cats.to_state() == cats_before and cats_copy != cats


# --- categorical -------------------------------------------------------------------------


def test_categorical_counts_unseen_and_quality() -> None:
    """Per-category counts, unseen categories against the reference, missing and type errors."""
    values: list[object] = ["a", "b", "a", "zz", None, {}, True, 7, 7.0, 1.5]
    acc = categorical_of(values, known=frozenset({"a", "b"}))
    assert acc.counts == {"a": 2, "b": 1, "zz": 1, "true": 1, "7": 2, "1.5": 1}
    assert (acc.count, acc.valid, acc.missing, acc.type_errors) == (10, 8, 1, 1)
    assert acc.unseen == 5


def test_categories_beyond_the_cap_go_to_other_by_hash_not_arrival() -> None:
    """Known categories stay exact; of the rest, those with the smallest stable hash are kept."""
    values = ["a"] * 5 + [f"c{i}" for i in range(50)] + ["c7"] * 9
    acc = categorical_of(values, known=frozenset({"a", "gone"}), cap=10)
    kept = sorted({f"c{i}" for i in range(50)}, key=lambda c: (stable_hash(c), c))[:10]
    expected = {c: 10 if c == "c7" else 1 for c in kept} | {"a": 5}
    expected[OTHER] = len(values) - sum(expected.values())
    assert acc.counts == expected
    assert acc.unseen == 59 and acc.valid == len(values)


@settings(max_examples=300, deadline=None)
@given(st.lists(categories, max_size=60), cuts_st, known_st, st.integers(0, 4))
def test_categorical_merge_of_parts_equals_one_accumulator_over_all(
    values: list[object], cuts: list[int], known: frozenset[str] | None, cap: int
) -> None:
    """Category counts, OTHER, unseen and quality counts merge exactly over any split."""
    whole = categorical_of(values, known, cap)
    parts = [categorical_of(part, known, cap) for part in split(values, cuts)]
    total = parts[0]
    for part in parts[1:]:
        total.merge(part)
    assert total == whole
    assert sum(whole.counts.values()) == whole.valid


@settings(max_examples=200, deadline=None)
@given(st.lists(categories, max_size=60), cuts_st, known_st, st.integers(0, 4))
def test_categorical_merge_is_associative_and_commutative(
    values: list[object], cuts: list[int], known: frozenset[str] | None, cap: int
) -> None:
    """Roll-ups of category counts may merge in any grouping or order."""
    a, b, c = (categorical_of(part, known, cap) for part in split(values, [*cuts, 0, 0][:2]))
    left = a.copy().merge(b).merge(c)
    assert left == a.copy().merge(b.copy().merge(c))
    assert left == c.copy().merge(b).merge(a)


@settings(max_examples=200, deadline=None)
@given(st.lists(categories, max_size=60), known_st, st.integers(0, 4))
def test_categorical_state_round_trips_through_orjson(
    values: list[object], known: frozenset[str] | None, cap: int
) -> None:
    """The checkpointed category counts come back exactly."""
    acc = categorical_of(values, known, cap)
    restored = CategoricalAccumulator.from_state(orjson.loads(orjson.dumps(acc.to_state())))
    assert restored == acc
    assert restored.counts == acc.counts


def test_categorical_merge_refuses_different_references() -> None:
    """Unseen counts against different reference categories cannot be added."""
    with pytest.raises(ValueError, match="different"):
        CategoricalAccumulator({"a"}).merge(CategoricalAccumulator({"b"}))
    with pytest.raises(ValueError, match="different"):
        CategoricalAccumulator(max_categories=3).merge(CategoricalAccumulator())
    with pytest.raises(ValueError, match="categorical"):
        CategoricalAccumulator.from_state(NumericAccumulator().to_state())


# --- event keys --------------------------------------------------------------------------


def splitmix64_reference(x: int) -> int:
    """Plain-Python splitmix64, the oracle for the vectorised one."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def test_event_keys_are_stable_across_processes_and_versions() -> None:
    """Keys are fixed functions of id or coordinates, so restarts pick the same sample."""
    keys = event_keys(["req-81f2", None, "ü"], [0, 3, 9], [0, 5, 1]).tolist()
    assert keys[0] == 14090391718743781189  # golden: changing it reshuffles stored samples
    assert keys[0] == int.from_bytes(blake2b(b"req-81f2", digest_size=8).digest(), "little")
    assert keys[1] == splitmix64_reference(3 << 40 | 5) == 4985803025339952548
    assert keys[2] == stable_hash("ü")


def test_event_keys_use_the_id_wherever_the_event_lands() -> None:
    """A retried prediction on another partition gets the key of the original."""
    keys = event_keys(["a", "a", None, None], [0, 1, 0, 1], [10, 99, 10, 10])
    assert keys[0] == keys[1]
    assert len({*keys.tolist()}) == 3
    assert event_keys([], [], []).dtype == np.uint64
    with pytest.raises(ValueError, match="same length"):
        event_keys(["a"], [0, 1], [0])


def test_category_counter_matches_a_plain_counter_without_a_cap() -> None:
    """Under the cap the accumulator is a Counter of the stringified valid values."""
    values: list[object] = ["x", 1, True, "x", None, 1.0, {}]
    acc = categorical_of(values)
    assert acc.counts == Counter({"x": 2, "1": 2, "true": 1})
