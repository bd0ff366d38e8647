"""The bottom-k sample for exact tests: the values of the k events with the smallest keys.

Keys come from ``hashing.event_keys``. The k smallest (key, value) pairs of a union are among
the k smallest of each part, so the sample merges exactly, whatever the order or batching. It
is kept sorted by (key, value) and stored as base64 of little-endian bytes.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from numpy.typing import NDArray


def bottom_k_update(
    keys: NDArray[np.uint64],
    values: NDArray[np.float64],
    new_keys: NDArray[np.uint64],
    new_values: NDArray[np.float64],
    k: int,
) -> tuple[NDArray[np.uint64], NDArray[np.float64]]:
    """Add a batch to a sorted bottom-k sample; once full, only keys <= its largest compete."""
    if k == 0 or new_keys.size == 0:
        return keys, values
    if keys.size == k:
        compete = new_keys <= keys[-1]
        if not compete.any():
            return keys, values
        new_keys, new_values = new_keys[compete], new_values[compete]
    new_keys, new_values = bottom_k(new_keys, new_values, k)
    if keys.size == 0:
        return new_keys, new_values
    at = np.searchsorted(keys, new_keys)
    if np.any(keys[np.minimum(at, keys.size - 1)] == new_keys):  # a tie: order by value too
        return bottom_k(np.concatenate([keys, new_keys]), np.concatenate([values, new_values]), k)
    # No shared key, so the key alone places each newcomer: insert rather than re-sort.
    return np.insert(keys, at, new_keys)[:k], np.insert(values, at, new_values)[:k]


def bottom_k(
    keys: NDArray[np.uint64], values: NDArray[np.float64], k: int
) -> tuple[NDArray[np.uint64], NDArray[np.float64]]:
    """The k smallest (key, value) pairs, sorted: a total order, so ties cannot vary."""
    if k == 0:
        return keys[:0], values[:0]
    if keys.size > k:
        keep = keys <= np.partition(keys, k - 1)[k - 1]
        keys, values = keys[keep], values[keep]
    order = np.argsort(keys)
    ordered = keys[order]
    if np.any(ordered[1:] == ordered[:-1]):  # shared keys (duplicate ids): the value decides
        order = np.lexsort((values, keys))
    return keys[order[:k]], values[order[:k]]


def merge_samples(
    keys: NDArray[np.uint64],
    values: NDArray[np.float64],
    other_keys: NDArray[np.uint64],
    other_values: NDArray[np.float64],
    k: int,
) -> tuple[NDArray[np.uint64], NDArray[np.float64]]:
    """``bottom_k`` of two samples together, for a merge.

    Each sample is sorted already, so a stable sort (timsort, which finds the two runs and
    merges them) orders the union in linear time, where ``bottom_k``'s quicksort after a
    partition costs ten times as much. Any input still comes out as ``bottom_k``'s: sorted by
    key, and by (key, value) wherever keys repeat.
    """
    if k == 0:
        return keys[:0], values[:0]
    keys = np.concatenate((keys, other_keys))
    values = np.concatenate((values, other_values))
    order = keys.argsort(kind="stable")  # methods: numpy's function wrappers cost as much
    ordered = keys[order]
    if (ordered[1:] == ordered[:-1]).any():  # shared keys (duplicate ids): the value decides
        order = np.lexsort((values, keys))[:k]
        return keys[order], values[order]
    return ordered[:k], values[order[:k]]


def merge_samples_rows(
    keys: NDArray[np.uint64],
    samples: list[NDArray[np.float64]],
    other_keys: NDArray[np.uint64],
    other_samples: list[NDArray[np.float64]],
    k: int,
) -> tuple[NDArray[np.uint64], list[NDArray[np.float64]]] | None:
    """`merge_samples` of row j of ``samples`` with row j of ``other_samples`` for every j,
    where each side's rows share their keys: the key alone orders the union, once for all.

    Returns the merged keys and samples (rows of one array); None, changing nothing, where
    keys repeat, as the value then breaks the tie, row by row.
    """
    if k == 0:
        return keys[:0], [sample[:0] for sample in samples]
    union = np.concatenate((keys, other_keys))
    order = union.argsort(kind="stable")
    ordered = union[order]
    if (ordered[1:] == ordered[:-1]).any():
        return None
    values = np.concatenate((np.stack(samples), np.stack(other_samples)), axis=1)
    return ordered[:k], list(values[:, order[:k]])


def bottom_k_update_rows(
    keys: NDArray[np.uint64],
    samples: list[NDArray[np.float64]],
    new_keys: NDArray[np.uint64],
    new_values: NDArray[np.float64],
    k: int,
) -> tuple[NDArray[np.uint64], list[NDArray[np.float64]]] | None:
    """`bottom_k_update` of several samples holding the same ``keys`` (features of one window
    that no event has left out yet), each taking its row of ``new_values`` (F x n) under the
    shared ``new_keys``: the key alone decides, so the selection is made once for all.

    Returns the new keys and the new samples (rows of one array), those `bottom_k_update`
    would return row by row; None, changing nothing, where keys repeat, as the value then
    breaks the tie, row by row.
    """
    if k == 0:
        return keys, samples
    if keys.size == k:
        compete = new_keys <= keys[-1]
        if not compete.any():
            return keys, samples
        new_keys, new_values = new_keys[compete], new_values[:, compete]
    if new_keys.size > k:
        keep = new_keys <= np.partition(new_keys, k - 1)[k - 1]
        new_keys, new_values = new_keys[keep], new_values[:, keep]
    order = np.argsort(new_keys)
    ordered = new_keys[order]
    if np.any(ordered[1:] == ordered[:-1]):
        return None
    new_keys, new_values = ordered[:k], new_values[:, order[:k]]
    if keys.size == 0:
        return new_keys, list(new_values)
    at = np.searchsorted(keys, new_keys)
    if np.any(keys[np.minimum(at, keys.size - 1)] == new_keys):
        return None
    merged = np.insert(np.stack(samples), at, new_values, axis=1)[:, :k]
    return np.insert(keys, at, new_keys)[:k], list(merged)


def encode_array(array: NDArray[Any], dtype: str) -> str:
    return base64.b64encode(array.astype(dtype).tobytes()).decode("ascii")


def decode_array(text: str, dtype: str) -> NDArray[Any]:
    """The array ``encode_array`` wrote; strict base64 (binascii's own check, which costs half
    of what ``b64decode(validate=True)``'s regular expression does)."""
    return np.frombuffer(binascii.a2b_base64(text, strict_mode=True), dtype=dtype)
