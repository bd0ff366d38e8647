"""The numeric accumulator: count, quality, moments, range, histogram and bottom-k sample.

Conventions (merging, histograms, the sample, states) are in ``monitor.windows.accumulators``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Self, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.windows.columns import NumericColumn
from monitor.windows.sample import (
    bottom_k_update,
    bottom_k_update_rows,
    decode_array,
    encode_array,
    merge_samples,
    merge_samples_rows,
)
from monitor.windows.snapshot import ArrayReader, ArrayWriter, StateRoundTrip

STATE_VERSION = 1

_T = TypeVar("_T", bound=np.generic)


class NumericAccumulator(StateRoundTrip):
    """Count, quality, moments, range, histogram and bottom-k sample of one numeric feature."""

    def __init__(self, edges: ArrayLike | None = None, sample_size: int = 2000) -> None:
        self.edges = checked_edges(edges)
        self.sample_size = check_size("sample_size", sample_size)
        self._n = 0
        self._missing = 0
        self._type_errors = 0
        self._shift = 0.0  # moments are kept about a value of the data (see combine_moments)
        self._mean = 0.0  # mean of (x - shift)
        self._m2 = 0.0
        self._min = math.inf
        self._max = -math.inf
        # shared read-only empties: arrays here are replaced, never written in place
        self._hist: NDArray[np.int64] | None = (
            None if self.edges is None else _no_counts(len(self.edges) + 1)
        )
        self._keys: NDArray[np.uint64] = _NO_KEYS
        self._sample: NDArray[np.float64] = _NO_VALUES

    def update(
        self,
        values: NDArray[np.float64],
        keys: NDArray[np.uint64],
        missing: int = 0,
        type_errors: int = 0,
    ) -> Self:
        """Add a batch of VALID values (finite), their event keys, and the rows left out."""
        values = np.asarray(values, dtype=np.float64)
        keys = np.asarray(keys, dtype=np.uint64)
        if values.ndim != 1 or keys.shape != values.shape:
            raise ValueError("values and keys must be 1-D arrays of the same length")
        if missing < 0 or type_errors < 0:
            raise ValueError("missing and type_errors must be >= 0")
        if not np.isfinite(values).all():
            raise ValueError("values must be finite: count NaN as missing, ±inf as type errors")
        self._missing += missing
        self._type_errors += type_errors
        if values.size == 0:
            return self
        if self._n == 0:
            self._shift = float(values[0])
        shifted = values - self._shift
        mean = float(shifted.mean())
        deviations = shifted - mean
        self._n, self._mean, self._m2 = combine_moments(
            (self._n, self._mean, self._m2), (values.size, mean, _sum_of_squares(deviations))
        )
        self._min = min(self._min, float(values.min()))
        self._max = max(self._max, float(values.max()))
        if self._hist is not None and self.edges is not None:
            self._hist = self._hist + _bin_counts(self.edges, values)  # new arrays: the views
            # handed out by the properties stay snapshots
        unsigned = values + 0.0  # -0.0 → 0.0, so tied samples are byte-identical in any order
        self._keys, self._sample = bottom_k_update(
            self._keys, self._sample, keys, unsigned, self.sample_size
        )
        return self

    def update_column(self, column: NumericColumn, keys: NDArray[np.uint64]) -> Self:
        """Add a batch straight from ``numeric_column``; ``keys`` aligned with its rows."""
        valid = column.valid
        return self.update(column.values[valid], keys[valid], column.missing, column.type_errors)

    @staticmethod
    def update_rows(
        accumulators: Sequence[NumericAccumulator],
        values: NDArray[np.float64],
        keys: NDArray[np.uint64],
    ) -> None:
        """``accumulators[j].update(values[j], keys)`` for every row ``j`` of ``values`` (F x n,
        every value finite), in a few numpy calls for all the rows.

        A window's numeric features come in one batch, and the dozen numpy calls ``update``
        makes per feature cost more than their arithmetic on a few hundred events. The states
        are ``update``'s to the bit: numpy reduces each row of a C-ordered matrix as it
        reduces a lone vector, and the samples make the same selection.
        """
        n = values.shape[1]
        if n == 0:
            return
        firsts = values[:, 0].tolist()
        shifts = np.array(
            [a._shift if a._n else v for a, v in zip(accumulators, firsts, strict=True)]
        )
        shifted = values - shifts[:, None]
        means = shifted.mean(axis=1)
        deviations = shifted - means[:, None]
        squares = np.einsum("ij,ij->i", deviations, deviations)  # _sum_of_squares of each row
        lows, highs = values.min(axis=1).tolist(), values.max(axis=1).tolist()
        summaries = zip(shifts.tolist(), means.tolist(), squares.tolist(), lows, highs, strict=True)
        for acc, (shift, mean, m2, low, high) in zip(accumulators, summaries, strict=True):
            acc._shift = shift
            acc._n, acc._mean, acc._m2 = combine_moments(
                (acc._n, acc._mean, acc._m2), (n, mean, m2)
            )
            acc._min, acc._max = min(acc._min, low), max(acc._max, high)
        binned = [
            (j, a, a.edges)
            for j, a in enumerate(accumulators)
            if a._hist is not None and a.edges is not None
        ]
        if binned:
            counts = _bin_counts_rows([e for _, _, e in binned], values[[j for j, _, _ in binned]])
            for (_, acc, _), row in zip(binned, counts, strict=True):
                acc._hist = acc._hist + row  # type: ignore[operator]  # binned: not None
        _update_samples(accumulators, values + 0.0, keys)  # -0.0 → 0.0, as in update

    def merge(self, other: NumericAccumulator) -> Self:
        """Add ``other``'s events; edges and sample sizes must match."""
        self._merge_summary(other)
        self._keys, self._sample = merge_samples(
            self._keys, self._sample, other._keys, other._sample, self.sample_size
        )
        return self

    @staticmethod
    def merge_rows(
        mine: Sequence[NumericAccumulator], theirs: Sequence[NumericAccumulator]
    ) -> None:
        """``mine[j].merge(theirs[j])`` for every j: the features of two shares of a window.

        While each side's samples share one keys array (features updated together, or read
        back from one packed state), the union is ordered once for all (`merge_samples_rows`).
        Each pair is checked before anything changes.
        """
        for a, b in zip(mine, theirs, strict=True):
            a._check_mergeable(b)
        for a, b in zip(mine, theirs, strict=True):
            a._merge_summary(b)
        keys, other_keys = mine[0]._keys, theirs[0]._keys
        k = mine[0].sample_size
        if all(a._keys is keys and b._keys is other_keys and a.sample_size == k
               for a, b in zip(mine, theirs, strict=True)):  # fmt: skip
            merged = merge_samples_rows(
                keys, [a._sample for a in mine], other_keys, [b._sample for b in theirs], k
            )
            if merged is not None:
                _take_samples(mine, *merged)
                return
        for a, b in zip(mine, theirs, strict=True):
            a._keys, a._sample = merge_samples(a._keys, a._sample, b._keys, b._sample, k)

    def _check_mergeable(self, other: NumericAccumulator) -> None:
        if not isinstance(other, NumericAccumulator):
            raise TypeError(f"cannot merge {type(other).__name__} into NumericAccumulator")
        if not _same_edges(self.edges, other.edges) or self.sample_size != other.sample_size:
            raise ValueError("cannot merge accumulators with different edges or sample sizes")

    def _merge_summary(self, other: NumericAccumulator) -> None:
        """`merge` without the sample: counts, moments, range and histogram."""
        self._check_mergeable(other)
        if self._n == 0:
            self._shift = other._shift
        other_mean = (other._shift - self._shift) + other._mean
        moments = combine_moments(
            (self._n, self._mean, self._m2), (other._n, other_mean, other._m2)
        )
        self._n, self._mean, self._m2 = moments
        self._missing += other._missing
        self._type_errors += other._type_errors
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        if self._hist is not None and other._hist is not None:
            self._hist = self._hist + other._hist

    def copy(self) -> Self:
        """An equal accumulator; the arrays are shared, as none is ever written in place."""
        acc = object.__new__(type(self))
        acc.__dict__.update(self.__dict__)
        return acc

    @property
    def count(self) -> int:
        return self._n + self._missing + self._type_errors

    @property
    def valid(self) -> int:
        return self._n

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def type_errors(self) -> int:
        return self._type_errors

    @property
    def mean(self) -> float:
        return self._shift + self._mean if self._n else math.nan

    @property
    def variance(self) -> float:
        """Population variance (ddof=0, as ``numpy.var``); NaN without values."""
        return self._m2 / self._n if self._n else math.nan

    @property
    def sample_variance(self) -> float:
        """Unbiased variance (ddof=1); NaN below two values."""
        return self._m2 / (self._n - 1) if self._n > 1 else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0, as ``numpy.std``)."""
        return math.sqrt(self.variance)

    @property
    def min(self) -> float:
        return self._min if self._n else math.nan

    @property
    def max(self) -> float:
        return self._max if self._n else math.nan

    @property
    def histogram(self) -> NDArray[np.int64] | None:
        """[underflow, B inner bins, overflow]; None without reference edges."""
        return None if self._hist is None else _read_only(self._hist)

    @property
    def out_of_range(self) -> int | None:
        """Valid values outside the reference range; None without reference edges."""
        return None if self._hist is None else int(self._hist[0] + self._hist[-1])

    @property
    def sample(self) -> NDArray[np.float64]:
        """Up to ``sample_size`` valid values, those of the smallest event keys."""
        return _read_only(self._sample)

    @property
    def sample_keys(self) -> NDArray[np.uint64]:
        return _read_only(self._keys)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON values; ``from_state`` restores an equal accumulator."""
        state = self._scalars(None if self.edges is None else self.edges.tolist())
        state["histogram"] = None if self._hist is None else self._hist.tolist()
        state["sample_keys"] = encode_array(self._keys, "<u8")
        state["sample_values"] = encode_array(self._sample, "<f8")
        return state

    def to_packed_state(self, arrays: ArrayWriter) -> dict[str, Any]:
        """``to_state`` with the edges, the histogram and the sample in ``arrays`` (raw bytes),
        the state holding where; ``from_packed_state`` restores an equal accumulator."""
        edges = None if self.edges is None else arrays.put(self.edges, "<f8")
        state = self._scalars(edges)
        state["histogram"] = None if self._hist is None else arrays.put(self._hist, "<i8")
        state["sample_keys"] = arrays.put(self._keys, "<u8")
        state["sample_values"] = arrays.put(self._sample, "<f8")
        return state

    def _scalars(self, edges: Any) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "version": STATE_VERSION,
            "edges": edges,
            "sample_size": self.sample_size,
            "n": self._n,
            "missing": self._missing,
            "type_errors": self._type_errors,
            "shift": encode_float(self._shift),
            "mean": encode_float(self._mean),
            "m2": encode_float(self._m2),
            "min": self._min if self._n else None,
            "max": self._max if self._n else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``to_state()``; ValueError when the state is not a numeric one."""
        check_kind(state, "numeric")
        edges = checked_edges(state["edges"])
        return cls._restore(
            state,
            edges,
            None if edges is None else np.asarray(state["histogram"], dtype=np.int64),
            decode_array(state["sample_keys"], "<u8"),
            decode_array(state["sample_values"], "<f8"),
        )

    @classmethod
    def from_packed_state(cls, state: Mapping[str, Any], arrays: ArrayReader) -> Self:
        """Rebuild from ``to_packed_state()`` and the bytes its ``arrays`` were written to."""
        check_kind(state, "numeric")
        where = state["edges"]
        edges = None if where is None else _packed_edges(arrays.get(where, "<f8").tobytes())
        return cls._restore(
            state,
            edges,
            None if edges is None else arrays.get(state["histogram"], "<i8"),
            arrays.get(state["sample_keys"], "<u8"),
            arrays.get(state["sample_values"], "<f8"),
        )

    @classmethod
    def _restore(
        cls,
        state: Mapping[str, Any],
        edges: NDArray[np.float64] | None,
        hist: NDArray[Any] | None,
        keys: NDArray[Any],
        values: NDArray[Any],
    ) -> Self:
        """The accumulator of ``state``'s scalars and the arrays decoded from it.

        Not through ``__init__``: the edges come from ``checked_edges``' cache (validated
        once per distinct reference, and the same object for every accumulator over them),
        and the decoded arrays are kept as they are (read-only), copied only to turn them
        into the machine's byte order.
        """
        acc = object.__new__(cls)
        acc.edges = edges
        acc.sample_size = check_size("sample_size", state["sample_size"])
        acc._n, acc._missing = int(state["n"]), int(state["missing"])
        acc._type_errors = int(state["type_errors"])
        acc._shift = decode_float(state["shift"])
        acc._mean, acc._m2 = decode_float(state["mean"]), decode_float(state["m2"])
        if acc._n:
            acc._min, acc._max = float(state["min"]), float(state["max"])
        else:
            acc._min, acc._max = math.inf, -math.inf
        if edges is None or hist is None:
            acc._hist = None
        else:
            acc._hist = hist.astype(np.int64, copy=False)
            if acc._hist.shape != (len(edges) + 1,):
                raise ValueError("histogram length does not match the edges")
        acc._keys = keys.astype(np.uint64, copy=False)
        acc._sample = values.astype(np.float64, copy=False)
        if len(acc._keys) != len(acc._sample) or len(acc._keys) > acc.sample_size:
            raise ValueError("sample keys and values do not match the sample size")
        return acc

    def __repr__(self) -> str:
        return (
            f"NumericAccumulator(valid={self._n}, missing={self._missing}, "
            f"type_errors={self._type_errors}, mean={self.mean:.6g}, std={self.std:.6g})"
        )


def _sum_of_squares(x: NDArray[np.float64]) -> float:
    """Σx², without BLAS (see ``monitor/__init__``: its threads cost more than they give)."""
    return float(np.einsum("i,i->", x, x))


def combine_moments(
    a: tuple[int, float, float], b: tuple[int, float, float]
) -> tuple[int, float, float]:
    """Chan et al.'s parallel combination of (n, mean, M2): stable for any split sizes.

    The means are of ``x - shift``, shift being the first value the window saw: near the data,
    the subtraction is exact (Sterbenz) and the mean small, so a feature like an epoch time
    (mean 1.7e9, std 3) keeps a relative variance error near 1e-15 instead of 1e-8.
    """
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    if n_b == 0:
        return a
    if n_a == 0:
        return b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta * delta * (n_a * n_b / n)


def _bin_counts(edges: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray[np.int64]:
    """B+2 counts with numpy.histogram's bins; a value equal to the last edge is inside."""
    index = np.searchsorted(edges, values, side="right")
    index[values == edges[-1]] = len(edges) - 1
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def _bin_counts_rows(
    edges: Sequence[NDArray[np.float64]], values: NDArray[np.float64]
) -> list[NDArray[np.int64]]:
    """`_bin_counts` of each row of ``values`` on its own ``edges``; rows whose edges have the
    same length are binned together."""
    groups: dict[int, list[int]] = {}
    for j, row_edges in enumerate(edges):
        groups.setdefault(len(row_edges), []).append(j)
    out: list[NDArray[np.int64]] = [np.zeros(0, np.int64)] * len(edges)
    for size, rows in groups.items():
        grid = np.stack([edges[j] for j in rows])
        block = values[rows]
        index = np.zeros(block.shape, dtype=np.intp)
        for column in grid.T:  # searchsorted(edges, v, "right"): how many edges are <= v
            index += block >= column[:, None]
        index[block == grid[:, -1:]] = size - 1  # the last bin is closed
        index += (np.arange(len(rows)) * (size + 1))[:, None]
        counts = np.bincount(index.ravel(), minlength=len(rows) * (size + 1))
        for j, row in zip(rows, counts.reshape(len(rows), size + 1), strict=True):
            out[j] = row.astype(np.int64, copy=False)
    return out


