"""One partition's share of one window: accumulators per slice (whole model and segments).

A ``WindowState`` is what a partition contributed to a (model, version, window): events,
score change points, and per slice ('' for the whole model, ``key=value`` for each configured
segment key) the accumulators of every feature, the score and the prediction. It merges with
the states of the other partitions when the window closes, and round-trips through bytes so
the checkpoint can store it beside the offsets.

The bytes are packed: ``b"\\x00\\x02"``, the header's length (4 bytes, little-endian), the
header (the JSON document the JSON layout was, but each numeric accumulator's edges, histogram
and sample as ``[offset, count]`` into the arrays; see ``snapshot.ArrayWriter``), zero padding
to a multiple of 8 bytes, then the arrays, raw little-endian 8-byte items. Reading them costs
a header parse and a view per array, where the JSON layout 0.1.0 wrote (still read: stored
states outlive upgrades; its first byte is ``{``) costs a base64 decoding per array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, Self

import numpy as np
import orjson
from numpy.typing import NDArray

from monitor.ingest.events import PredictionEvent
from monitor.windows.accumulators import CategoricalAccumulator, NumericAccumulator
from monitor.windows.columns import (
    CategoricalColumn,
    NumericColumn,
    boolean_column,
    categorical_column,
    infer_type,
    numeric_column,
)
from monitor.windows.schema import FeatureSpec, Kind, WindowSchema
from monitor.windows.snapshot import ArrayReader, ArrayWriter

Accumulator = NumericAccumulator | CategoricalAccumulator
Column = NumericColumn | CategoricalColumn
WHOLE_MODEL = ""  # the slice key of the unsegmented model
SCORE, PREDICTION = "@score", "@prediction"


def new_accumulator(spec: FeatureSpec) -> Accumulator:
    if spec.kind == "numeric":
        return NumericAccumulator(spec.edges)
    return CategoricalAccumulator(spec.known)


def read_column(kind: Kind, raw: Sequence[object]) -> Column:
    if kind == "numeric":
        return numeric_column(raw)
    return boolean_column(raw) if kind == "boolean" else categorical_column(raw)


def _update(acc: Accumulator, column: Column, keys: NDArray[np.uint64]) -> None:
    if isinstance(acc, NumericAccumulator) and isinstance(column, NumericColumn):
        acc.update_column(column, keys)
    elif isinstance(acc, CategoricalAccumulator) and isinstance(column, CategoricalColumn):
        acc.update_column(column)
    else:
        raise TypeError(f"{type(column).__name__} does not fit {type(acc).__name__}")


def _feature_columns(events: Sequence[PredictionEvent]) -> dict[str, Sequence[object]]:
    """Each feature's raw values across ``events`` (None where an event lacks it).

    Serving systems send the same features event after event; then one ``itemgetter`` per
    event takes its values and ``zip`` transposes them in C, instead of a dictionary lookup
    per event and feature. A batch whose events differ in their features (one lacks a key,
    or has one more) is read feature by feature.
    """
    if not events:
        return {}
    features = [e.features for e in events]
    names = list(features[0])
    if len(names) > 1:
        get = itemgetter(*names)
        try:
            rows = list(map(get, features))
        except KeyError:
            rows = None
        if rows is not None and set(map(len, features)) == {len(names)}:
            return dict(zip(names, zip(*rows, strict=True), strict=True))
    every = set().union(*(f.keys() for f in features))
    return {name: [f.get(name) for f in features] for name in every}


@dataclass(frozen=True, slots=True)
class NumericBlock:
    """A batch's numeric columns as one F x n matrix, when every value is a finite number.

    The usual batch: then the whole-model accumulators take the matrix in one
    `NumericAccumulator.update_rows`, and each column is a row of it. A column with a missing
    or a wrong value is left out, to be read on its own by `numeric_column`.
    """

    rows: dict[str, int]  # feature -> its row of ``values``
    values: NDArray[np.float64]
    valid: NDArray[np.bool_]  # every row: shared by the columns, which nobody writes
    wrong_type: NDArray[np.bool_]

    @classmethod
    def of(cls, raws: dict[str, Sequence[object]]) -> NumericBlock:
        plain = {n: raw for n, raw in raws.items() if set(map(type, raw)) <= _PLAIN_NUMBERS}
        n = len(next(iter(raws.values()), ()))
        names = list(plain)
        try:  # fromiter: half of np.array's time on a list of tuples
            values = np.fromiter(
                chain.from_iterable(plain.values()), np.float64, count=len(names) * n
            ).reshape(len(names), n)
        except OverflowError:  # an int beyond float64: a type error, found column by column
            names, values = [], np.zeros((0, n))
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():  # ±inf: type errors, found column by column
            kept = np.flatnonzero(finite).tolist()
            names, values = [names[i] for i in kept], values[kept]
        rows = {name: row for row, name in enumerate(names)}
        return cls(rows, values, np.ones(n, np.bool_), np.zeros(n, np.bool_))

    def column(self, row: int) -> NumericColumn:
        """One feature's column, as `numeric_column` reads it (every row valid)."""
        return NumericColumn(self.values[row], self.valid, self.wrong_type)


