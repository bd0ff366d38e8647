"""What one event time of a reference means: ``ts`` read as ingest reads it, for the rate.

The readings a reference shares with the windows (missing, numbers, categories, booleans,
type inference) are in ``monitor.windows.columns``: one definition, so a window reads every
value as its reference did. This module keeps what only the reference needs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.ingest.events import EPOCH_MS_THRESHOLD
from monitor.windows.columns import numeric_value

__all__ = ["EPOCH_MS_THRESHOLD", "epoch_seconds"]


def epoch_seconds(value: Any) -> float | None:
    """Event time in epoch seconds, read as DESIGN.md §3 reads ``ts``; None if unusable.

    Also takes ``datetime`` (Parquet timestamp columns); naive times are UTC.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    number = numeric_value(value)
    if number is None:
        return None
    return number / 1000 if number > EPOCH_MS_THRESHOLD else number