def _update_samples(
    accumulators: Sequence[NumericAccumulator],
    values: NDArray[np.float64],
    keys: NDArray[np.uint64],
) -> None:
    """The samples' part of `NumericAccumulator.update_rows`: all at once while they hold the
    same keys (`bottom_k_update_rows`), else, or where keys repeat, one by one."""
    first = accumulators[0]
    k = first.sample_size
    if all(a.sample_size == k and _same_keys(a, first) for a in accumulators):
        updated = bottom_k_update_rows(
            first._keys, [a._sample for a in accumulators], keys, values, k
        )
        if updated is not None:
            _take_samples(accumulators, *updated)
            return
    for acc, row in zip(accumulators, values, strict=True):
        acc._keys, acc._sample = bottom_k_update(acc._keys, acc._sample, keys, row, acc.sample_size)


def _take_samples(
    accumulators: Sequence[NumericAccumulator],
    keys: NDArray[np.uint64],
    samples: list[NDArray[np.float64]],
) -> None:
    """Give each accumulator its sample, all of them the one ``keys`` array."""
    for acc, sample in zip(accumulators, samples, strict=True):
        acc._keys, acc._sample = keys, sample


def _same_keys(acc: NumericAccumulator, first: NumericAccumulator) -> bool:
    """Whether ``acc``'s sample has ``first``'s keys; if so it shares their array from now on,
    so the next batch sees it at once."""
    if acc._keys is first._keys:
        return True
    size = acc._keys.size
    if size != first._keys.size or (size and not np.array_equal(acc._keys, first._keys)):
        return False
    acc._keys = first._keys
    return True


