"""A sample alert notice for the message and notification tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from monitor.rules.notice import Notice


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, 1, hour, minute, tzinfo=UTC)


def notice(**changes: Any) -> Notice:
    """A firing critical PSI alert on feature f03 of churn v3; ``changes`` override fields."""
    base = Notice(
        kind="firing",
        alert_id=1,
        rule="feature-drift",
        metric="psi",
        model="churn",
        version="v3",
        segment=None,
        feature="f03",
        severity="critical",
        value=0.31,
        threshold=0.25,
        direction="above",
        window_start=at(10),
        window_end=at(11),
        started_at=at(8),
    )
    return replace(base, **changes)
