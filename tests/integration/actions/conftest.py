"""Fixtures of the action tests: one recording HTTP receiver per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.receiver import Receiver


@pytest.fixture(scope="module")
def server() -> Iterator[Receiver]:
    """One receiver for the module (stopping one takes ~0.5 s of polling)."""
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(server: Receiver) -> Receiver:
    """The module's receiver, answering 200 and with nothing recorded yet."""
    server.respond = lambda _: 200
    server.received.clear()
    return server
