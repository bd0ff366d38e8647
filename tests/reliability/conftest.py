"""Fixtures of the reliability scenarios: a recording HTTP receiver and the figures report."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.reliability.scenarios import Report
from tests.support import reliability
from tests.support.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server taking the chat notifications and the signed triggers."""
    with Receiver() as server:
        yield server


@pytest.fixture
def report(record_property: Callable[[str, object], None]) -> Report:
    """``report(figures)`` puts a scenario's figures in the run's reliability table."""
    return lambda figures: reliability.record(record_property, figures)
