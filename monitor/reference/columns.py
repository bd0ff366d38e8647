"""Profiles of one column: the conventions window accumulators follow (DESIGN.md §4, §5).

Numeric: ``edges`` are at most ``bins + 1`` increasing floats, ``edges[0]`` the minimum and
``edges[-1]`` the maximum, cut at the reference quantiles with duplicates collapsed (np.unique).
A column with at most ``bins`` distinct values gets one bin per value instead (edges at the
midpoints between them), because collapsed quantiles would put a 0/1 feature into one bin
and make its drift invisible. A constant ``v`` gets ``[v - 0.5, v + 0.5]`` (wider when
``|v| > 5e8``, so the edges stay distinct): one bin with a width. ``histogram`` has
``len(edges) + 1`` counts: underflow, the inner bins with numpy.histogram semantics (the last
bin closed) and overflow; the outer two are 0 for the reference itself. A column without one
valid value has no edges, no histogram and no moments (None).

Categorical and boolean: counts per category key, most frequent first.

Both: ``count`` is the number of valid values, ``missing_rate`` is
``missing / (count + missing + type_errors)``, the denominator windows use too. The numeric
``sample`` (≤ 2,000 values, in row order) is chosen by the smallest splitmix64 hashes of the
row positions: rebuilding from the same rows gives the same sample, and every feature samples
the same rows.

A numeric profile also holds ``histogram`` and ``sample`` as read-only numpy arrays
(``histogram_counts``, ``sorted_sample``, the sample sorted ascending), made once when it is
built: every closed window compares with them, and converting and sorting 2,000 values per
feature per window was a large share of a window's evaluation. They are derived, so they stay
out of equality, ``repr`` and the JSON (orjson skips dataclass fields named with a leading
underscore).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from monitor.reference.values import EPOCH_MS_THRESHOLD, epoch_seconds
from monitor.windows.columns import (
    NULLABLE_NUMBER_TYPES,
    boolean_column,
    categorical_column,
    category_key,
    numeric_column,
)

SAMPLE_SIZE: Final = 2000
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class NumericProfile:
    """A numeric distribution: histogram over fixed edges, moments, a sample for exact tests."""

    edges: tuple[float, ...]
    histogram: tuple[int, ...]
    count: int
    missing: int
    type_errors: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    missing_rate: float
    sample: tuple[float, ...]
    type: Literal["numeric"] = "numeric"
    _histogram_counts: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)
    _sorted_sample: Floats = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # frozen: the derived arrays are set once here, the only time the fields change
        counts = _read_only(np.asarray(self.histogram, dtype=np.int64))
        object.__setattr__(self, "_histogram_counts", counts)
        ordered = _read_only(np.sort(np.asarray(self.sample, dtype=np.float64)))
        object.__setattr__(self, "_sorted_sample", ordered)

    @property
    def histogram_counts(self) -> npt.NDArray[np.int64]:
        """``histogram`` as a read-only int64 array, converted once."""
        return self._histogram_counts

    @property
    def sorted_sample(self) -> Floats:
        """``sample`` sorted ascending as a read-only float64 array, sorted once."""
        return self._sorted_sample


@dataclass(frozen=True, slots=True)
class CategoricalProfile:
    """Category counts; ``type`` keeps boolean features apart from plain categorical ones."""

    counts: dict[str, int]
    count: int
    missing: int
    type_errors: int
    missing_rate: float
    type: Literal["categorical", "boolean"] = "categorical"


Distribution = NumericProfile | CategoricalProfile


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``array``, locked: profiles are shared by every window of every partition."""
    array.flags.writeable = False
    return array


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def distribution_from_dict(doc: Mapping[str, Any]) -> Distribution:
    """The profile a JSON object describes (the inverse of orjson's dataclass output)."""
    kind = doc["type"]
    if kind == "numeric":
        return NumericProfile(
            edges=tuple(float(e) for e in doc["edges"]),
            histogram=tuple(int(c) for c in doc["histogram"]),
            count=int(doc["count"]),
            missing=int(doc["missing"]),
            type_errors=int(doc["type_errors"]),
            mean=_opt_float(doc["mean"]),
            std=_opt_float(doc["std"]),
            min=_opt_float(doc["min"]),
            max=_opt_float(doc["max"]),
            missing_rate=float(doc["missing_rate"]),
            sample=tuple(float(v) for v in doc["sample"]),
        )
    if kind not in ("categorical", "boolean"):
        raise ValueError(f"unknown distribution type {kind!r}")
    return CategoricalProfile(
        counts={str(k): int(v) for k, v in doc["counts"].items()},
        count=int(doc["count"]),
        missing=int(doc["missing"]),
        type_errors=int(doc["type_errors"]),
        missing_rate=float(doc["missing_rate"]),
        type=kind,
    )


def as_floats(values: Sequence[Any]) -> tuple[Floats, int]:
    """Values as floats, NaN where missing or invalid, and how many were missing: the
    windows' ``numeric_column``, so a reference reads every value as its windows do."""
    column = numeric_column(values)
    return column.values, column.missing


