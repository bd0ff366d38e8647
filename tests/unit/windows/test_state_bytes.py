"""Window states as bytes: the packed layout, the JSON one released versions stored, merges.

States stored by released versions (JSON) sit in ``window_partials``: they must keep decoding
to exactly what their writer held. ``window_state_v1.json`` is such a state, written by the
JSON ``to_bytes``, of the events ``_golden_state`` rebuilds.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.events import PredictionEvent
from monitor.windows.accumulators import CategoricalAccumulator, NumericAccumulator
from monitor.windows.hashing import event_keys
from monitor.windows.schema import FeatureSpec, WindowSchema
from monitor.windows.state import WindowState
from tests.unit.windows.strategies import categories, raw_values

GOLDEN = Path(__file__).with_name("window_state_v1.json")


# --- helpers -----------------------------------------------------------------------------


def _bits(x: float) -> str:
    return struct.pack("<d", x).hex()


def _array(a: Any) -> Any:
    return None if a is None else (a.dtype.str, a.shape, a.tobytes().hex())


def _fields(acc: Any) -> tuple[Any, ...]:
    """Every field of an accumulator, floats and arrays by their bits; categories sorted."""
    if isinstance(acc, NumericAccumulator):
        return (
            _array(acc.edges),
            acc.sample_size,
            acc.valid,
            acc.missing,
            acc.type_errors,
            *(_bits(x) for x in (acc._shift, acc._mean, acc._m2, acc._min, acc._max)),
            _array(acc._hist),
            _array(acc._keys),
            _array(acc._sample),
        )
    assert isinstance(acc, CategoricalAccumulator)
    known = None if acc.known is None else sorted(acc.known)
    counts = sorted(acc._counts.items())
    return (known, acc.max_categories, counts, acc.other, acc.missing, acc.type_errors, acc.unseen)


def fields(state: WindowState) -> tuple[Any, ...]:
    slices = {
        name: (
            piece.events,
            {k: (type(a).__name__, _fields(a)) for k, a in piece.accumulators.items()},
        )
        for name, piece in state.slices.items()
    }
    return state.revision, state.events, state.score_changes, state.kinds, slices


def released_bytes(state: WindowState) -> bytes:
    """The bytes the released (JSON) ``to_bytes`` wrote."""
    return orjson.dumps(
        {
            "revision": state.revision,
            "events": state.events,
            "score_changes": state.score_changes,
            "kinds": state.kinds,
            "slices": {
                name: {
                    "events": piece.events,
                    "accumulators": {k: a.to_state() for k, a in piece.accumulators.items()},
                }
                for name, piece in state.slices.items()
            },
        }
    )


def build(
    rows: list[tuple[dict[str, Any], str | None]],
    schema: WindowSchema,
    partition: int = 0,
    ids: list[str] | None = None,
    batch: int = 7,
) -> WindowState:
    events = [
        PredictionEvent(
            "m",
            "1",
            partition,
            ids[i] if ids else f"id-{partition}-{i}",
            features,
            i % 2,
            0.125 * (i % 9),
            None,
            {} if segment is None else {"region": segment},
            0,
            i,
        )
        for i, (features, segment) in enumerate(rows)
    ]
    state = WindowState(schema.revision, score_changes=partition)
    for lo in range(0, len(events), batch):
        part = events[lo : lo + batch]
        keys = event_keys([e.id for e in part], [partition] * len(part), [e.offset for e in part])
        state.update(schema, part, keys, ["region"])
    return state


def merged(states: list[WindowState]) -> WindowState:
    """As ``closing._merge``: the largest share takes in the others."""
    states = sorted(states, key=lambda s: s.events, reverse=True)
    for other in states[1:]:
        states[0].merge(other)
    return states[0]


REFERENCE = WindowSchema(
    3,
    {
        "x": FeatureSpec("numeric", np.array([-1.0, 0.0, 2.0])),
        "c": FeatureSpec("categorical", known=frozenset({"a", "b"})),
    },
)
SCHEMAS = (WindowSchema(None), REFERENCE)


def _golden_state() -> WindowState:
    rows: list[tuple[dict[str, Any], str | None]] = [
        ({"x": 1.5, "b": True, "c": "a"}, "eu"),
        ({"x": -0.0, "b": False, "c": "__other__"}, "us"),
        ({"x": None, "b": True, "c": "z"}, "eu"),
        ({"x": 1e300, "b": None, "c": 3}, None),
        ({"x": -1e300, "b": True, "c": "a"}, "us"),
        ({"x": "?", "c": None}, "asia"),  # a slice whose x has no valid value: no sample
    ]
    return build(rows, REFERENCE, partition=1, batch=3)


# --- the released JSON layout --------------------------------------------------------------


def test_a_state_stored_by_the_released_version_decodes_to_what_it_held() -> None:
    """Segments, booleans, the OTHER category, an empty-sample slice, non-finite moments."""
    stored = GOLDEN.read_bytes().strip()
    assert stored[:1] == b"{"
    decoded = WindowState.from_bytes(stored)
    assert fields(decoded) == fields(_golden_state())
    x = decoded.slices[""].accumulators["x"]
    assert isinstance(x, NumericAccumulator) and math.isinf(x.variance)
    assert released_bytes(decoded) == stored  # nothing lost or reordered either
    assert fields(WindowState.from_bytes(decoded.to_bytes())) == fields(decoded)


def test_the_packed_layout_is_told_apart_by_its_first_byte() -> None:
    state = _golden_state()
    packed = state.to_bytes()
    assert packed[:1] == b"\x00"
    for data in (packed, bytearray(packed), memoryview(packed)):
        assert fields(WindowState.from_bytes(data)) == fields(state)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"\x00\x09" + b[2:],  # a layout this version does not know
        lambda b: b[:4],  # cut inside the header's length
        lambda b: b[:40],  # cut inside the header
        lambda b: b[:-8],  # cut inside the arrays
    ],
)
def test_damaged_packed_states_are_refused(damage: Any) -> None:
    with pytest.raises(ValueError):
        WindowState.from_bytes(damage(_golden_state().to_bytes()))


# --- both layouts, any events --------------------------------------------------------------

row_st = st.tuples(
    st.fixed_dictionaries(
        {"x": raw_values, "c": categories},
        optional={"b": st.booleans(), "y": raw_values},
    ),
    st.sampled_from([None, "eu", "us"]),
)
rows_st = st.lists(row_st, max_size=40)


@settings(max_examples=150, deadline=None)
@given(rows_st, st.sampled_from(SCHEMAS), st.integers(1, 9))
def test_both_layouts_decode_to_the_state_written(
    rows: list[tuple[dict[str, Any], str | None]], schema: WindowSchema, batch: int
) -> None:
    """Packed or JSON (as the released version wrote it), every field comes back bit for bit."""
    state = build(rows, schema, batch=batch)
    expected = fields(state)
    assert fields(WindowState.from_bytes(state.to_bytes())) == expected
    from_json = WindowState.from_bytes(released_bytes(state))
    assert fields(from_json) == expected
    assert fields(WindowState.from_bytes(from_json.to_bytes())) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(rows_st, min_size=1, max_size=4), st.sampled_from(SCHEMAS), st.booleans())
def test_merges_of_decoded_shares_do_not_depend_on_the_layout(
    shares: list[list[tuple[dict[str, Any], str | None]]], schema: WindowSchema, dup_ids: bool
) -> None:
    """Closing a window from packed shares, JSON shares or the shares in memory (copies, to
    leave them as they were) gives the same state; duplicate ids tie in the samples."""
    states = [
        build(rows, schema, p, [f"dup-{i % 3}" for i in range(len(rows))] if dup_ids else None)
        for p, rows in enumerate(shares)
    ]
    before = [fields(s) for s in states]
    in_memory = merged([WindowState(s.revision).merge(s) for s in states])
    assert [fields(s) for s in states] == before
    packed = merged([WindowState.from_bytes(s.to_bytes()) for s in states])
    released = merged([WindowState.from_bytes(released_bytes(s)) for s in states])
    assert fields(packed) == fields(released) == fields(in_memory)


def test_shares_with_other_layouts_keep_the_larger_one() -> None:
    """Edges rebuilt while the window was open, a kind inferred apart: the share with more
    valid values is kept, as a copy, whichever layout the shares were stored in."""
    other = WindowSchema(4, {"x": FeatureSpec("numeric", np.array([0.0, 1.5, 2.0]))})
    small = build([({"x": 1.0, "k": "s"}, None)] * 3, REFERENCE, 0)
    large = build([({"x": 0.5, "k": 2.0}, "eu")] * 5, other, 1)
    for encode in (WindowState.to_bytes, released_bytes):
        shares = [WindowState.from_bytes(encode(s)) for s in (small, large)]
        result = merged(shares)
        accumulators = result.slices[""].accumulators
        assert _fields(accumulators["x"]) == _fields(large.slices[""].accumulators["x"])
        assert isinstance(accumulators["k"], NumericAccumulator)
        assert set(result.slices) == {"", "region=eu"}
