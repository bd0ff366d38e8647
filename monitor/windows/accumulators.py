"""Mergeable per-window accumulators for one feature: numeric and categorical.

Windows are filled by many partitions, processes and restarts, then rolled up (5 min → 1 h →
1 day), so every accumulator here merges: ``a.merge(b)`` holds what one accumulator fed the
events of both would hold. Counts, missing and type-error counts, min/max, histograms, category
counts and the bounded sample merge EXACTLY, whatever the order or partitioning; the moments
(Welford/Chan mean and M2) merge to within float rounding, because float addition is not
associative.

Conventions shared with ingest/, stats/ and store/:

- Columns, missing values and type errors are read as ``monitor.windows.columns`` reads them
  (the reading the reference profile shares): ``update_column`` takes its column readers'
  output, ``valid = count - missing - type_errors``.
- A numeric histogram over the reference's ``edges`` (B+1 non-decreasing values) has B+2
  counts: underflow (< edges[0]), B bins with ``numpy.histogram`` semantics (last bin
  closed), overflow (> edges[-1]). ``edges=None`` (no reference yet) keeps no histogram.
- The sample for exact tests is bottom-k: the values of the k events with the smallest
  (key, value), keys from ``hashing.event_keys``. The k smallest of a union are among the k
  smallest of each part, so it merges exactly. It is kept sorted by (key, value).
- Scores in [0, 1] and regression predictions use ``NumericAccumulator`` (edges from the
  reference, else ``default_score_edges()``): no separate score accumulator. Class
  predictions and boolean features use ``CategoricalAccumulator``.
- ``to_state()`` is plain JSON (ints, floats, str, lists, dicts; non-finite moments as the
  strings "inf"/"-inf"/"nan"; the sample as base64 of little-endian bytes: half the size of
  lists of numbers, and cheap to encode); ``from_state`` restores it exactly, through
  ``json`` or ``orjson``. ``WindowState.to_bytes`` stores the numeric ones packed instead
  (``to_packed_state``: edges, histogram and sample as raw bytes beside the JSON), which
  ``from_packed_state`` restores exactly.
- Arrays are never written in place: an update or merge replaces them. So restored arrays
  stay read-only views of the stored bytes, ``copy()`` shares them, and equal edges are one
  validated read-only array (``numeric.checked_edges``) that merges compare by identity.
- A merge keeps its sample with a stable sort of the two sorted samples (``merge_samples``):
  the same bytes ``bottom_k`` gives, at a tenth of the cost.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.windows.categorical import OTHER, CategoricalAccumulator
from monitor.windows.numeric import STATE_VERSION, NumericAccumulator

__all__ = [
    "OTHER",
    "STATE_VERSION",
    "CategoricalAccumulator",
    "NumericAccumulator",
    "default_score_edges",
]


def default_score_edges(bins: int = 10) -> NDArray[np.float64]:
    """Equal-width edges over [0, 1] for score distributions of models without a reference."""
    return np.linspace(0.0, 1.0, bins + 1)
