"""Event times of a reference, read as ingest reads ``ts`` (the reference's own readings)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.reference.values import epoch_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-22T10:00:00Z", 1795341600.0),
        ("2026-11-22T10:00:00", 1795341600.0),
        ("2026-11-22T11:00:00+01:00", 1795341600.0),
        (1795341600, 1795341600.0),
        (1795341600000, 1795341600.0),
        (datetime(2026, 11, 22, 10, tzinfo=UTC), 1795341600.0),
        (datetime(2026, 11, 22, 10), 1795341600.0),  # noqa: DTZ001 - naive reads as UTC
        ("yesterday", None),
        (True, None),
        (None, None),
    ],
)
def test_epoch_seconds(value: Any, expected: float | None) -> None:
    """Event times read as DESIGN §3 says: ISO 8601 (UTC when naive) or epoch s/ms."""
    assert epoch_seconds(value) == expected