_PLAIN_NUMBERS = frozenset({float, int})  # what numpy reads as numbers, and only those


def _from_state(state: dict[str, Any]) -> Accumulator:
    if state["kind"] == "numeric":
        return NumericAccumulator.from_state(state)
    return CategoricalAccumulator.from_state(state)


@dataclass(slots=True)
class SliceState:
    """The accumulators of one slice; ``@score`` and ``@prediction`` sit beside the features."""

    events: int = 0
    accumulators: dict[str, Accumulator] = field(default_factory=dict)

    def copy(self) -> SliceState:
        return SliceState(self.events, {n: acc.copy() for n, acc in self.accumulators.items()})

    def merge(self, other: SliceState) -> Self:
        self.events += other.events
        numeric: list[tuple[NumericAccumulator, NumericAccumulator]] = []
        for name, acc in other.accumulators.items():
            mine = self.accumulators.get(name)
            if mine is None:
                self.accumulators[name] = acc.copy()
            elif _mergeable_numeric(mine, acc):
                numeric.append((mine, acc))  # type: ignore[arg-type]  # checked just now
            else:
                _merge_or_keep(self.accumulators, name, mine, acc)
        if numeric:
            NumericAccumulator.merge_rows([a for a, _ in numeric], [b for _, b in numeric])
        return self


def _mergeable_numeric(mine: Accumulator, theirs: Accumulator) -> bool:
    """Two numeric accumulators of one layout: merged with the slice's others at once."""
    return (
        type(mine) is NumericAccumulator
        and type(theirs) is NumericAccumulator
        and mine.sample_size == theirs.sample_size
        and mine.edges is theirs.edges  # the same reference: one cached array (or None)
    )


def _merge_or_keep(
    accumulators: dict[str, Accumulator], name: str, mine: Accumulator, acc: Accumulator
) -> None:
    try:
        mine.merge(acc)  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        # Layouts differ: kinds inferred apart without a reference, or a reference
        # rebuilt while the window was open. Keep the share with more valid values.
        if acc.valid > mine.valid:
            accumulators[name] = acc.copy()


