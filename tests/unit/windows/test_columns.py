"""One reading of raw values, shared by reference profiles and windows: rules and columns."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.mapping import MISSING as ABSENT
from monitor.windows.columns import (
    boolean_column,
    boolean_key,
    categorical_column,
    category_key,
    infer_type,
    is_missing,
    numeric_column,
    numeric_value,
)
from tests.unit.windows.strategies import categories, raw_values

# --- one value ---------------------------------------------------------------------------

NAN = math.nan


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2.5, 3], "numeric"),
        ([1, 2, None, NAN, ABSENT], "numeric"),
        ([1.0] * 19 + ["oops"], "numeric"),  # 95% numbers: the string is a type error
        ([1.0] * 18 + ["oops", "bad"], "categorical"),  # 90%: categories
        ([True, False, None], "boolean"),
        ([True] * 19 + [1], "boolean"),
        ([True, 1, 0], "categorical"),  # bools are not numbers, numbers are not bools
        (["DE", "FR"], "categorical"),
        (["1", "2"], "categorical"),  # numeric strings in JSON stay categories
        ([1, "a"], "categorical"),
        ([NAN] * 10 + [1.0, "a"], "categorical"),  # NaNs do not count as numbers
        ([NAN] * 40 + [1.0] * 19 + ["a"], "numeric"),
        ([None, None], "categorical"),  # nothing present: no edges to cut
        ([], "categorical"),
        ([{"a": 1}, [1]], "categorical"),
        ([10**400, 1, 2], "numeric"),  # an integer beyond float range is still a number
    ],
)
def test_infer_type(values: list[Any], expected: str) -> None:
    """A feature's type follows the 95% rule over its present values."""
    assert infer_type(values) == expected


@pytest.mark.parametrize(
    ("value", "missing"),
    [(None, True), (ABSENT, True), (NAN, True), (0, False), ("", False), (math.inf, False)],
)
def test_is_missing(value: Any, missing: bool) -> None:
    """Absent, null and NaN are missing; everything else, even empty strings, is present."""
    assert is_missing(value) is missing


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3.0), (2.5, 2.5), (True, None), ("3", None), ([1], None), (math.inf, None),
     (-math.inf, None), (10**400, None)],
)  # fmt: skip
def test_numeric_value(value: Any, expected: float | None) -> None:
    """Only finite real numbers (not bools, not strings) are valid numeric values."""
    assert numeric_value(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("DE", "DE"), (3, "3"), (3.0, "3"), (2.5, "2.5"), (True, "true"), (False, "false"),
     (-0.0, "0"), (math.inf, None), ({"a": 1}, None), ([1], None)],
)  # fmt: skip
def test_category_key(value: Any, expected: str | None) -> None:
    """Categories are strings: ints as str, integral floats as ints, bools as true/false."""
    assert category_key(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "true"), (False, "false"), ("TRUE", "true"), ("false", "false"), (1, "true"),
     (0, "false"), (0.0, "false"), (2, None), ("yes", None), (None, None)],
)  # fmt: skip
def test_boolean_key(value: Any, expected: str | None) -> None:
    """Boolean features accept bools, 0/1 and the words true/false."""
    assert boolean_key(value) == expected


# --- column helpers ----------------------------------------------------------------------

VALID, MISSING, WRONG = "valid", "missing", "type_error"


