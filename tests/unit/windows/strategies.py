"""Raw JSON values of one feature, as events carry them: shared by the window tests."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from monitor.windows.accumulators import OTHER

raw_numbers = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 10.0, -10.0, 5.0, 1e30, -1e30]),  # edges, extremes
)
raw_junk: st.SearchStrategy[object] = st.sampled_from(
    [None, math.nan, math.inf, -math.inf, True, False, "3", "NaN", {}, [], 10**400]
)
raw_values = st.one_of(raw_numbers, raw_numbers, raw_junk)
categories: st.SearchStrategy[object] = st.one_of(
    st.sampled_from(["a", "b", "c", "d", "e", "f", "g", OTHER, ""]),
    st.integers(-3, 3),
    st.booleans(),
    st.sampled_from([None, math.nan, 1.5, 2.0, {}, []]),
)