@dataclass(slots=True)
class WindowState:
    """A partition's share of one window, as stored in ``window_partials``."""

    revision: int | None
    events: int = 0
    score_changes: int = 0
    kinds: dict[str, Kind] = field(default_factory=dict)
    slices: dict[str, SliceState] = field(default_factory=dict)

    def update(
        self,
        schema: WindowSchema,
        events: Sequence[PredictionEvent],
        keys: NDArray[np.uint64],
        segment_keys: Sequence[str],
    ) -> Self:
        """Add one batch's events of this window (not late), sliced by segment."""
        columns, block = self._columns(schema, events)
        self.events += len(events)
        for name, rows in _slices(events, segment_keys).items():
            piece = self.slices.setdefault(name, SliceState())
            piece.events += len(events) if rows is None else len(rows)
            together: list[tuple[int, NumericAccumulator]] = []  # the block's, in one go
            for feature, (spec, column) in columns.items():
                acc = piece.accumulators.get(feature)
                if acc is None:
                    acc = piece.accumulators[feature] = new_accumulator(spec)
                if rows is None:  # the whole model: every row, no copy
                    row = block.rows.get(feature)
                    if row is not None and isinstance(acc, NumericAccumulator):
                        together.append((row, acc))
                    else:
                        _update(acc, column, keys)
                else:
                    _update(acc, column.take(rows), keys[rows])
            if together:
                wanted = [row for row, _ in together]
                values = block.values
                if wanted != list(range(len(values))):
                    values = values[wanted]
                NumericAccumulator.update_rows([acc for _, acc in together], values, keys)
        return self

    def _columns(
        self, schema: WindowSchema, events: Sequence[PredictionEvent]
    ) -> tuple[dict[str, tuple[FeatureSpec, Column]], NumericBlock]:
        by_name = _feature_columns(events)
        raws: dict[str, tuple[FeatureSpec, Sequence[object]]] = {}
        missing: Sequence[object] = [None] * len(events)
        for name in sorted(set(schema.features).union(by_name)):
            raw = by_name.get(name, missing)
            kind = self.kinds.get(name)
            spec = schema.spec_for(name, lambda: kind or infer_type(raw))  # noqa: B023
            self.kinds.setdefault(name, spec.kind)
            spec = spec if spec.kind == self.kinds[name] else FeatureSpec(self.kinds[name])
            raws[name] = (spec, raw)
        raws[SCORE] = (schema.score, list(map(_score, events)))
        raws[PREDICTION] = (schema.prediction, list(map(_prediction, events)))
        block = NumericBlock.of(
            {n: raw for n, (spec, raw) in raws.items() if spec.kind == "numeric"}
        )
        columns: dict[str, tuple[FeatureSpec, Column]] = {}
        for name, (spec, raw) in raws.items():
            row = block.rows.get(name)
            if row is None:
                columns[name] = (spec, read_column(spec.kind, raw))
            else:
                columns[name] = (spec, block.column(row))
        return columns, block

    def copy(self) -> WindowState:
        """An independent copy: updating it leaves this state as it is."""
        slices = {name: piece.copy() for name, piece in self.slices.items()}
        return WindowState(self.revision, self.events, self.score_changes, dict(self.kinds), slices)

    def merge(self, other: WindowState) -> Self:
        self.events += other.events
        self.score_changes += other.score_changes
        for name, kind in other.kinds.items():
            self.kinds.setdefault(name, kind)
        for name, piece in other.slices.items():
            self.slices.setdefault(name, SliceState()).merge(piece)
        return self

    def to_bytes(self) -> bytes:
        """The packed state (see the module docstring); ``from_bytes`` restores it."""
        arrays = ArrayWriter()
        header = orjson.dumps(
            {
                "revision": self.revision,
                "events": self.events,
                "score_changes": self.score_changes,
                "kinds": self.kinds,
                "slices": {
                    name: {
                        "events": piece.events,
                        "accumulators": {
                            k: _packed_state(a, arrays) for k, a in piece.accumulators.items()
                        },
                    }
                    for name, piece in self.slices.items()
                },
            }
        )
        padding = b"\0" * (-(_HEADER_AT + len(header)) % 8)
        size = len(header).to_bytes(_HEADER_AT - len(_PACKED), "little")
        return b"".join((_PACKED, size, header, padding, arrays.getvalue()))

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowState:
        """The state ``to_bytes`` wrote, packed, or in the JSON layout of earlier versions."""
        if data[:1] != _PACKED[:1]:
            return cls._from_doc(orjson.loads(data), _from_state)
        if type(data) is not bytes:
            data = bytes(data)  # the arrays are views of it: of bytes nobody can change
        if data[: len(_PACKED)] != _PACKED or len(data) < _HEADER_AT:
            raise ValueError(f"not a window state of a known layout: {data[:2]!r}")
        end = _HEADER_AT + int.from_bytes(data[len(_PACKED) : _HEADER_AT], "little")
        if end > len(data):
            raise ValueError("the window state's header runs past its end")
        arrays = ArrayReader(data, end + -end % 8)
        doc = orjson.loads(memoryview(data)[_HEADER_AT:end])
        return cls._from_doc(doc, lambda state: _from_packed_state(state, arrays))

    @classmethod
    def _from_doc(
        cls, doc: dict[str, Any], accumulator: Callable[[dict[str, Any]], Accumulator]
    ) -> WindowState:
        return cls(
            revision=doc["revision"],
            events=doc["events"],
            score_changes=doc["score_changes"],
            kinds=doc["kinds"],
            slices={
                name: SliceState(
                    piece["events"],
                    {k: accumulator(s) for k, s in piece["accumulators"].items()},
                )
                for name, piece in doc["slices"].items()
            },
        )


_PACKED = b"\x00\x02"  # a packed state's first bytes (layout 2); JSON's first is "{"
_HEADER_AT = len(_PACKED) + 4  # after the header's length


def _packed_state(acc: Accumulator, arrays: ArrayWriter) -> dict[str, Any]:
    if isinstance(acc, NumericAccumulator):
        return acc.to_packed_state(arrays)
    return acc.to_state()


def _from_packed_state(state: dict[str, Any], arrays: ArrayReader) -> Accumulator:
    if state["kind"] == "numeric":
        return NumericAccumulator.from_packed_state(state, arrays)
    return CategoricalAccumulator.from_state(state)


_score, _prediction = attrgetter("score"), attrgetter("prediction")


def _slices(events: Sequence[PredictionEvent], segment_keys: Sequence[str]) -> dict[str, Any]:
    """Row indices per slice: None (every row) for the whole model, then each ``key=value``."""
    slices: dict[str, Any] = {WHOLE_MODEL: None}
    for key in segment_keys:
        groups: dict[str, list[int]] = {}
        for i, event in enumerate(events):
            value = event.segment.get(key)
            if value is not None:
                groups.setdefault(f"{key}={value}", []).append(i)
        slices.update({name: np.asarray(rows) for name, rows in groups.items()})
    return slices
