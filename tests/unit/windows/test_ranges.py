"""Window arithmetic: epoch-aligned tumbling windows."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from monitor.windows.ranges import duration_ms, to_datetime, window_start


@given(st.integers(min_value=946_684_800_000, max_value=32_503_680_000_000), st.integers(1, 10**8))
def test_window_contains_its_events(ts_ms: int, size_ms: int) -> None:
    """Every event falls in exactly the window that starts at a multiple of the size."""
    start = window_start(ts_ms, size_ms)
    assert start % size_ms == 0
    assert start <= ts_ms < start + size_ms


def test_five_minute_windows_align_to_the_clock() -> None:
    """A 5-minute window starts on :00, :05, ... UTC."""
    size = duration_ms(timedelta(minutes=5))
    start = window_start(1795341723456, size)  # 2026-11-22T10:02:03.456Z
    assert to_datetime(start).isoformat() == "2026-11-22T10:00:00+00:00"