def row_hash(positions: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """splitmix64 of row positions: a stable, seedless, collision-free order for sampling."""
    z = positions.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def bin_edges(x: Floats, bins: int) -> Floats:
    """Edges for the valid values ``x`` (non-empty), as the module docstring describes."""
    distinct = np.unique(x)
    if distinct.size == 1:
        half = max(0.5, abs(float(distinct[0])) * 1e-9)
        return np.array([distinct[0] - half, distinct[0] + half])
    if distinct.size <= bins:
        mids = (distinct[:-1] + distinct[1:]) / 2
        return np.unique(np.concatenate((distinct[:1], mids, distinct[-1:])))
    return np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))


def _sample(x: Floats, positions: npt.NDArray[np.int64]) -> Floats:
    if x.size <= SAMPLE_SIZE:
        return x
    chosen = np.argpartition(row_hash(positions), SAMPLE_SIZE - 1)[:SAMPLE_SIZE]
    return x[np.sort(chosen)]


def numeric_profile(values: Sequence[Any], bins: int, unit_scores: bool = False) -> NumericProfile:
    """Profile of one numeric column; ``unit_scores``: fixed 0..1 edges when all lie there."""
    array, missing = as_floats(values)
    valid = ~np.isnan(array)
    x, positions = array[valid], np.flatnonzero(valid)
    type_errors = len(values) - missing - int(x.size)
    rate = missing / len(values) if values else 0.0
    if x.size == 0:
        return NumericProfile((), (), 0, missing, type_errors, None, None, None, None, rate, ())
    if unit_scores and x.min() >= 0.0 and x.max() <= 1.0:
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        edges = bin_edges(x, bins)
    return NumericProfile(
        edges=tuple(edges.tolist()),
        histogram=(0, *np.histogram(x, bins=edges)[0].tolist(), 0),
        count=int(x.size),
        missing=missing,
        type_errors=type_errors,
        mean=float(x.mean()),
        std=float(x.std()),
        min=float(x.min()),
        max=float(x.max()),
        missing_rate=rate,
        sample=tuple(_sample(x, positions).tolist()),
    )


def _tally(values: Sequence[Any]) -> Counter[tuple[type, Any]]:
    try:
        return Counter(zip(map(type, values), values, strict=True))
    except TypeError:  # unhashable values (lists, dicts) are type errors: leave them out
        tally: Counter[tuple[type, Any]] = Counter()
        for value in values:
            try:
                tally[type(value), value] += 1
            except TypeError:
                continue
        return tally


def categorical_profile(values: Sequence[Any], boolean: bool = False) -> CategoricalProfile:
    """Profile of one categorical (or boolean) column, read as the windows' column readers do.

    Distinct values are tallied first (keyed with their type, since ``1 == True``), so
    stringifying costs one call per distinct value rather than per row.
    """
    tally = _tally(values)
    read = boolean_column if boolean else categorical_column
    column = read([value for _, value in tally])
    weights = np.fromiter(tally.values(), dtype=np.int64, count=len(tally))
    missing = int(weights[~column.valid & ~column.wrong_type].sum())
    counts: Counter[str] = Counter()
    for name, n in zip(column.values, tally.values(), strict=True):
        if name is not None:
            counts[name] += n
    count = sum(counts.values())
    return CategoricalProfile(
        counts=dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
        count=count,
        missing=missing,
        type_errors=len(values) - missing - count,
        missing_rate=missing / len(values) if values else 0.0,
        type="boolean" if boolean else "categorical",
    )


def event_rate(times: Sequence[Any], rows: int) -> float | None:
    """Rows per second of event time, for the volume ratio; None without a time span."""
    if set(map(type, times)) <= NULLABLE_NUMBER_TYPES:  # epoch numbers: one numpy pass
        array = as_floats(times)[0]
        seconds = np.where(array > EPOCH_MS_THRESHOLD, array / 1000, array)[~np.isnan(array)]
    else:
        seconds = np.array([s for s in map(epoch_seconds, times) if s is not None])
    span = float(seconds.max() - seconds.min()) if seconds.size else 0.0
    return rows / span if span > 0 else None


def baseline(
    predictions: Sequence[Any], labels: Sequence[Any], regression: bool
) -> dict[str, float]:
    """Performance on the labelled rows, named as the stored metrics (DESIGN.md §5)."""
    if regression:
        predicted, actual = as_floats(predictions)[0], as_floats(labels)[0]
        both = ~np.isnan(predicted) & ~np.isnan(actual)
        if not both.any():
            return {}
        errors = predicted[both] - actual[both]
        return {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors**2).mean()))}
    keys = zip(_keys(predictions), _keys(labels), strict=True)
    hits = [p == y for p, y in keys if p is not None and y is not None]
    return {"accuracy": sum(hits) / len(hits)} if hits else {}


def _keys(values: Sequence[Any]) -> list[str | None]:
    """category_key of each value (None: missing or invalid), once per distinct value."""
    memo: dict[tuple[type, Any], str | None] = {}
    keys: list[str | None] = []
    for value in values:
        try:
            key = memo[type(value), value]
        except KeyError:
            key = memo[type(value), value] = category_key(value)
        except TypeError:  # unhashable: a container, never a category
            key = None
        keys.append(key)
    return keys
