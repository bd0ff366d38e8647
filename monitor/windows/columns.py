"""What one value of a feature, prediction, score or label means, and one feature over a batch.

The reference profile and the window accumulators must read each value the same way, or a
window would differ from its reference by construction: this module is that one reading, and
``monitor.reference`` imports it. Missing is absent (pass None, e.g. ``features.get(name)``,
or ``MISSING``), null or NaN: a quality issue, never a category. A type error is a present
value of the wrong type: for numeric features strings (even ``"3"`` or ``"NaN"``), bools,
objects, arrays, ±inf and integers beyond float64; for categorical features objects, arrays
and ±inf (str as is, bools as ``"true"``/``"false"``, integers and integral floats as decimal
integers, other floats by repr); for boolean features anything but bools, 0/1 and the
strings true/false. ``valid = count - missing - type_errors``.

The column readers (``numeric_column``, ``categorical_column``, ``boolean_column``) classify
one feature's raw values of a batch, row-aligned so a caller can slice them per window and
segment with ``take``.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
from numpy.typing import NDArray

from monitor.ingest.mapping import MISSING
from monitor.settings import FeatureType

INFERENCE_SHARE: Final = 0.95
NULLABLE_NUMBER_TYPES: Final = frozenset({float, int, type(None)})  # numpy reads these as is

Rows = NDArray[np.intp] | NDArray[np.bool_]

# --- one value ---------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """Absent (MISSING), null and NaN are all "no value"."""
    return value is None or value is MISSING or (isinstance(value, float) and value != value)


def numeric_value(value: Any) -> float | None:
    """The float of a present value, or None when it is a type error (±inf included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def category_key(value: Any) -> str | None:
    """The category of a present value; None for a type error (containers, ±inf).

    Integral floats read as integers, so a CSV cell ``3.0``, JSON's 3 and "3" are one category.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) and math.isfinite(value):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return None


def boolean_key(value: Any) -> str | None:
    """'true' / 'false' from bools, 0 / 1 and the strings true / false; else a type error."""
    if isinstance(value, str):
        lowered = value.lower()
        return lowered if lowered in ("true", "false") else None
    if isinstance(value, numbers.Real) and value in (0, 1):
        return "true" if value else "false"
    return None


def _is_number_type(kind: type) -> bool:
    return kind is not bool and issubclass(kind, numbers.Real)


def _count_nans(values: Sequence[Any], kinds: Counter[type]) -> int:
    if kinds.keys() <= NULLABLE_NUMBER_TYPES:
        try:  # one numpy pass; None becomes NaN too
            return int(np.isnan(np.array(values, dtype=np.float64)).sum()) - kinds[type(None)]
        except OverflowError:
            pass
    return sum(1 for v in values if isinstance(v, float) and v != v)


def infer_type(values: Sequence[Any]) -> FeatureType:
    """The type of a feature without a config override, from its present values.

    bools in ≥ 95% → boolean; numbers (not bools) in ≥ 95% → numeric; else categorical. The
    5% tolerance keeps a few bad values from turning a numeric feature into categories; they
    count as type errors instead. Nothing present → categorical: no edges can be cut.
    """
    kinds = Counter(map(type, values))
    nans = _count_nans(values, kinds) if float in kinds else 0
    absent = kinds[type(None)] + kinds[type(MISSING)]
    present = len(values) - absent - nans
    if present == 0:
        return "categorical"
    if kinds[bool] >= INFERENCE_SHARE * present:
        return "boolean"
    count = sum(n for kind, n in kinds.items() if _is_number_type(kind)) - nans
    return "numeric" if count >= INFERENCE_SHARE * present else "categorical"


# --- one feature over a batch ------------------------------------------------------------


class _RowCounts:
    """What every column reports: rows neither valid nor of the wrong type are missing."""

    __slots__ = ()
    valid: NDArray[np.bool_]
    wrong_type: NDArray[np.bool_]

    @property
    def missing(self) -> int:
        return len(self.valid) - int(self.valid.sum()) - int(self.wrong_type.sum())

    @property
    def type_errors(self) -> int:
        return int(self.wrong_type.sum())


@dataclass(frozen=True, slots=True, eq=False)
class NumericColumn(_RowCounts):
    """One numeric feature over a batch: ``values`` is NaN wherever the row is not valid."""

    values: NDArray[np.float64]
    valid: NDArray[np.bool_]
    wrong_type: NDArray[np.bool_]

    def take(self, rows: Rows) -> NumericColumn:
        """The rows of one window or segment (indices or a boolean mask)."""
        return NumericColumn(self.values[rows], self.valid[rows], self.wrong_type[rows])


@dataclass(frozen=True, slots=True, eq=False)
class CategoricalColumn(_RowCounts):
    """One categorical feature over a batch: ``values`` is None wherever the row is not valid."""

    values: list[str | None]
    valid: NDArray[np.bool_]
    wrong_type: NDArray[np.bool_]

    def take(self, rows: Rows) -> CategoricalColumn:
        """The rows of one window or segment (indices or a boolean mask)."""
        index = np.arange(len(self.values))[rows]
        return CategoricalColumn(
            [self.values[i] for i in index], self.valid[rows], self.wrong_type[rows]
        )


def numeric_column(raw: Sequence[object] | NDArray[Any]) -> NumericColumn:
    """Classify and convert raw values; one C-speed pass when all are numbers or nulls."""
    values = _fast_floats(raw)
    if values is None:
        values, wrong = _slow_floats(raw)
    else:
        wrong = np.zeros(len(values), dtype=np.bool_)
    wrong |= np.isinf(values)
    values[wrong] = np.nan
    return NumericColumn(values, ~np.isnan(values), wrong)


def _fast_floats(raw: Sequence[object] | NDArray[Any]) -> NDArray[np.float64] | None:
    """numpy's conversion, used only when it cannot misread strings or bools as numbers."""
    if isinstance(raw, np.ndarray):
        return raw.astype(np.float64) if raw.dtype.kind in "fiu" else None
    if not set(map(type, raw)) <= NULLABLE_NUMBER_TYPES:
        return None
    try:
        return np.array(raw, dtype=np.float64)  # None → NaN
    except OverflowError:  # an int beyond float64
        return None


def _slow_floats(
    raw: Sequence[object] | NDArray[Any],
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Fallback for batches holding other types: numpy converts the plain rows in one call and
    only the others are read one by one, so a single bad value costs little."""
    plain = list(raw)
    odd = [i for i, kind in enumerate(map(type, plain)) if kind not in NULLABLE_NUMBER_TYPES]
    for i in odd:
        plain[i] = None
    try:
        out = np.array(plain, dtype=np.float64)
    except OverflowError:  # an int beyond float64: read every int one by one
        odd = [i for i, kind in enumerate(map(type, raw)) if kind not in (float, type(None))]
        for i in odd:
            plain[i] = None
        out = np.array(plain, dtype=np.float64)
    wrong = np.zeros(len(plain), dtype=np.bool_)
    for i in odd:
        if is_missing(raw[i]):
            continue  # already NaN
        value = numeric_value(raw[i])
        if value is None:
            wrong[i] = True
        else:
            out[i] = value
    return out, wrong


def categorical_column(raw: Sequence[object]) -> CategoricalColumn:
    """Classify and stringify raw values (see ``category_key``)."""
    kinds = set(map(type, raw))
    if kinds <= {str} or kinds <= {int}:  # as is, or integers as decimal (``category_key``)
        n = len(raw)
        values = list(raw) if kinds <= {str} else list(map(str, raw))
        valid = np.ones(n, dtype=np.bool_)
        return CategoricalColumn(cast(list[str | None], values), valid, np.zeros(n, np.bool_))
    return _classified(raw, category_key)


def boolean_column(raw: Sequence[object]) -> CategoricalColumn:
    """A boolean feature as the categories "true"/"false" (see ``boolean_key``)."""
    return _classified(raw, boolean_key)


def _classified(raw: Sequence[object], key: Callable[[object], str | None]) -> CategoricalColumn:
    n = len(raw)
    values: list[str | None] = []
    wrong = np.zeros(n, dtype=np.bool_)
    for i, x in enumerate(raw):
        if is_missing(x):
            values.append(None)
            continue
        value = key(x)
        values.append(value)
        wrong[i] = value is None
    valid = np.fromiter((v is not None for v in values), dtype=np.bool_, count=n)
    return CategoricalColumn(values, valid, wrong)