_NO_KEYS: NDArray[np.uint64] = np.zeros(0, np.uint64)
_NO_VALUES: NDArray[np.float64] = np.zeros(0, np.float64)
_NO_KEYS.flags.writeable = _NO_VALUES.flags.writeable = False


@lru_cache(maxsize=64)
def _no_counts(bins: int) -> NDArray[np.int64]:
    """An empty histogram of ``bins`` counts, shared read-only."""
    counts = np.zeros(bins, np.int64)
    counts.flags.writeable = False
    return counts


def _check_edges(edges: ArrayLike | None) -> NDArray[np.float64] | None:
    if edges is None:
        return None
    array = np.array(edges, dtype=np.float64)
    if array.ndim != 1 or array.size < 2 or not np.isfinite(array).all():
        raise ValueError("edges must be at least two finite numbers")
    if np.any(array[1:] < array[:-1]):
        raise ValueError("edges must be non-decreasing")
    array.flags.writeable = False
    return array


@lru_cache(maxsize=4096)
def _cached_edges(key: tuple[Any, ...]) -> NDArray[np.float64] | None:
    return _check_edges(key[0])


def checked_edges(edges: ArrayLike | None) -> NDArray[np.float64] | None:
    """``_check_edges(edges)``, the read-only array shared by every caller with equal edges.

    Every accumulator of a feature has the reference's edges: validating them once per
    process, not once per accumulator restored, saves most of a state's decoding, and the
    shared array lets ``_same_edges`` answer by identity. ``0.0 == -0.0`` (and they hash
    alike), so edges with a zero carry their signs in the key: the array keeps the bits given.
    """
    if edges is None:
        return None
    if _CHECKED.get(id(edges)) is edges:  # an array this function returned: checked already
        return edges
    try:
        values: tuple[Any, ...] = tuple(edges)  # type: ignore[arg-type]
        key: tuple[Any, ...] = (values,)
        if 0.0 in values:
            key = (values, tuple(math.copysign(1.0, v) for v in values))
        checked = _cached_edges(key)
    except (TypeError, ValueError):  # not a flat sequence of numbers: _check_edges says why
        return _check_edges(edges)
    if checked is not None:
        if len(_CHECKED) >= 4096:
            _CHECKED.clear()
        _CHECKED[id(checked)] = checked  # held here, so its id stays its own
    return checked


_CHECKED: dict[int, NDArray[np.float64]] = {}  # what checked_edges returned, by identity


@lru_cache(maxsize=4096)
def _packed_edges(data: bytes) -> NDArray[np.float64] | None:
    """``checked_edges`` of edges stored as little-endian bytes (the key keeps their bits)."""
    return checked_edges(np.frombuffer(data, dtype="<f8"))


def _same_edges(a: NDArray[np.float64] | None, b: NDArray[np.float64] | None) -> bool:
    if a is b:
        return True
    if a is None or b is None:
        return False
    return bool(np.array_equal(a, b))


def check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def check_kind(state: Mapping[str, Any], kind: str) -> None:
    if state.get("kind") != kind or state.get("version") != STATE_VERSION:
        raise ValueError(f"not a {kind} accumulator state of version {STATE_VERSION}")


def _read_only(array: NDArray[_T]) -> NDArray[_T]:
    view = array.view()
    view.flags.writeable = False
    return view


def encode_float(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)  # 'inf', '-inf', 'nan': JSON has no such floats


def decode_float(x: float | str) -> float:
    return float(x)