@pytest.mark.parametrize(
    ("raw", "numeric", "categorical"),
    [
        (None, (MISSING, None), (MISSING, None)),
        (math.nan, (MISSING, None), (MISSING, None)),
        ("NaN", (WRONG, None), (VALID, "NaN")),
        (1, (VALID, 1.0), (VALID, "1")),
        (1.5, (VALID, 1.5), (VALID, "1.5")),
        (2.0, (VALID, 2.0), (VALID, "2")),
        (True, (WRONG, None), (VALID, "true")),
        (False, (WRONG, None), (VALID, "false")),
        ("3", (WRONG, None), (VALID, "3")),
        ("", (WRONG, None), (VALID, "")),
        ({}, (WRONG, None), (WRONG, None)),
        ([], (WRONG, None), (WRONG, None)),
        (math.inf, (WRONG, None), (WRONG, None)),
        (-math.inf, (WRONG, None), (WRONG, None)),
        (10**30, (VALID, 1e30), (VALID, str(10**30))),
        (10**400, (WRONG, None), (VALID, str(10**400))),
        (np.float64(2.5), (VALID, 2.5), (VALID, "2.5")),
        (np.int64(4), (VALID, 4.0), (VALID, "4")),
    ],
)
@pytest.mark.parametrize("neighbours", [[], [0.25, None], ["x", 0.25]])
def test_column_helpers_classify_raw_json_values(
    raw: object, numeric: tuple[str, Any], categorical: tuple[str, Any], neighbours: list[object]
) -> None:
    """Missing vs type error vs valid, alone and beside values that take the fast or slow path."""
    num = numeric_column([*neighbours, raw]).take(np.array([len(neighbours)]))
    kind = VALID if num.valid[0] else WRONG if num.wrong_type[0] else MISSING
    assert (kind, float(num.values[0]) if num.valid[0] else None) == numeric
    assert (num.missing, num.type_errors) == (int(kind == MISSING), int(kind == WRONG))
    cat = categorical_column([*neighbours, raw]).take(np.array([len(neighbours)]))
    kind = VALID if cat.valid[0] else WRONG if cat.wrong_type[0] else MISSING
    assert (kind, cat.values[0]) == categorical


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, (VALID, "true")),
        (False, (VALID, "false")),
        (1, (VALID, "true")),
        (0.0, (VALID, "false")),
        ("TRUE", (VALID, "true")),
        ("false", (VALID, "false")),
        (2, (WRONG, None)),
        ("yes", (WRONG, None)),
        ({}, (WRONG, None)),
        (None, (MISSING, None)),
        (math.nan, (MISSING, None)),
    ],
)
def test_boolean_column_reads_bools_zero_one_and_true_false(
    raw: object, expected: tuple[str, Any]
) -> None:
    """Boolean features read as the reference does: bools, 0/1, "true"/"false" in any case."""
    column = boolean_column([raw])
    kind = VALID if column.valid[0] else WRONG if column.wrong_type[0] else MISSING
    assert (kind, column.values[0]) == expected


def test_numeric_column_counts_a_mixed_batch() -> None:
    """A batch's counts add up: valid + missing + type errors = rows, NaN at every non-valid."""
    column = numeric_column([1.0, None, "a", math.nan, 2, True, math.inf, {}])
    assert column.valid.tolist() == [True, False, False, False, True, False, False, False]
    assert (column.missing, column.type_errors) == (2, 4)
    assert np.isnan(column.values[~column.valid]).all()
    huge = numeric_column([10**400, 3, 2.5, None, "x"])
    assert huge.values[1:3].tolist() == [3.0, 2.5]
    assert huge.wrong_type.tolist() == [True, False, False, False, True]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(raw_values, categories), max_size=30))
def test_batch_classification_equals_classifying_each_value_alone(raw: list[object]) -> None:
    """The fast and fallback paths read every value exactly as it reads alone."""
    num, cat = numeric_column(raw), categorical_column(raw)
    for i, x in enumerate(raw):
        one, alone = numeric_column([x]), categorical_column([x])
        assert (num.valid[i], num.wrong_type[i]) == (one.valid[0], one.wrong_type[0])
        assert np.array_equal(num.values[i : i + 1], one.values, equal_nan=True)
        assert (cat.values[i], cat.valid[i], cat.wrong_type[i]) == (
            alone.values[0],
            alone.valid[0],
            alone.wrong_type[0],
        )


def test_numeric_column_accepts_numpy_arrays_without_mutating_them() -> None:
    """Reference data already in numpy converts directly and stays the caller's."""
    data = np.array([1.0, np.nan, np.inf])
    column = numeric_column(data)
    assert (column.missing, column.type_errors) == (1, 1)
    assert np.isinf(data[2])
    assert numeric_column(np.array([1, 2], dtype=np.int32)).values.tolist() == [1.0, 2.0]
    assert numeric_column(np.array([True])).type_errors == 1


def test_column_take_slices_rows_with_their_counts() -> None:
    """A window or segment slice of a column counts only its own rows."""
    raw: list[object] = [1.0, None, "a", 2.0, None]
    mask = np.array([True, True, False, False, True])
    num = numeric_column(raw).take(mask)
    assert (num.values[num.valid].tolist(), num.missing, num.type_errors) == ([1.0], 2, 0)
    cat = categorical_column(["a", None, [], "b"]).take(np.array([1, 2, 3]))
    assert (cat.values, cat.missing, cat.type_errors) == ([None, None, "b"], 1, 1)
