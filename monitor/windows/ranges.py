"""Pure window arithmetic on integer epoch milliseconds: tumbling event-time windows.

Windows align to the epoch (a 5-minute window starts at :00, :05, ...), so every process and
every replay assigns an event to the same window without coordination.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def duration_ms(value: timedelta) -> int:
    """A window size or lateness in whole milliseconds."""
    return int(value.total_seconds() * 1000)


def window_start(ts_ms: int, size_ms: int) -> int:
    """Start of the tumbling window of size ``size_ms`` that contains ``ts_ms``."""
    return ts_ms - ts_ms % size_ms


def to_datetime(ts_ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
